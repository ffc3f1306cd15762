#!/bin/sh
# The main demo of libscore, as plain `score` commands: train a score model on the 2-D "ring8"
# toy set (8 Gaussian blobs), sample it with two samplers, compare the samples with held-out
# data by the sliced Wasserstein-2 distance (next to the floor of two exact samples), compute
# a log-likelihood, and draw SVG pictures.
# Usage: sh cli/demo.sh [path/to/score] [output directory]
set -eu
SCORE=${1:-build/cli/score}
OUT=${2:-demo-out}
mkdir -p "$OUT"
# The demo's matrices are small (batches of 256 x 64-wide layers): OpenBLAS threads cost more
# than they save there (about 2x slower on two cores), so use one unless told otherwise.
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS
start=$(date +%s)

echo "== 1. train: MLP, continuous-time DSM on the VP SDE, 6000 Adam steps"
"$SCORE" train --dataset ring8 -n 20000 --schedule vp --predict eps --loss sde \
    --hidden 64 --depth 3 --steps 6000 --batch 256 --lr 2e-3 --seed 0 \
    -o "$OUT/ring8.safetensors" --plot "$OUT/train.svg"
"$SCORE" info "$OUT/ring8.safetensors"

echo
echo "== 2. held-out data, and a second exact sample for the distance floor"
"$SCORE" datasets ring8 -n 2000 --seed 101 -o "$OUT/heldout.csv"
"$SCORE" datasets ring8 -n 2000 --seed 202 -o "$OUT/exact.csv"

echo
echo "== 3. sample 2000 points with two samplers"
"$SCORE" sample "$OUT/ring8.safetensors" --sampler pc --steps 250 -n 2000 --seed 1 \
    -o "$OUT/samples-pc.csv" --ref "$OUT/heldout.csv" --plot "$OUT/samples-pc.svg"
"$SCORE" sample "$OUT/ring8.safetensors" --sampler dpmpp-2m --steps 20 -n 2000 --seed 1 \
    -o "$OUT/samples-dpmpp-2m.csv" --ref "$OUT/heldout.csv" --plot "$OUT/samples-dpmpp-2m.svg"

echo
echo "== 4. sliced Wasserstein-2 distance to the held-out data (256 random directions)"
floor=$("$SCORE" distance "$OUT/exact.csv" "$OUT/heldout.csv")
pc=$("$SCORE" distance "$OUT/samples-pc.csv" "$OUT/heldout.csv")
dpm=$("$SCORE" distance "$OUT/samples-dpmpp-2m.csv" "$OUT/heldout.csv")
printf '  %-38s %s\n' "exact samples (the floor at n = 2000)" "$floor"
printf '  %-38s %s\n' "pc, 250 steps (500 evaluations)" "$pc"
printf '  %-38s %s\n' "dpmpp-2m, 20 steps (20 evaluations)" "$dpm"

echo
echo "== 5. log-likelihood of 200 held-out points (probability-flow ODE, exact divergence)"
head -n 201 "$OUT/heldout.csv" >"$OUT/heldout-200.csv"
"$SCORE" loglik "$OUT/ring8.safetensors" "$OUT/heldout-200.csv" -q
echo "   (the true density gives -2.84 nats per point on average: log 8 + log(2 pi e 0.125))"

echo
echo "pictures: $OUT/train.svg (score field and loss), $OUT/samples-pc.svg, $OUT/samples-dpmpp-2m.svg"
echo "demo finished in $(( $(date +%s) - start )) s"
