#!/bin/sh
# Builds the libFuzzer targets (make fuzz), makes their seeds, and runs them.
#   scripts/fuzz.sh smoke            each target on its seeds and for SMOKE_SECONDS (10) more: CI
#   scripts/fuzz.sh long [SECONDS]   each target for SECONDS of CPU time (3600), two at a time
#                                    (NICE=19 to yield to other work), then a table: runs,
#                                    exec/s, edges, corpus, crashes
# Targets (fuzz/): fuzz_gguf (the GGUF reader), fuzz_tokenizer (SentencePiece on the llama-spm
# vocabulary and byte-level BPE on the gpt-2 vocabulary, from ../shared), fuzz_model (the whole model load and two decode steps),
# fuzz_prepared (a prepared model's keys and tensors, in memory and under a budget), fuzz_request
# (the server's request parser: JSON bodies of chat and text completions).
# Seeds: fuzz/corpus/gguf, fuzz/corpus/tokenizer and fuzz/corpus/request (in git), llama.cpp's tokenizer inputs from
# ../shared, and tiny models made here with pinfer synth and pinfer prepare. Corpora grow in
# build-fuzz/corpus/<target>; crashes land in build-fuzz/crashes/ and make the script fail.
set -e
cd "$(dirname "$0")/.."
MODE=${1:-smoke}
SECS=${2:-3600}
SMOKE_SECONDS=${SMOKE_SECONDS:-10}
J=$(nproc 2>/dev/null || echo 2)
case "$MODE" in smoke|long) ;; *) echo "usage: scripts/fuzz.sh smoke | long [CPU_SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
case "$SECS" in ''|*[!0-9]*) echo "fuzz.sh: seconds must be a whole number, got '$SECS'" >&2; exit 2 ;; esac

make -s -j"$J" build/pinfer >/dev/null
make -s fuzz >/dev/null
B=build-fuzz
S=$B/seeds
P=build/pinfer
rm -rf "$S"
mkdir -p "$S/gguf" "$S/tokenizer" "$S/model" "$S/prepared" "$S/request" "$B/crashes"

