#!/bin/sh
# The whole test suite: installs what it needs, builds, runs every test, then runs them all again
# built with AddressSanitizer + UndefinedBehaviorSanitizer (in build-san/). Prints each suite's
# "N passed, N failed, N skipped" (the sanitizer suite's is the last line); between the two, a
# short smoke run of the fuzz targets. Exits non-zero if anything failed.
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
J=$(nproc 2>/dev/null || echo 2)
echo "== tests (build/) =="
make -j"$J" test
echo "== fuzz smoke run (build-fuzz/): every libFuzzer target on its seeds, a few seconds each =="
sh scripts/fuzz.sh smoke
echo "== tests under ASan+UBSan (build-san/) =="
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    make -j"$J" SAN=1 test
