#!/bin/sh
# Runs each test program given as an argument from the repository root; exit 0 pass, 77 skip,
# anything else fail. Prints one line per test, then "N passed, N failed, N skipped".
pass=0; fail=0; skip=0; failed=""
: "${BUILD:=build}"
export PINFER_TEST_TMP="${PINFER_TEST_TMP:-$PWD/$BUILD/tmp}"
export PINFER_BIN="${PINFER_BIN:-$PWD/$BUILD/pinfer}"
mkdir -p "$PINFER_TEST_TMP"
for t in "$@"; do
    name=$(basename "$t")
    log="$PINFER_TEST_TMP/$name.log"
    start=$(date +%s)
    "$t" >"$log" 2>&1
    rc=$?
    secs=$(( $(date +%s) - start ))
    case $rc in
    0)  pass=$((pass+1)); echo "PASS  $name (${secs}s)";;
    77) skip=$((skip+1)); echo "SKIP  $name: $(grep -m1 '^SKIP' "$log")";;
    *)  fail=$((fail+1)); failed="$failed $name"; echo "FAIL  $name (exit $rc)"; tail -n 30 "$log" | sed 's/^/      /';;
    esac
done
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
