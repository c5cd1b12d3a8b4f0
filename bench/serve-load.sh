#!/bin/bash
# Load figures for `pinfer serve` (docs/serving.md; issue 14): CLIENTS concurrent clients, each
# sending REQUESTS text completions one after another, against a server on loopback, once per
# --parallel value. Bounded: CLIENTS x REQUESTS requests of -n tokens each, nothing else.
#
#   bench/serve-load.sh MODEL.gguf [--parallel "1 4"] [--clients 8] [--requests 25] [-n 32]
#                       [-t THREADS] [--prompt TEXT]
#
# Prints per --parallel value: failed requests (non-200 or no answer: must be 0), latency p50 /
# p99 / max, completion tokens per second over the whole run (all clients together), and the
# server's RSS (VmRSS, sampled every 0.2 s) at its peak while the first 50 requests were being
# answered and while the last 50 were (the same = nothing grows with the requests served).
# Greedy requests (temperature 0), one prompt: every answer is generated to -n tokens unless
# EOS comes first (the count is the usage the server reports).
# Needs curl. PINFER (default ./build/pinfer) is the binary.
set -u
M=$1; shift
PARS="1 4"; CLIENTS=8; REQS=25; N=32; T=""; PROMPT="Once upon a time"
while [ $# -gt 0 ]; do
    case $1 in
    --parallel) PARS=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --requests) REQS=$2; shift 2 ;;
    -n) N=$2; shift 2 ;;
    -t) T="-t $2"; shift 2 ;;
    --prompt) PROMPT=$2; shift 2 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
P=${PINFER:-./build/pinfer}
W=$(mktemp -d /tmp/serve-load.XXXXXX) || exit 1
trap 'rm -rf "$W"' EXIT
TOTAL=$((CLIENTS * REQS))
BODY="{\"prompt\":\"$PROMPT\",\"max_tokens\":$N,\"temperature\":0}"

# client I PORT: REQS requests in turn, one curl process each and nothing else (the token
# counts are read from the bodies afterwards, so the clients stay light); one line per request:
# "status seconds body-file"
client() {
    local i=$1 port=$2 r out
    for r in $(seq 1 "$REQS"); do
        out=$(curl -s --max-time 600 -o "$W/c$i.$r.body" -w '%{http_code} %{time_total}' \
                   -H 'Content-Type: application/json' -d "$BODY" "http://127.0.0.1:$port/v1/completions")
        echo "$out $W/c$i.$r.body" >> "$W/done"
    done
}

echo "model $(basename "$M"), $CLIENTS clients x $REQS requests, max_tokens $N, prompt '$PROMPT', ${T:-all cores}"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for par in $PARS; do
    : > "$W/done"; : > "$W/rss"
    "$P" serve -m "$M" --port 0 --parallel "$par" --queue-size "$CLIENTS" $T > "$W/srv.out" 2> "$W/srv.err" &
    spid=$!
    port=""
    for _ in $(seq 1 600); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$W/srv.out" 2>/dev/null)
        [ -n "$port" ] && break
        kill -0 $spid 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then echo "the server did not start: $(cat "$W/srv.err")"; kill $spid 2>/dev/null; exit 1; fi
    # one request first, so that the model's pages are in and the timing starts warm
    curl -s -o /dev/null -d "{\"prompt\":\"a\",\"max_tokens\":1}" "http://127.0.0.1:$port/v1/completions"
    # RSS sampler: "requests done so far, VmRSS kB"
    ( while kill -0 $spid 2>/dev/null; do
          echo "$(wc -l < "$W/done") $(awk '/VmRSS/ {print $2}' /proc/$spid/status 2>/dev/null)" >> "$W/rss"
          sleep 0.2
      done ) &
    rpid=$!
    t0=$(date +%s.%N)
    pids=""
    for i in $(seq 1 "$CLIENTS"); do client "$i" "$port" & pids="$pids $!"; done
    wait $pids
    t1=$(date +%s.%N)
    kill -TERM $spid; wait $spid; src=$?
    kill $rpid 2>/dev/null; wait $rpid 2>/dev/null
    # "status seconds completion_tokens", by latency (mawk has no asort)
    while read -r st sec f; do
        tok=$(grep -o '"completion_tokens":[0-9]*' "$f" 2>/dev/null | cut -d: -f2)
        echo "$st $sec ${tok:-0}"
    done < "$W/done" | sort -n -k2 > "$W/sorted"
    rm -f "$W"/c*.body
    awk -v t0="$t0" -v t1="$t1" -v par="$par" -v total="$TOTAL" -v src="$src" -v rssf="$W/rss" '
        { n++; if ($1 != 200) fail++; lat[n] = $2; tok += $3 }
        END {
            m = n
            p50 = lat[int(0.50 * m + 0.999999)]; p99 = lat[int(0.99 * m + 0.999999)]
            while ((getline line < rssf) > 0) {
                split(line, f, " "); if (f[2] == "") continue
                if (f[1] < 50 && f[2] > first) first = f[2]
                if (f[1] >= total - 50 && f[1] < total && f[2] > last) last = f[2]
            }
            wall = t1 - t0
            printf "--parallel %d: %d requests, %d failed; latency p50 %.2f s, p99 %.2f s, max %.2f s; " \
                   "%d tokens in %.1f s = %.2f tok/s; peak RSS first 50 %.1f MiB, last 50 %.1f MiB; server exit %d\n",
                   par, n, fail + (total - n), p50, p99, lat[m], tok, wall, tok / wall, first / 1024, last / 1024, src
        }' "$W/sorted"
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