# ---- seeds ----
cp fuzz/corpus/gguf/* "$S/gguf/"
cp fuzz/corpus/tokenizer/* "$S/tokenizer/"
cp fuzz/corpus/request/* "$S/request/"
SHARED=../shared/testdata/tokenizer
TARGETS="fuzz_gguf fuzz_model fuzz_prepared fuzz_request"
if [ -f "$SHARED/ggml-vocab-llama-spm.gguf" ] && [ -f "$SHARED/ggml-vocab-gpt-2.gguf" ]; then
    TARGETS="fuzz_gguf fuzz_tokenizer fuzz_model fuzz_prepared fuzz_request"
    # llama.cpp's test inputs, one seed each; the first byte is the target's flag byte (0x80:
    # the gpt-2 vocabulary, byte-level BPE)
    split_inp() {
        LC_ALL=C awk -v dir="$S/tokenizer" -v pre="$1" -v flag="$2" '
            BEGIN { n = 0; f = sprintf("%s/%s-%03d", dir, pre, n); printf "%c", flag > f }
            $0 == "__ggml_vocab_test__" { close(f); n++; f = sprintf("%s/%s-%03d", dir, pre, n); printf "%c", flag > f; next }
            { print > f }' "$3"
    }
    split_inp spm 0 "$SHARED/ggml-vocab-llama-spm.gguf.inp"
    split_inp bpe 128 "$SHARED/ggml-vocab-gpt-2.gguf.inp"
else
    echo "fuzz.sh: ../shared is absent: fuzz_tokenizer skipped (it needs the llama-spm and gpt-2 vocabularies)"
fi
TINY="--dim 64 --layers 1 --heads 2 --kv-heads 1 --ffn 128 --vocab 384 --ctx 32"
i=0
for spec in silu:q4_0 relu:q8_0 drelu:f16 reglu:f32 silu:bf16 drelu:q4_0; do
    act=${spec%:*}; type=${spec#*:}
    $P synth -o "$S/model/$act-$type.gguf" $TINY --act "$act" --type "$type" --seed $i >/dev/null 2>&1
    i=$((i + 1))
done
# mixtures of experts (merged expert tensors; the loader also reads split ones)
$P synth -o "$S/model/moe-silu-q8_0.gguf" $TINY --experts 4 --experts-used 2 --type q8_0 --seed 7 >/dev/null 2>&1
$P synth -o "$S/model/moe-drelu-q4_0.gguf" $TINY --experts 3 --experts-used 1 --act drelu --type q4_0 --seed 8 >/dev/null 2>&1
for m in silu-q4_0 relu-q8_0 drelu-f16 reglu-f32 drelu-q4_0; do
    $P prepare -m "$S/model/$m.gguf" -o "$S/prepared/$m.gguf" --tokens 96 --steps 20 -t 1 >/dev/null 2>&1
done

# ---- runs ----
seed_dir() { case "$1" in fuzz_gguf) echo "$S/gguf" ;; fuzz_tokenizer) echo "$S/tokenizer" ;;
                          fuzz_model) echo "$S/model" ;; fuzz_prepared) echo "$S/prepared" ;;
                          fuzz_request) echo "$S/request" ;; esac; }
OPTS="-print_final_stats=1 -timeout=30 -rss_limit_mb=4096 -max_len=262144"

# one target: $1 name, $2 max seconds (wall, smoke) or CPU seconds (long); log in $B/<name>.log
run_target() {
    t=$1
    mkdir -p "$B/corpus/$t"
    log=$B/$t.log
    if [ "$MODE" = smoke ]; then
        $B/fuzz/$t $OPTS -max_total_time="$2" -artifact_prefix="$B/crashes/$t-" "$B/corpus/$t" "$(seed_dir "$t")" >"$log" 2>&1 &
        pid=$!
    else
        nice -n "${NICE:-0}" $B/fuzz/$t $OPTS -artifact_prefix="$B/crashes/$t-" "$B/corpus/$t" "$(seed_dir "$t")" >"$log" 2>&1 &
        pid=$!
        tck=$(getconf CLK_TCK)
        while kill -0 "$pid" 2>/dev/null; do
            cpu=$(awk -v t="$tck" '{ print int(($14 + $15) / t) }' "/proc/$pid/stat" 2>/dev/null || echo 0)
            if [ "$cpu" -ge "$2" ]; then kill -INT "$pid" 2>/dev/null || true; break; fi
            sleep 5
        done
        echo "$cpu" >"$B/$t.cpu"
    fi
    wait "$pid" || true
}

summary() {
    t=$1
    log=$B/$t.log
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(LC_ALL=C grep -aE '^#[0-9]+' "$log" | tail -1)
    cov=$(printf "%s\n" "$last" | LC_ALL=C sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    ft=$(printf "%s\n" "$last" | LC_ALL=C sed -n 's/.*ft: \([0-9]*\).*/\1/p')
    corp=$(printf "%s\n" "$last" | LC_ALL=C sed -n 's/.*corp: \([0-9]*\).*/\1/p')
    crashes=$(ls "$B/crashes/" 2>/dev/null | grep -c "^$t-" || true)
    cpu=$(cat "$B/$t.cpu" 2>/dev/null || echo "-")
    printf "%-15s %8s %10s %8s %7s %7s %7s %8s\n" "$t" "$cpu" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$crashes"
    [ "$crashes" -eq 0 ] && [ -n "$runs" ]
}

if [ "$MODE" = smoke ]; then
    for t in $TARGETS; do run_target "$t" "$SMOKE_SECONDS"; done
else
    # two lanes (two cores): targets 1, 3 and 5 in one, 2 and 4 in the other
    lane() { for t in "$@"; do [ -n "$t" ] && run_target "$t" "$SECS"; done; return 0; }
    set -- $TARGETS
    lane "$1" "$3" "$5" &
    l1=$!
    lane "$2" "$4"
    wait $l1
fi

echo "fuzz ($MODE, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
printf "%-15s %8s %10s %8s %7s %7s %7s %8s\n" target cpu_s runs exec/s edges features corpus crashes
fail=0
for t in $TARGETS; do summary "$t" || fail=1; done
if [ $fail -ne 0 ]; then
    echo "fuzz: a target crashed or did not run (logs in $B/*.log, inputs in $B/crashes/)" >&2
    exit 1
fi
echo "fuzz: $(echo $TARGETS | wc -w) targets, 0 crashes"
