#!/bin/sh
# The demo: installs what it needs, builds pinfer, synthesises a small Llama-shaped model (no
# download) and generates from it; then, if the real stories260K model is beside the repository
# (../shared), tells a story with it.
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
make -j"$(nproc 2>/dev/null || echo 2)" build/pinfer
mkdir -p build/demo
echo "== pinfer synth: a small synthetic llama model (random weights: the text is gibberish) =="
./build/pinfer synth -o build/demo/small.gguf --shape tiny --type q8_0 --seed 1
./build/pinfer run -m build/demo/small.gguf -p "Once upon a time" -n 32 -s 1
if [ -f ../shared/models/stories260K/stories260K.gguf ]; then
    echo "== a real tiny model: stories260K =="
    ./build/pinfer run -m ../shared/models/stories260K/stories260K.gguf -p "Once upon a time" -n 100 --temp 0
fi
