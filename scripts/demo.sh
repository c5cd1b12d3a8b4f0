#!/bin/sh
# The demo: installs what it needs, builds pinfer, synthesises a TinyLlama-1.1B-shaped Q4_0
# model (random weights, so the text is gibberish; nothing is downloaded), generates from it and
# benchmarks it against this machine's memory-bandwidth roof; then, if the real stories260K model
# is beside the repository (../shared), tells a story with it.
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
make -j"$(nproc 2>/dev/null || echo 2)" build/pinfer
mkdir -p build/demo
M=build/demo/tinyllama-q4_0.gguf
echo "== pinfer synth: a TinyLlama-1.1B-shaped model, Q4_0 =="
./build/pinfer synth -o $M --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \
    --vocab 32000 --ctx 2048 --type q4_0 --seed 1
echo "== pinfer run =="
./build/pinfer run -m $M -p "Once upon a time" -n 48 -s 1
echo "== pinfer bench =="
./build/pinfer bench -m $M -p 64 -n 32 -r 2
if [ -f ../shared/models/stories260K/stories260K.gguf ]; then
    echo "== a real (tiny) model: stories260K, greedy =="
    ./build/pinfer run -m ../shared/models/stories260K/stories260K.gguf -p "Once upon a time" -n 100 --temp 0
fi
