#!/bin/sh
# The demo: installs what it needs, builds pinfer, and with models it synthesises itself (random
# weights, so the text is gibberish; nothing is downloaded):
#   1. a TinyLlama-1.1B-shaped Q4_0 model: generate, then benchmark against the bandwidth roof;
#   2. one sparse (dReLU, 90% of FFN neurons zero per token) model: dense (its source file, as a
#      user runs it) and sparse (predictor) in memory side by side; then the planner: this machine
#      measured once (pinfer probe, cached), the predicted budget -> speed curve (pinfer plan),
#      and two budgets planned and measured beside their predictions (the FFN read from storage
#      by direct I/O through the neuron cache);
#   3. if the real stories260K model is beside the repository (../shared), a story from it.
set -e
cd "$(dirname "$0")/.."
sh scripts/deps.sh
make -j"$(nproc 2>/dev/null || echo 2)" build/pinfer
mkdir -p build/demo
P=./build/pinfer
M=build/demo/tinyllama-q4_0.gguf
echo "== pinfer synth: a TinyLlama-1.1B-shaped model, Q4_0 =="
$P synth -o $M --dim 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632 \
    --vocab 32000 --ctx 2048 --type q4_0 --seed 1
echo "== pinfer run =="
$P run -m $M -p "Once upon a time" -n 48 -s 1
echo "== pinfer bench =="
$P bench -m $M -p 64 -n 32 -r 2

S=build/demo/sparse-drelu.gguf
SP=build/demo/sparse-drelu-prepared.gguf
echo "== a sparse model: synth (dReLU, 90% sparsity, hot 0.3:0.8), then prepare (predictors, bundles) =="
$P synth -o $S --dim 2048 --layers 8 --heads 16 --kv-heads 4 --ffn 8192 --vocab 32000 \
    --type q4_0 --act drelu --sparsity 0.9 --hot 0.3:0.8 --seed 1
[ -f $SP ] || $P prepare -m $S -o $SP --tokens 256 --steps 150
echo "== the model in memory (2 threads, 64 generated tokens) =="
echo "-- 1. dense: the source file, as a user runs it"
$P bench -m $S -p 0 -n 64 -r 2 -t 2
echo "-- 2. sparse (predictor): the prepared file"
$P bench -m $SP -p 0 -n 64 -r 2 -t 2 --sparse predictor
echo "== pinfer plan: what memory buys (pinfer probe measures this machine once, about a minute; cached) =="
$P probe -f $SP > /dev/null
$P plan -m $SP -t 2 --plot build/demo/plan-curve.svg
for pct in 55 75; do
    echo "-- budget $pct% of the file: planned, then measured beside the prediction"
    $P plan -m $SP -t 2 --mem-budget $pct% -o build/demo/plan-$pct.json | tail -3
    $P bench -m $SP --plan build/demo/plan-$pct.json -p 0 -n 64 -r 2
done
if [ -f ../shared/models/stories260K/stories260K.gguf ]; then
    echo "== a real (tiny) model: stories260K, greedy =="
    $P run -m ../shared/models/stories260K/stories260K.gguf -p "Once upon a time" -n 100 --temp 0
fi
