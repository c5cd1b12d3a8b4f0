#!/bin/sh
# Memory-budget figures (docs/offload.md, issue 5) for a prepared model:
#
#   bench/offload.sh PREPARED.gguf [--speed FFN_BYTES] [--threads 2]
#
# 1. Budget honesty: `pinfer bench --sparse predictor --mem-budget B` at B = 25%, 50% and 75% of
#    the file, each inside a cgroup-v1 memory limit of B + 128 MiB, page cache dropped first;
#    prints pinfer's own peak RSS, the cgroup's max usage and whether the limit was ever hit.
# 2. With --speed FFN_BYTES (the model's FFN bytes; prepare prints them): the speed rows at
#    budget = file - FFN_BYTES/2: in memory (no budget), under the budget (uring and pread), and
#    the baseline: pinfer dense with a plain mmap under the same cgroup cap.
# Needs root for the cgroup and drop_caches; without them the runs go uncapped (said so).
set -u
M=$1; shift
FFN=0; T=2
while [ $# -gt 0 ]; do
    case $1 in
    --speed) FFN=$2; shift 2 ;;
    --threads) T=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
P=${PINFER:-./build/pinfer}
SIZE=$(stat -c %s "$M") || exit 1
CGROOT=/sys/fs/cgroup/memory
MiB=1048576

drop() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches; }

# capped LIMIT_BYTES cmd...: runs cmd in a fresh memory cgroup; prints the cgroup's figures
capped() {
    limit=$1; shift
    cg=$CGROOT/pinfer-bench-$$
    if [ -w $CGROOT ] && mkdir $cg 2>/dev/null; then
        echo "$limit" > $cg/memory.limit_in_bytes
        [ -f $cg/memory.memsw.limit_in_bytes ] && echo "$limit" > $cg/memory.memsw.limit_in_bytes 2>/dev/null
        sh -c "echo \$\$ > $cg/cgroup.procs && exec \"\$@\"" sh "$@"
        rc=$?
        echo "cgroup: limit $((limit / MiB)) MiB, max usage $(($(cat $cg/memory.max_usage_in_bytes) / MiB)) MiB," \
             "limit hit $(cat $cg/memory.failcnt) times, exit status $rc"
        rmdir $cg
    else
        echo "(no writable cgroup-v1 memory controller: running uncapped)"
        "$@"
        echo "exit status $?"
    fi
}

echo "model $M: $((SIZE / MiB)) MiB; $(date -u +%FT%TZ); $(nproc) CPUs"
for pct in 25 50 75; do
    B=$((SIZE * pct / 100))
    echo "== budget $pct% = $((B / MiB)) MiB, cgroup limit budget + 128 MiB =="
    drop
    capped $((B + 128 * MiB)) "$P" bench -m "$M" -p 16 -n 8 -r 1 -t "$T" --sparse predictor --mem-budget "$B"
done
[ "$FFN" -gt 0 ] || exit 0
B=$((SIZE - FFN / 2))
echo "== speed: budget = file - half the FFN = $((B / MiB)) MiB =="
drop
"$P" bench -m "$M" -p 0 -n 64 -r 3 -t "$T" --sparse predictor
for io in uring pread; do
    drop
    capped $((B + 128 * MiB)) "$P" bench -m "$M" -p 0 -n 64 -r 3 -t "$T" --sparse predictor --mem-budget "$B" --io $io
done
echo "-- baseline: dense, plain mmap, same cgroup cap"
drop
capped $((B + 128 * MiB)) "$P" bench -m "$M" -p 0 -n 16 -r 1 -t "$T" --mmap
