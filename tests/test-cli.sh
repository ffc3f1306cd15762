#!/bin/sh
# Tests of the `score` command-line tool: every error path gives one clear line on stderr and
# a non-zero exit status; a short happy path (train, info, sample, loglik, distance, datasets)
# works end to end. Usage: test-cli.sh /path/to/score
set -u
SCORE=${1:?usage: test-cli.sh /path/to/score}
T=$(mktemp -d "${TMPDIR:-/tmp}/score-cli-test.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
fails=0
n=0

# expect_fail STATUS PATTERN -- command...: the command must exit with STATUS, print exactly one
# line on stderr, and that line must contain PATTERN (a fixed string).
expect_fail() {
    want=$1 pat=$2
    shift 3
    n=$((n + 1))
    "$@" >"$T/out" 2>"$T/err"
    st=$?
    lines=$(wc -l <"$T/err")
    if [ "$st" -ne "$want" ] || [ "$lines" -ne 1 ] || ! grep -qF -- "$pat" "$T/err"; then
        echo "FAIL: $*"
        echo "  want status $want and one stderr line containing: $pat"
        echo "  got status $st, $lines stderr line(s):"
        sed 's/^/    /' "$T/err"
        fails=$((fails + 1))
    fi
}

# expect_ok -- command...: the command must succeed.
expect_ok() {
    shift
    n=$((n + 1))
    if ! "$@" >"$T/out" 2>"$T/err"; then
        echo "FAIL (status $?): $*"
        sed 's/^/    /' "$T/err"
        fails=$((fails + 1))
    fi
}

# ---- usage errors (status 2) ---------------------------------------------------------------
expect_fail 2 "unknown command 'trian'" -- "$SCORE" trian
expect_fail 2 "unknown option '--stpes'" -- "$SCORE" train --dataset ring8 -o "$T/m" --stpes 3
expect_fail 2 "option '--steps' needs a value" -- "$SCORE" train --dataset ring8 -o "$T/m" --steps
expect_fail 2 "'abc' is not a non-negative integer" -- "$SCORE" train --dataset ring8 -o "$T/m" --steps abc
expect_fail 2 "--batch 0 is out of range" -- "$SCORE" train --dataset ring8 -o "$T/m" --batch 0
expect_fail 2 "--lr: 'nan' is not a finite number" -- "$SCORE" train --dataset ring8 -o "$T/m" --lr nan
expect_fail 2 "give exactly one of --dataset NAME and --data FILE.csv" -- "$SCORE" train -o "$T/m"
# model files and checkpoints are files, never standard output (no file named '-' appears)
expect_fail 2 "-o -: this file cannot go to standard output" -- "$SCORE" train --dataset ring8 -o - --steps 1
expect_fail 2 "--checkpoint -: this file cannot go to standard output" -- "$SCORE" train --dataset ring8 -o "$T/m" --checkpoint - --steps 1
expect_fail 2 "-o -: this file cannot go to standard output" -- "$SCORE" convert "$T/none.safetensors" -o - --schedule vp --predict eps
[ ! -e ./- ] || { echo "FAIL: a file named '-' was written"; fails=$((fails + 1)); }
expect_fail 2 "missing -o MODEL.safetensors" -- "$SCORE" train --dataset ring8
expect_fail 2 "unknown dataset 'rings' (valid: ring8, moons, swissroll, checkerboard, gaussian)" -- \
    "$SCORE" train --dataset rings -o "$T/m"
expect_fail 2 "unknown loss 'dms' (valid: sde, dsm," -- "$SCORE" train --dataset ring8 -o "$T/m" --loss dms
expect_fail 2 "unknown schedule 'vpp' (valid:" -- "$SCORE" train --dataset ring8 -o "$T/m" --schedule vpp
expect_fail 2 "unknown activation 'relu' (valid: silu, softplus, tanh, elu, gelu)" -- \
    "$SCORE" train --dataset ring8 -o "$T/m" --activation relu
expect_fail 2 "unknown output kind (--predict) 'noise'" -- "$SCORE" train --dataset ring8 -o "$T/m" --predict noise
expect_fail 2 "--sigma-min does not apply to the vp schedule" -- \
    "$SCORE" train --dataset ring8 -o "$T/m" --schedule vp --sigma-min 0.1
expect_fail 2 "--dims: expected two column numbers" -- \
    "$SCORE" train --dataset ring8 -o "$T/m" --steps 2 --plot "$T/p.svg" --dims 1
expect_fail 2 "unknown dataset 'ring9'" -- "$SCORE" datasets ring9

# ---- data errors (status 1) -----------------------------------------------------------------
printf 'x,y\n1,2\n3,4\n' >"$T/good.csv"
printf '1,2\n3,abc\n' >"$T/bad-number.csv"
printf 'a,b\n1,2\n3,4,5\n' >"$T/bad-columns.csv"
printf '1,2\n,4\n' >"$T/empty-field.csv"
printf '# nothing\n' >"$T/empty.csv"
printf '1,2,3\n4,5,6\n' >"$T/three.csv"
expect_fail 1 "cannot open '$T/missing.csv'" -- "$SCORE" train --data "$T/missing.csv" -o "$T/m"
expect_fail 1 "bad-number.csv:2:3: column 2: 'abc' is not a number" -- \
    "$SCORE" train --data "$T/bad-number.csv" -o "$T/m"
expect_fail 1 "bad-columns.csv:3: 3 columns, but the header names 2" -- \
    "$SCORE" train --data "$T/bad-columns.csv" -o "$T/m"
expect_fail 1 "empty-field.csv:2:1: column 1 is empty" -- "$SCORE" train --data "$T/empty-field.csv" -o "$T/m"
expect_fail 1 "empty.csv: no data rows" -- "$SCORE" train --data "$T/empty.csv" -o "$T/m"
expect_fail 1 "cannot write" -- "$SCORE" train --dataset ring8 -n 64 --steps 2 -o "$T/no/such/dir/m.st" -q

# ---- a short happy path ---------------------------------------------------------------------
M="$T/ring8.safetensors"
expect_ok -- "$SCORE" train --dataset ring8 -n 512 --steps 30 --batch 64 --hidden 16 --depth 2 \
    -o "$M" --plot "$T/train.svg" -q
[ -s "$M" ] || { echo "FAIL: no model file written"; fails=$((fails + 1)); }
grep -q "</svg>" "$T/train.svg" 2>/dev/null || { echo "FAIL: train --plot wrote no SVG"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" info "$M"
grep -q "schedule:      vp" "$T/out" || { echo "FAIL: info does not name the schedule"; cat "$T/out"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$M" --sampler dpmpp-2m --steps 5 -n 50 -o "$T/s.csv" --plot "$T/s.svg" -q
[ "$(wc -l <"$T/s.csv")" -eq 51 ] || { echo "FAIL: sample wrote $(wc -l <"$T/s.csv") lines, want 51"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$M" --sampler pc --steps 5 -n 20 -q
[ "$(wc -l <"$T/out")" -eq 21 ] || { echo "FAIL: sample to stdout"; fails=$((fails + 1)); }
# --threads changes who computes, never the result (the rows are cut into the same blocks;
# training: hidden 256 and 600 rows are enough work for the model to use its threads)
expect_ok -- "$SCORE" sample "$M" --sampler pc --steps 3 -n 5000 -o "$T/t1.csv" -q
expect_ok -- "$SCORE" sample "$M" --sampler pc --steps 3 -n 5000 -o "$T/t3.csv" --threads 3 -q
cmp -s "$T/t1.csv" "$T/t3.csv" || { echo "FAIL: sample --threads 3 changed the samples"; fails=$((fails + 1)); }
expect_fail 2 "--threads 0 is out of range [1, 1024]" -- "$SCORE" sample "$M" --threads 0 -n 5 -q
expect_ok -- "$SCORE" train --dataset ring8 -n 600 --steps 3 --batch 600 --hidden 256 --depth 2 \
    -o "$T/th1.safetensors" -q
expect_ok -- "$SCORE" train --dataset ring8 -n 600 --steps 3 --batch 600 --hidden 256 --depth 2 \
    -o "$T/th2.safetensors" --threads 2 -q
# (the files differ in the recorded training time: compare what the weights produce)
expect_ok -- "$SCORE" sample "$T/th1.safetensors" --sampler pc --steps 3 -n 300 -o "$T/th1.csv" -q
expect_ok -- "$SCORE" sample "$T/th2.safetensors" --sampler pc --steps 3 -n 300 -o "$T/th2.csv" -q
cmp -s "$T/th1.csv" "$T/th2.csv" || { echo "FAIL: train --threads 2 changed the weights"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" loglik "$M" "$T/s.csv" -o "$T/ll.csv" --rtol 1e-3 --atol 1e-3 -q
grep -q "bits/dim" "$T/out" || { echo "FAIL: loglik prints no mean"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" datasets
expect_ok -- "$SCORE" datasets moons -n 10 -o "$T/moons.csv"
expect_ok -- "$SCORE" distance "$T/s.csv" "$T/moons.csv"
expect_ok -- "$SCORE" --help
expect_ok -- "$SCORE" sample --help
grep -q "dpmpp-2m" "$T/out" || { echo "FAIL: sample --help does not list the samplers"; fails=$((fails + 1)); }

# more paths: CSV training data, every sampler family, guidance, one-level losses, Hutchinson
printf 'a,b\n' >"$T/train.csv"
awk 'BEGIN { srand(3); for (i = 0; i < 300; i++) printf "%.4f,%.4f\n", rand() * 4 - 2, rand() }' >>"$T/train.csv"
M2="$T/csv.safetensors"
expect_ok -- "$SCORE" train --data "$T/train.csv" --steps 20 --batch 32 --hidden 8 --depth 1 \
    --schedule ve-toy --predict score-over-sigma --no-standardize -o "$M2" -q
for smp in ode ald edm euler heun ddim dpm-solver-3 dpmpp-3m dpmpp-2m-sde euler-ancestral em ancestral dpm-adaptive; do
    expect_ok -- "$SCORE" sample "$M2" --sampler "$smp" --steps 4 -n 8 -o "$T/x.csv" -q
done
expect_ok -- "$SCORE" sample "$M2" --sampler heun --steps 3 --corrector langevin --corrector-steps 2 -n 8 -q
# the predictor's order: --order caps it, --order-sequence makes --steps a budget of model
# evaluations (DPM-Solver-fast), --no-lower-order-final keeps the order on the last steps
nfe_is() { # expected evaluations per sample in the summary of the last command
    grep -q ": $1 model evaluations per sample" "$T/err" ||
        { echo "FAIL: want $1 evaluations per sample: $(cat "$T/err")"; fails=$((fails + 1)); }
}
expect_ok -- "$SCORE" sample "$M2" --sampler dpm-solver-3 --steps 10 --no-denoise -n 8 -o "$T/o1.csv"
nfe_is 30
expect_ok -- "$SCORE" sample "$M2" --sampler dpm-solver-3 --steps 10 --no-denoise -n 8 -o "$T/o2.csv" --order 2
nfe_is 20
expect_ok -- "$SCORE" sample "$M2" --sampler dpm-solver-3 --steps 10 --no-denoise -n 8 -o "$T/o3.csv" --order-sequence auto
nfe_is 10
expect_ok -- "$SCORE" sample "$M2" --sampler dpm-solver-3 --steps 10 --no-denoise -n 8 -o "$T/o4.csv" --order-sequence steps
nfe_is 10
expect_ok -- "$SCORE" sample "$M2" --sampler dpm-solver-3 --steps 10 --no-denoise -n 8 -o "$T/o5.csv" --order-sequence cumulative
nfe_is 10
# the sampler's grid is uniform-lambda: auto = steps (DPM-Solver's rule), not cumulative
cmp -s "$T/o3.csv" "$T/o4.csv" || { echo "FAIL: --order-sequence auto differs from steps on uniform-lambda"; fails=$((fails + 1)); }
cmp -s "$T/o4.csv" "$T/o5.csv" && { echo "FAIL: --order-sequence steps and cumulative agree"; fails=$((fails + 1)); }
cmp -s "$T/o1.csv" "$T/o2.csv" && { echo "FAIL: --order 2 changed nothing"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$M2" --sampler dpmpp-3m --steps 5 --no-denoise -n 8 -o "$T/o6.csv" -q
expect_ok -- "$SCORE" sample "$M2" --sampler dpmpp-3m --steps 5 --no-denoise -n 8 -o "$T/o7.csv" -q --no-lower-order-final
cmp -s "$T/o6.csv" "$T/o7.csv" && { echo "FAIL: --no-lower-order-final changed nothing"; fails=$((fails + 1)); }
expect_fail 1 "order_sequence needs a singlestep predictor" -- "$SCORE" sample "$M2" --sampler dpmpp-2m --order-sequence auto -n 8 -q
expect_fail 2 "unknown order sequence 'fast' (valid: off, auto, steps, cumulative)" -- "$SCORE" sample "$M2" --order-sequence fast
expect_fail 2 "--order 4 is out of range [1, 3]" -- "$SCORE" sample "$M2" --order 4
expect_fail 2 "'langevin' has none" -- "$SCORE" sample "$M2" --sampler langevin --order 2
# the k-diffusion / diffusers spellings score_step_type_find() accepts name the same sampler
expect_ok -- "$SCORE" sample "$M2" --sampler euler-ancestral --steps 4 -n 8 -o "$T/k1.csv" -q
for smp in euler_ancestral k_euler_a EulerAncestralDiscreteScheduler; do
    expect_ok -- "$SCORE" sample "$M2" --sampler "$smp" --steps 4 -n 8 -o "$T/k2.csv" -q
    cmp -s "$T/k1.csv" "$T/k2.csv" || { echo "FAIL: --sampler $smp differs from euler-ancestral"; fails=$((fails + 1)); }
done
for smp in dpmpp_2s_ancestral dpm_2_a k_dpmpp_2m unipc_bh1 DEISMultistepScheduler; do
    expect_ok -- "$SCORE" sample "$M2" --sampler "$smp" --steps 4 -n 8 -q
done
expect_fail 2 "unknown sampler 'k_nope'" -- "$SCORE" sample "$M2" --sampler k_nope --steps 4 -n 8 -q
expect_ok -- "$SCORE" sample "$M" --guidance 1.5 --uncond "$M" --sampler dpmpp-2m --steps 4 -n 8 -q
expect_fail 1 "cannot guide $M: score_genmodel_new_cfg: the models differ in schedule kind (vp vs ve)" -- \
    "$SCORE" sample "$M" --guidance 1.5 --uncond "$M2" -n 8 -q
# guidance members are checked by the library, each difference with its own message
G="train -n 256 --steps 3 --batch 32 --hidden 8 --depth 1 -q"
expect_ok -- "$SCORE" $G --dataset ring8 -o "$T/g-ring.safetensors"
expect_ok -- "$SCORE" $G --dataset ring8 --hidden 16 -o "$T/g-ring16.safetensors"
expect_ok -- "$SCORE" $G --dataset moons -o "$T/g-moons.safetensors"
expect_ok -- "$SCORE" $G --dataset ring8 --beta-max 15 -o "$T/g-beta.safetensors"
expect_ok -- "$SCORE" $G --dataset ring8 --predict x0 -o "$T/g-x0.safetensors"
expect_fail 1 "the models differ in data transform: shift of dimension 0" -- \
    "$SCORE" sample "$T/g-ring.safetensors" --guidance 1 --uncond "$T/g-moons.safetensors" -n 4 -q
expect_fail 1 "the models differ in schedule parameter beta_max (20 vs 15)" -- \
    "$SCORE" sample "$T/g-ring.safetensors" --guidance 1 --uncond "$T/g-beta.safetensors" -n 4 -q
expect_fail 1 "the models differ in output kind (SCORE_SDE_PARAM_OUTPUT) (2 vs 3)" -- \
    "$SCORE" sample "$T/g-ring.safetensors" --guidance 1 --uncond "$T/g-x0.safetensors" -n 4 -q
# matching members (same data, so the same transform; another network) are combined
expect_ok -- "$SCORE" sample "$T/g-ring.safetensors" --guidance 1 --uncond "$T/g-ring16.safetensors" \
    --sampler heun --steps 4 -n 4 -o "$T/g.csv" -q
[ "$(wc -l <"$T/g.csv")" -eq 5 ] || { echo "FAIL: guided samples"; fails=$((fails + 1)); }
# sampled CSVs keep the data's column names (stored in the model); info shows the transform,
# the columns and the condition spec
expect_ok -- "$SCORE" sample "$M2" --sampler euler --steps 3 -n 3 -o "$T/named.csv" -q
[ "$(head -n 1 "$T/named.csv")" = "a,b" ] || { echo "FAIL: sample lost the column names"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" info "$M2"
grep -q "^columns:       a, b" "$T/out" && grep -q "^condition:     none" "$T/out" &&
    grep -q "^data scaling:  none" "$T/out" ||
    { echo "FAIL: info shows no columns / condition / transform"; cat "$T/out"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" info "$M"
grep -q "^data scaling:  x_model = (x - shift) / scale" "$T/out" ||
    { echo "FAIL: info shows no transform"; fails=$((fails + 1)); }
# files of the score tool of 0.1 (meaning in user.score.* metadata) sample and evaluate as
# they did then (tests/data: the files and the outputs of that tool)
DATA=$(dirname "$0")/data
expect_ok -- "$SCORE" sample "$DATA/cli-0.1-vp.safetensors" --sampler euler --steps 10 -n 6 \
    --seed 7 -o "$T/old.csv" -q
# samples and likelihoods: to 1e-5 relative (the samplers and the likelihood's trace now
# evaluate an MLP in row panels aligned to the row number, so that any batch split gives the
# same bits; the 0.1 tool rounded these few rows as a short GEMM remainder, and the adaptive
# solve of log p, at rtol = atol = 1e-5, turns such last-bit differences into differences of
# the order of its tolerance)
close_csv() {
    awk -F, 'NR == FNR { for (i = 1; i <= NF; i++) a[FNR, i] = $i; n = FNR; next }
        { for (i = 1; i <= NF; i++) { if (FNR == 1 && $i !~ /^[-+0-9.eE]+$/) { if ($i != a[FNR, i]) bad = 1; continue }
              d = $i - a[FNR, i]; if (d < 0) d = -d; m = a[FNR, i]; if (m < 0) m = -m; if (m < 1) m = 1
              if (d > 1e-5 * m) bad = 1 } }
        END { exit (bad || n != FNR) }' "$1" "$2"
}
close_csv "$T/old.csv" "$DATA/cli-0.1-vp-euler.csv" || { echo "FAIL: a 0.1 file samples differently"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$DATA/cli-0.1-dsm.safetensors" --sampler langevin --steps 10 -n 4 \
    --seed 7 -o "$T/old.csv" -q
close_csv "$T/old.csv" "$DATA/cli-0.1-dsm-langevin.csv" || { echo "FAIL: a 0.1 one-level file samples differently"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" loglik "$DATA/cli-0.1-vp.safetensors" "$DATA/cli-0.1-rows.csv" --exact -o "$T/old.csv" -q
close_csv "$T/old.csv" "$DATA/cli-0.1-vp-loglik.csv" || { echo "FAIL: a 0.1 file's likelihoods differ"; fails=$((fails + 1)); }
# a plain network file is refused with the way out; 'score convert' makes a generative model
NET="$DATA/../fuzz/corpus/mlp-fourier.safetensors"
expect_fail 1 "a plain network file" -- "$SCORE" sample "$NET" -n 2 -q
expect_ok -- "$SCORE" info "$NET"
grep -q "^generative:    no, a plain network file" "$T/out" || { echo "FAIL: info of a plain network"; fails=$((fails + 1)); }
expect_fail 2 "give -o MODEL.safetensors, --schedule NAME and --predict KIND" -- "$SCORE" convert "$NET" -o "$T/conv.safetensors"
expect_ok -- "$SCORE" convert "$NET" -o "$T/conv.safetensors" --schedule ve --predict score --cond sigma
expect_ok -- "$SCORE" info "$T/conv.safetensors"
grep -q "^schedule:      ve" "$T/out" && grep -q "^output:        score (conditioning sigma)" "$T/out" ||
    { echo "FAIL: convert did not record the schedule and output"; cat "$T/out"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$T/conv.safetensors" --sampler heun --steps 3 -n 3 -q
expect_ok -- "$SCORE" loglik "$M2" "$T/train.csv" --hutchinson 2 --rtol 1e-2 --atol 1e-2 -q
expect_ok -- "$SCORE" train --dataset moons -n 256 --steps 10 --batch 32 --hidden 8 --depth 1 \
    --loss dsm --sigma 0.2 -o "$T/dsm.safetensors" --plot "$T/dsm.svg" -q
expect_ok -- "$SCORE" sample "$T/dsm.safetensors" --sampler langevin --steps 5 -n 8 -q
expect_fail 2 "was trained at one noise level only" -- "$SCORE" sample "$T/dsm.safetensors" --sampler pc
expect_fail 1 "has no likelihood" -- "$SCORE" loglik "$T/dsm.safetensors" "$T/good.csv" -q
# the energy model: training, info, anomaly scores per row, the mala corrector, refusals
expect_ok -- "$SCORE" train --dataset ring8 -n 256 --steps 5 --batch 32 --hidden 8 --depth 1 \
    --model energy -o "$T/energy.safetensors" -q
expect_ok -- "$SCORE" info "$T/energy.safetensors"
grep -q "^model:         energy, dim 2" "$T/out" || { echo "FAIL: info of an energy model"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" energy "$T/energy.safetensors" "$T/good.csv" -o "$T/energy.csv"
grep -q "^mean energy" "$T/out" && [ "$(sed -n 1p "$T/energy.csv")" = "energy" ] &&
    [ "$(wc -l <"$T/energy.csv")" -eq "$(($(grep -c . "$T/good.csv") ))" ] ||
    { echo "FAIL: score energy output"; cat "$T/out"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$T/energy.safetensors" --sampler pc --corrector mala --steps 3 -n 4 -q
expect_fail 1 "has no energy" -- "$SCORE" energy "$M" "$T/good.csv"
expect_fail 2 "--predict score" -- "$SCORE" train --dataset ring8 --model energy --predict eps -o "$T/m" -q
# --init of an energy model: at learning rate 0 the weights are kept (the same energies); an
# MLP file or another width is refused
expect_ok -- "$SCORE" train --dataset ring8 -n 256 --steps 3 --batch 32 --hidden 8 --depth 1 \
    --model energy --lr 0 --ema 0 --init "$T/energy.safetensors" -o "$T/energy2.safetensors" -q
expect_ok -- "$SCORE" energy "$T/energy2.safetensors" "$T/good.csv" -o "$T/energy2.csv"
cmp -s "$T/energy.csv" "$T/energy2.csv" || { echo "FAIL: --init of an energy model changed its energies"; fails=$((fails + 1)); }
expect_fail 1 "its network is an MLP, this run trains an energy MLP (--model)" -- "$SCORE" train --dataset ring8 \
    -n 64 --steps 1 --hidden 8 --depth 1 --model energy --init "$M" -o "$T/m" -q
expect_fail 1 "its network has --hidden 8, this run asks for 16" -- "$SCORE" train --dataset ring8 \
    -n 64 --steps 1 --hidden 16 --depth 1 --model energy --init "$T/energy.safetensors" -o "$T/m" -q
expect_ok -- "$SCORE" train --dataset gaussian -n 256 --steps 5 --batch 32 --hidden 8 --depth 1 \
    --loss ssm-vr --projections 2 -o "$T/ssm.safetensors" -q
expect_ok -- "$SCORE" info "$T/dsm.safetensors" --all
grep -q "genmodel.fixed_t" "$T/out" && grep -q "^noise level:   trained at one time" "$T/out" ||
    { echo "FAIL: info (--all) shows no fixed time"; fails=$((fails + 1)); }
expect_fail 2 "--loss ncsn needs a discrete schedule" -- \
    "$SCORE" train --dataset ring8 -n 64 --steps 2 --loss ncsn --schedule vp -o "$T/m" -q
expect_ok -- "$SCORE" train --dataset ring8 -n 256 --steps 5 --batch 32 --hidden 8 --depth 1 \
    --loss ncsn --schedule ncsn -o "$T/ncsn.safetensors" -q
expect_ok -- "$SCORE" sample "$T/ncsn.safetensors" --sampler ald --steps 5 -n 8 -q

# ---- option syntax (getopt_long): abbreviations, combined short options, "--" -------------------
expect_ok -- "$SCORE" train --datas ring8 -n 64 --ste 3 --bat 32 --hid 8 --dep 1 -q --out "$T/abbr.safetensors"
expect_ok -- "$SCORE" info "$T/abbr.safetensors" --all
grep -Eq "score.train.steps +3$" "$T/out" && grep -Eq "score.train.batch +32$" "$T/out" ||
    { echo "FAIL: abbreviated options were not applied"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$M" -qn7 --sampler=pc --steps=3 -o "$T/short.csv"
[ "$(wc -l <"$T/short.csv")" -eq 8 ] && [ ! -s "$T/err" ] ||
    { echo "FAIL: combined short options -qn7"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample -qn 7 --sampler pc --steps 3 -o "$T/short2.csv" -- "$M"
cmp -s "$T/short.csv" "$T/short2.csv" || { echo "FAIL: -qn 7 and '--' changed the samples"; fails=$((fails + 1)); }
expect_fail 2 "option '--st' is ambiguous (could be --steps, --step-size, --strength)" -- "$SCORE" sample "$M" --st 5
expect_fail 2 "option '--h' is ambiguous (could be --hidden, --help)" -- "$SCORE" train --h
expect_fail 2 "unknown option '-x' (see 'score sample --help')" -- "$SCORE" sample "$M" -qx
expect_fail 2 "option '--quiet' takes no value" -- "$SCORE" sample "$M" --quiet=1
expect_fail 2 "option '--output' needs a value (FILE)" -- "$SCORE" sample "$M" -q -o
expect_fail 2 "unexpected argument 'extra'" -- "$SCORE" info "$M" -- extra

# ---- model files from stdin ('-') -----------------------------------------------------------------
expect_ok -- sh -c '"$1" sample - -qn 7 --sampler pc --steps 3 -o "$2" <"$3"' sh "$SCORE" "$T/stdin.csv" "$M"
cmp -s "$T/short.csv" "$T/stdin.csv" || { echo "FAIL: sample - (model from stdin) differs"; fails=$((fails + 1)); }
expect_ok -- sh -c '"$1" info - <"$2"' sh "$SCORE" "$M"
grep -q "schedule:      vp" "$T/out" || { echo "FAIL: info - (model from stdin)"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample --help
grep -qF "MODEL '-' = stdin" "$T/out" || { echo "FAIL: sample --help does not document '-'"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" --help
grep -qF "Inputs (model files and CSV) must be regular files, or '-' for stdin" "$T/out" ||
    { echo "FAIL: score --help does not document '-' for model files"; fails=$((fails + 1)); }
expect_fail 2 "only one input can be '-' (stdin)" -- sh -c '"$1" loglik - - -q <"$2"' sh "$SCORE" "$M"

# ---- errors that need a model ----------------------------------------------------------------
expect_fail 1 "cannot open model file '$T/nope.safetensors'" -- "$SCORE" sample "$T/nope.safetensors"
expect_fail 1 "is not a model file" -- "$SCORE" info "$T/good.csv"
expect_fail 2 "unknown sampler 'dpm++2m' (valid: pc, ode, ald" -- "$SCORE" sample "$M" --sampler dpm++2m
expect_fail 2 "unknown grid 'linear' (valid: uniform-t" -- "$SCORE" sample "$M" --grid linear
expect_fail 2 "--guidance W and --uncond MODEL go together" -- "$SCORE" sample "$M" --guidance 2
expect_fail 1 "three.csv has 3 columns but the model's dimension is 2" -- \
    "$SCORE" loglik "$M" "$T/three.csv" -q
expect_fail 1 "dimension mismatch: " -- "$SCORE" distance "$T/good.csv" "$T/three.csv"
expect_fail 2 "--exact and --hutchinson exclude each other" -- \
    "$SCORE" loglik "$M" "$T/good.csv" --exact --hutchinson 2
expect_fail 2 "--sampler langevin is for models trained at one noise level" -- \
    "$SCORE" sample "$M" --sampler langevin

# ---- class labels: train --label-column, sample --class [--guidance] -------------------------
# Two well separated 2-D clusters, labelled "left" (x near -3) and "right" (x near +3); the label
# column sits between the data columns. Each class's samples must land on its side.
awk 'BEGIN { srand(7); print "x,side,y"
    for (i = 0; i < 400; i++) {
        r = i % 2; u = rand() + 1e-12; v = rand(); g = sqrt(-2 * log(u))
        printf "%.4f,%s,%.4f\n", (r ? 3 : -3) + 0.5 * g * cos(6.2831853 * v), r ? "right" : "left",
            0.5 * g * sin(6.2831853 * v) } }' >"$T/labelled.csv"
ML="$T/labelled.safetensors"
expect_ok -- "$SCORE" train --data "$T/labelled.csv" --label-column side --p-uncond 0.2 \
    --steps 1500 --batch 128 --hidden 32 --depth 2 -o "$ML" -q
expect_ok -- "$SCORE" info "$ML"
grep -qF "class label, 2 classes (left, right)" "$T/out" && grep -qF "columns:       x, y" "$T/out" ||
    { echo "FAIL: info does not show the classes and the data columns"; cat "$T/out"; fails=$((fails + 1)); }
# ... the null label, the label dropout of the training, no dequantization, and the transform
# per column: shift = the column's mean, scale = its sample standard deviation (awk, in double)
grep -qF "class label, 2 classes (left, right), null label 2" "$T/out" &&
    grep -qF "trained with label dropout p_uncond 0.2" "$T/out" &&
    grep -q "^dequantize:    none" "$T/out" &&
    grep -q "^data scaling:  x_model = (x - shift) / scale, per column:" "$T/out" ||
    { echo "FAIL: info does not show the condition spec / dequantization"; cat "$T/out"; fails=$((fails + 1)); }
for col in x:1 y:3; do
    name=${col%%:*} field=${col##*:}
    printed=$(awk -v n="$name" '$1 == n && $2 == "shift" { sub(",", "", $3); print $3, $5 }' "$T/out")
    awk -F, -v f="$field" -v p="$printed" 'NR > 1 { n++; s += $f; q[n] = $f }
        END { m = s / n; for (i = 1; i <= n; i++) v += (q[i] - m) ^ 2; sd = sqrt(v / (n - 1))
              split(p, got, " "); d1 = got[1] - m; d2 = got[2] - sd
              exit !(p != "" && d1 * d1 <= 1e-12 * (1 + m * m) && d2 * d2 <= 1e-12 * sd * sd) }' \
        "$T/labelled.csv" ||
        { echo "FAIL: info shows shift/scale '$printed' for column $name"; cat "$T/out"; fails=$((fails + 1)); }
done
# share_on_side FILE left|right: the fraction of the samples (after the header) on that side
share_on_side() {
    awk -F, -v side="$2" 'NR > 1 { n++; if ((side == "left") == ($1 < 0)) k++ } END { print (n ? k / n : 0) }' "$1"
}
for side in left right; do
    for w in 0 1; do
        expect_ok -- "$SCORE" sample "$ML" --class "$side" --guidance "$w" -n 500 --sampler dpmpp-2m \
            -o "$T/class-$side-$w.csv"
        grep -qF "; class $side" "$T/err" || { echo "FAIL: the summary does not name class $side"; fails=$((fails + 1)); }
        [ "$(head -n 1 "$T/class-$side-$w.csv")" = "x,y" ] ||
            { echo "FAIL: --class samples lost the column names"; fails=$((fails + 1)); }
        share=$(share_on_side "$T/class-$side-$w.csv" "$side")
        awk -v s="$share" 'BEGIN { exit !(s >= 0.9) }' ||
            { echo "FAIL: --class $side --guidance $w: only $share of the samples on the $side"; fails=$((fails + 1)); }
    done
done
# by index (0 = left, the sorted order) the same samples as by name
expect_ok -- "$SCORE" sample "$ML" --class 0 -n 500 --sampler dpmpp-2m -q --guidance 0 -o "$T/class-0.csv"
cmp -s "$T/class-0.csv" "$T/class-left-0.csv" || { echo "FAIL: --class 0 differs from --class left"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$ML" -n 20 --sampler dpmpp-2m
grep -qF "no --class: the unconditional model (null label)" "$T/err" ||
    { echo "FAIL: sampling without --class does not say it is unconditional"; fails=$((fails + 1)); }
# integer labels are classes in numeric order; a number is then a label, never an index
awk -F, 'NR == 1 { print "a,b,k" } NR > 1 { print $1 "," $3 "," ($2 == "left" ? 10 : -5) }' \
    "$T/labelled.csv" >"$T/intlabels.csv"
expect_ok -- "$SCORE" train --data "$T/intlabels.csv" --label-column k --steps 3 --batch 32 \
    --hidden 8 --depth 1 -o "$T/intlabels.safetensors" -q
expect_ok -- "$SCORE" info "$T/intlabels.safetensors"
grep -qF "class label, 2 classes (-5, 10)" "$T/out" || { echo "FAIL: integer labels not in numeric order"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" sample "$T/intlabels.safetensors" --class 10 -n 3 --steps 3 -q
expect_fail 2 "unknown class '1' (valid: -5, 10)" -- "$SCORE" sample "$T/intlabels.safetensors" --class 1 -n 3
expect_fail 2 "unknown class 'up' (valid: left, right)" -- "$SCORE" sample "$ML" --class up
expect_fail 2 "unknown class '2' (valid: left, right)" -- "$SCORE" sample "$ML" --class 2
expect_fail 2 "is not a class-conditional model (train it with --label-column NAME)" -- \
    "$SCORE" sample "$M" --class left
expect_fail 2 "(or --guidance W with --class K|NAME on a class-conditional model)" -- "$SCORE" sample "$ML" --guidance 1
expect_fail 2 "--class guides the one class-conditional model" -- \
    "$SCORE" sample "$ML" --class left --guidance 1 --uncond "$ML"
expect_fail 2 "--p-uncond applies to class-conditional training only (give --label-column NAME)" -- \
    "$SCORE" train --data "$T/train.csv" --p-uncond 0.2 -o "$T/m" -q
expect_fail 2 "--p-uncond 1.5 is out of range" -- \
    "$SCORE" train --data "$T/labelled.csv" --label-column side --p-uncond 1.5 -o "$T/m" -q
expect_fail 1 "labelled.csv: no column named 'label' in the header" -- \
    "$SCORE" train --data "$T/labelled.csv" --label-column label -o "$T/m" -q
tail -n +2 "$T/labelled.csv" >"$T/noheader.csv"
expect_fail 1 "noheader.csv: no header line naming the columns (looked for column 'side')" -- \
    "$SCORE" train --data "$T/noheader.csv" --label-column side -o "$T/m" -q
awk -F, 'NR == 1 { print } NR > 1 { print $1 ",same," $3 }' "$T/labelled.csv" >"$T/oneclass.csv"
expect_fail 1 "--label-column side: 1 distinct label (a class-conditional model needs 2 to 65535 classes)" -- \
    "$SCORE" train --data "$T/oneclass.csv" --label-column side -o "$T/m" -q
expect_fail 2 "--label-column needs --data FILE.csv" -- \
    "$SCORE" train --dataset ring8 --label-column side -o "$T/m" -q

# ---- classifier guidance: train-classifier, sample --classifier --class ---------------------
# The same two clusters: an unconditional model of x, y and a classifier of 'side' for it.
awk -F, 'NR == 1 { print "x,y" } NR > 1 { print $1 "," $3 }' "$T/labelled.csv" >"$T/xy.csv"
MU="$T/xy.safetensors"
CLF="$T/side-classifier.safetensors"
expect_ok -- "$SCORE" train --data "$T/xy.csv" --steps 1500 --batch 128 --hidden 32 --depth 2 -o "$MU" -q
expect_ok -- "$SCORE" train-classifier "$MU" --data "$T/labelled.csv" --label-column side \
    --steps 800 --batch 128 --hidden 32 --depth 2 -o "$CLF"
grep -qF "trained a classifier of 2 classes ('side')" "$T/err" ||
    { echo "FAIL: train-classifier summary"; cat "$T/err"; fails=$((fails + 1)); }
expect_ok -- "$SCORE" info "$CLF"
grep -qF "classifier:    2 classes (left, right), schedule vp" "$T/out" ||
    { echo "FAIL: info does not describe the classifier"; cat "$T/out"; fails=$((fails + 1)); }
for side in left right; do
    expect_ok -- "$SCORE" sample "$MU" --classifier "$CLF" --class "$side" --classifier-scale 2 \
        -n 400 --sampler dpmpp-2m -o "$T/clf-$side.csv" -q
    share=$(share_on_side "$T/clf-$side.csv" "$side")
    awk -v s="$share" 'BEGIN { exit !(s >= 0.9) }' ||
        { echo "FAIL: classifier guidance towards $side: only $share of the samples there"; fails=$((fails + 1)); }
done
expect_fail 2 "--class 'up' is not a class of the classifier" -- \
    "$SCORE" sample "$MU" --classifier "$CLF" --class up -n 3
expect_fail 2 "--classifier needs --class K|NAME" -- "$SCORE" sample "$MU" --classifier "$CLF" -n 3
expect_fail 2 "--classifier guides with a classifier: it does not go with --guidance / --uncond" -- \
    "$SCORE" sample "$MU" --classifier "$CLF" --class left --guidance 1 -n 3
expect_ok -- "$SCORE" train --data "$T/xy.csv" --steps 2 --hidden 8 --depth 1 --no-standardize -o "$T/raw.safetensors" -q
expect_fail 1 "cannot guide this model: score_genmodel_set_classifier: the models differ in data transform (identity vs standardized)" -- \
    "$SCORE" sample "$T/raw.safetensors" --classifier "$CLF" --class left -n 3
# standardized too, but on data moved by +1 in x: another shift
awk -F, 'NR == 1 { print; next } { printf "%.9g,%s\n", $1 + 1, $2 }' "$T/xy.csv" > "$T/xy-moved.csv"
expect_ok -- "$SCORE" train --data "$T/xy-moved.csv" --steps 2 --hidden 8 --depth 1 -o "$T/moved.safetensors" -q
expect_fail 1 "the models differ in data transform: shift of dimension 0" -- \
    "$SCORE" sample "$T/moved.safetensors" --classifier "$CLF" --class left -n 3
expect_ok -- "$SCORE" train --data "$T/xy.csv" --steps 2 --hidden 8 --depth 1 --beta-max 12 -o "$T/b12.safetensors" -q
expect_fail 1 "cannot guide this model: score_genmodel_set_classifier: the models differ in schedule parameter beta_max (12 vs 20)" -- \
    "$SCORE" sample "$T/b12.safetensors" --classifier "$CLF" --class left -n 3
expect_fail 1 "--classifier $MU is not a classifier" -- \
    "$SCORE" sample "$MU" --classifier "$MU" --class left -n 3
awk -F, '{ print $3 "," $2 "," $1 }' "$T/labelled.csv" >"$T/swapped.csv"
expect_fail 1 "swapped.csv: data column 1 is 'y', $MU was trained with 'x' there" -- \
    "$SCORE" train-classifier "$MU" --data "$T/swapped.csv" --label-column side -o "$T/c" -q
expect_fail 2 "--data FILE.csv, --label-column NAME and -o FILE are required" -- \
    "$SCORE" train-classifier "$MU" --data "$T/labelled.csv" -o "$T/c"
expect_fail 1 "--label-column side: 1 distinct label (a classifier needs 2 to 65535 classes)" -- \
    "$SCORE" train-classifier "$MU" --data "$T/oneclass.csv" --label-column side -o "$T/c" -q

# ---- files: outputs only to regular files, inputs checked and bounded, no temporary orphans --
# (CI runs as root: mknod works; a "full" device node 1,7 made here stands for /dev/full)
fail_if() { # fail_if MESSAGE -- test...: count a failure when the test is true
    msg=$1
    shift 2
    n=$((n + 1))
    if "$@"; then echo "FAIL: $msg"; fails=$((fails + 1)); fi
}
D="$T/files"
mkdir "$D"
mknod "$D/full" c 1 7 || { echo "FAIL: mknod (the test needs root)"; fails=$((fails + 1)); }
mkfifo "$D/fifo"
mkdir "$D/dir"
ln -s full "$D/link-to-device"
ln -s missing "$D/dangling"
TRAIN="train --dataset ring8 -n 64 --steps 2 --batch 32 --hidden 8 --depth 1 -q"
expect_fail 1 "cannot write '$D/full': it is a character device, not a regular file" -- \
    "$SCORE" $TRAIN -o "$D/full"
fail_if "train -o DEVICE replaced the device node" -- test ! -c "$D/full"
expect_fail 1 "cannot write '$D/fifo': it is a FIFO, not a regular file" -- "$SCORE" $TRAIN -o "$D/fifo"
fail_if "train -o FIFO replaced the FIFO" -- test ! -p "$D/fifo"
expect_fail 1 "cannot write '$D/dir': it is a directory, not a regular file" -- "$SCORE" $TRAIN -o "$D/dir"
expect_fail 1 "cannot write '$D/link-to-device': it is a symbolic link to a character device" -- \
    "$SCORE" $TRAIN -o "$D/link-to-device"
fail_if "train -o LINK-TO-DEVICE replaced the link" -- test ! -L "$D/link-to-device"
expect_fail 1 "cannot write '$D/dangling': it is a symbolic link that names no existing file" -- \
    "$SCORE" $TRAIN -o "$D/dangling"
fail_if "train -o DANGLING-LINK created its target" -- test -e "$D/missing"
expect_fail 1 "cannot write '$D/full': it is a character device" -- "$SCORE" $TRAIN -o "$D/m" --plot "$D/full"
expect_fail 1 "cannot write '$D/fifo': it is a FIFO" -- "$SCORE" sample "$M" -n 5 -q -o "$D/fifo"
expect_fail 1 "cannot write '$D/full': it is a character device" -- "$SCORE" sample "$M" -n 5 -q --plot "$D/full"
expect_fail 1 "cannot write '$D/full': it is a character device" -- "$SCORE" datasets ring8 -o "$D/full"
expect_fail 1 "cannot write '$D/dir': it is a directory" -- "$SCORE" loglik "$M" "$T/good.csv" -q -o "$D/dir"
fail_if "an output replaced the device node" -- test ! -c "$D/full"
# a symbolic link to a regular file is written through: the link stays, its target is replaced
printf 'old\n' >"$D/target.safetensors"
ln -s target.safetensors "$D/link.safetensors"
expect_ok -- "$SCORE" $TRAIN -o "$D/link.safetensors"
fail_if "train -o LINK replaced the link" -- test ! -L "$D/link.safetensors"
expect_ok -- "$SCORE" info "$D/target.safetensors"
printf 'old\n' >"$D/target.csv"
ln -s target.csv "$D/link.csv"
expect_ok -- "$SCORE" datasets ring8 -n 7 -o "$D/link.csv"
fail_if "datasets -o LINK did not write through the link" -- \
    test ! -L "$D/link.csv" -o "$(wc -l <"$D/target.csv")" -ne 8
# inputs: only regular files (a device or FIFO is refused at once), at most the input limit
expect_fail 1 "cannot read model file '/dev/zero': it is a character device, not a regular file" -- \
    timeout 20 "$SCORE" info /dev/zero
expect_fail 1 "cannot read '/dev/zero': it is a character device, not a regular file" -- \
    timeout 20 "$SCORE" train --data /dev/zero -o "$D/m" -q
expect_fail 1 "cannot read '$D/fifo': it is a FIFO, not a regular file" -- \
    timeout 20 "$SCORE" train --data "$D/fifo" -o "$D/m" -q
expect_fail 1 "cannot read model file '$D/dir': it is a directory" -- "$SCORE" sample "$D/dir"
expect_fail 1 "'$T/train.csv' is larger than the input limit of 1000 bytes" -- \
    env SCORE_CLI_INPUT_LIMIT=1000 "$SCORE" train --data "$T/train.csv" -o "$D/m" -q
expect_fail 1 "model file '$M' is larger than the input limit of 1000 bytes" -- \
    env SCORE_CLI_INPUT_LIMIT=1000 "$SCORE" info "$M"
expect_fail 1 "'<stdin>' is larger than the input limit of 100000 bytes" -- \
    sh -c 'SCORE_CLI_INPUT_LIMIT=100000 timeout 20 "$1" train --data - -o "$2" -q </dev/zero' \
    sh "$SCORE" "$D/m"
# A save killed while it writes leaves no temporary file and the old file intact: the process
# is killed (SIGXFSZ) by a file-size limit of 8 MB while it writes a 32 MB model.
BIG="train --dataset ring8 -n 32 --steps 1 --batch 32 --hidden 1448 --depth 4 -q"
cp "$M" "$D/big.safetensors"
n=$((n + 1))
{ ( ulimit -f 16384 && exec "$SCORE" $BIG -o "$D/big.safetensors" ); } 2>/dev/null
st=$?
if [ "$st" -le 128 ]; then echo "FAIL: the limited save was not killed (status $st)"; fails=$((fails + 1)); fi
fail_if "a killed save left a temporary file: $(ls "$D" | grep tmp)" -- \
    sh -c 'ls "$1" | grep -q "\.tmp-"' sh "$D"
fail_if "a killed save changed the old file" -- sh -c '! cmp -s "$1" "$2"' sh "$M" "$D/big.safetensors"
# temporary files of processes that no longer exist (older versions, other systems) are removed
# by the next save of the same file; a live process's file stays
dead=$(sh -c 'echo $$')
printf 'orphan' >"$D/m.safetensors.tmp-$dead-0"
printf 'live' >"$D/m.safetensors.tmp-$$-3"
expect_ok -- "$SCORE" $TRAIN -o "$D/m.safetensors"
fail_if "a save kept a dead process's temporary file" -- test -e "$D/m.safetensors.tmp-$dead-0"
fail_if "a save removed a live process's temporary file" -- test ! -e "$D/m.safetensors.tmp-$$-3"

# --clip LO,HI (data units, converted through the model's transform by the library) and
# --threshold P: every sample in the box, the unclipped run leaves it
expect_ok -- "$SCORE" sample "$M" --sampler dpmpp-2m --steps 8 -n 300 -o "$T/nc.csv" -q
fail_if "the unclipped samples already lie in [-0.5, 0.6] (the test clips nothing)" -- \
    awk -F, 'NR > 1 && ($1 < -0.5 || $1 > 0.6 || $2 < -0.5 || $2 > 0.6) { o = 1 } END { exit o }' "$T/nc.csv"
for thr in "" "--threshold 0.9"; do
    expect_ok -- "$SCORE" sample "$M" --sampler dpmpp-2m --steps 8 -n 300 --clip=-0.5,0.6 $thr -o "$T/cl.csv" -q
    fail_if "--clip -0.5,0.6 $thr left a sample out of the box" -- \
        awk -F, 'NR > 1 && ($1 < -0.5 || $1 > 0.6 || $2 < -0.5 || $2 > 0.6) { o = 1 } END { exit !o }' "$T/cl.csv"
done
expect_fail 2 "--threshold needs --clip" -- "$SCORE" sample "$M" --threshold 0.99 -n 4 -q
expect_fail 2 "--clip '1,0'" -- "$SCORE" sample "$M" --clip 1,0 -n 4 -q
expect_fail 2 "--clip 'x'" -- "$SCORE" sample "$M" --clip x -n 4 -q
expect_fail 2 "--threshold 0" -- "$SCORE" sample "$M" --clip 0,1 --threshold 0 -n 4 -q
expect_fail 2 "--threshold" -- "$SCORE" sample "$M" --clip 0,1 --threshold 1.5 -n 4 -q

echo "$((n - fails)) of $n CLI checks passed"
[ "$fails" -eq 0 ]
