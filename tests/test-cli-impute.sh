#!/bin/sh
# `score sample --init FILE --strength S` (partial sampling, SDEdit) and `score sample --known
# FILE` (imputation, also with --obs-method moment and --particles K): strength 0 returns the
# rows unchanged, strength 1 is the unconditional sample bit for bit, a middle strength moves
# the rows; known cells come back exactly and the empty / NaN / NA cells are filled; the results
# do not depend on --batch; bad input gives one clear line. Usage: test-cli-impute.sh /path/to/score
set -u
SCORE=${1:?usage: test-cli-impute.sh /path/to/score}
T=$(mktemp -d "${TMPDIR:-/tmp}/score-impute-test.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

"$SCORE" train --dataset ring8 --steps 200 -o "$T/m.safetensors" -q >/dev/null 2>&1 ||
    { echo "FAIL: training the model"; exit 1; }
"$SCORE" datasets ring8 -n 20 --seed 5 -o "$T/d.csv" >/dev/null 2>&1 ||
    { echo "FAIL: writing the data"; exit 1; }
S="--sampler dpmpp-2m --steps 10 --seed 3 -q"

# SDEdit
"$SCORE" sample "$T/m.safetensors" $S --init "$T/d.csv" --strength 0 -o "$T/s0.csv" 2>"$T/err" ||
    fail "--strength 0: $(cat "$T/err")"
cmp -s "$T/d.csv" "$T/s0.csv" || fail "--strength 0 changed the rows"
"$SCORE" sample "$T/m.safetensors" $S -n 20 -o "$T/u.csv" 2>"$T/err" || fail "sample: $(cat "$T/err")"
"$SCORE" sample "$T/m.safetensors" $S --init "$T/d.csv" --strength 1 -o "$T/s1.csv" 2>"$T/err" ||
    fail "--strength 1: $(cat "$T/err")"
cmp -s "$T/u.csv" "$T/s1.csv" || fail "--strength 1 is not the unconditional sample"
"$SCORE" sample "$T/m.safetensors" $S --init "$T/d.csv" --strength 0.5 -o "$T/s5.csv" 2>"$T/err" ||
    fail "--strength 0.5: $(cat "$T/err")"
"$SCORE" sample "$T/m.safetensors" $S --init "$T/d.csv" --strength 0.5 --batch 7 -o "$T/s5b.csv" \
    2>"$T/err" || fail "--strength 0.5 --batch 7: $(cat "$T/err")"
cmp -s "$T/s5.csv" "$T/s5b.csv" || fail "--init results depend on --batch"
[ "$(wc -l <"$T/s5.csv")" -eq 21 ] || fail "$(wc -l <"$T/s5.csv") lines for 20 --init rows"
moved=$(paste -d, "$T/d.csv" "$T/s5.csv" | awk -F, 'NR > 1 && ($1 != $3 || $2 != $4) { m++ }
    END { print m + 0 }')
[ "$moved" -eq 20 ] || fail "--strength 0.5 moved $moved of 20 rows"

# imputation: x1 known on odd rows, x2 known on even rows; empty, NaN and NA cells
awk -F, 'NR == 1 { print; next }
    { v = (NR % 4 == 0) ? "NaN" : (NR % 4 == 1) ? "NA" : ""
      if (NR % 2) print $1 "," v; else print v "," $2 }' "$T/d.csv" >"$T/k.csv"
"$SCORE" sample "$T/m.safetensors" $S --known "$T/k.csv" -o "$T/i.csv" 2>"$T/err" ||
    fail "--known: $(cat "$T/err")"
"$SCORE" sample "$T/m.safetensors" $S --known "$T/k.csv" --batch 3 -o "$T/i3.csv" 2>"$T/err" ||
    fail "--known --batch 3: $(cat "$T/err")"
cmp -s "$T/i.csv" "$T/i3.csv" || fail "--known results depend on --batch"
bad=$(paste -d, "$T/d.csv" "$T/i.csv" | awk -F, 'NR > 1 {
    if (NR % 2) { if ($1 != $3) b++ } else { if ($2 != $4) b++ }
    if ($3 == "" || $4 == "" || $3 != $3 + 0 && $3 !~ /e/) b++ } END { print b + 0 }')
[ "$bad" -eq 0 ] || fail "$bad rows of --known lost a known cell or left a missing one"
[ "$(wc -l <"$T/i.csv")" -eq 21 ] || fail "$(wc -l <"$T/i.csv") lines for 20 --known rows"
# the sampled cells are not the data's (they were missing)
same=$(paste -d, "$T/d.csv" "$T/i.csv" | awk -F, 'NR > 1 {
    if (NR % 2) { if ($2 == $4) s++ } else { if ($1 == $3) s++ } } END { print s + 0 }')
[ "$same" -eq 0 ] || fail "$same sampled cells equal the data's"

# --obs-method moment and --particles K (twisted SMC): known cells exact, missing cells filled,
# results independent of --batch
check_known() {
    what=$1
    f=$2
    bad=$(paste -d, "$T/d.csv" "$f" | awk -F, 'NR > 1 {
        if (NR % 2) { if ($1 != $3) b++ } else { if ($2 != $4) b++ }
        if ($3 == "" || $4 == "" || $3 != $3 + 0 && $3 !~ /e/) b++ } END { print b + 0 }')
    [ "$bad" -eq 0 ] || fail "$what: $bad rows lost a known cell or left a missing one"
    [ "$(wc -l <"$f")" -eq 21 ] || fail "$what: $(wc -l <"$f") lines for 20 rows"
}
"$SCORE" sample "$T/m.safetensors" $S --known "$T/k.csv" --obs-method moment -o "$T/mo.csv" \
    2>"$T/err" || fail "--obs-method moment: $(cat "$T/err")"
check_known "--obs-method moment" "$T/mo.csv"
cmp -s "$T/i.csv" "$T/mo.csv" && fail "--obs-method moment gave the replacement's samples"
"$SCORE" sample "$T/m.safetensors" $S --known "$T/k.csv" --obs-method replace -o "$T/re.csv" \
    2>"$T/err" || fail "--obs-method replace: $(cat "$T/err")"
cmp -s "$T/i.csv" "$T/re.csv" || fail "--obs-method replace is not the default"
P="--sampler em --steps 20 --seed 3 --particles 4"
"$SCORE" sample "$T/m.safetensors" $P --known "$T/k.csv" -o "$T/p.csv" 2>"$T/err" ||
    fail "--particles 4: $(cat "$T/err")"
check_known "--particles 4" "$T/p.csv"
grep -q "twisted SMC with 4 particles per row.*effective sample size" "$T/err" ||
    fail "--particles 4: no effective sample size in the summary: $(cat "$T/err")"
"$SCORE" sample "$T/m.safetensors" $P -q --known "$T/k.csv" --batch 3 -o "$T/p3.csv" \
    2>"$T/err" || fail "--particles 4 --batch 3: $(cat "$T/err")"
cmp -s "$T/p.csv" "$T/p3.csv" || fail "--particles results depend on --batch"
"$SCORE" sample "$T/m.safetensors" -q --sampler dpmpp-2m --particles 4 --known "$T/k.csv" \
    >/dev/null 2>"$T/err" && fail "--particles with dpmpp-2m accepted"
grep -q "dpmpp-2m" "$T/err" || fail "--particles with dpmpp-2m: $(cat "$T/err")"

# bad input: one line, usage status 2
expect_usage() {
    what=$1
    shift
    "$SCORE" sample "$T/m.safetensors" -q "$@" >/dev/null 2>"$T/err"
    st=$?
    [ "$st" -eq 2 ] || fail "$what: exit status $st, want 2"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$what: $(wc -l <"$T/err") lines of error: $(cat "$T/err")"
}
expect_usage "--strength without --init" --strength 0.5
expect_usage "--strength 2" --init "$T/d.csv" --strength 2
expect_usage "-n against the rows" --known "$T/k.csv" -n 5
printf 'x1,x2,x3\n1,2,3\n' >"$T/w.csv"
expect_usage "three columns" --known "$T/w.csv"
expect_usage "--particles without --known" --particles 4
expect_usage "--obs-method without --known" --obs-method moment
expect_usage "--obs-method foo" --known "$T/k.csv" --obs-method foo
expect_usage "--particles 0" --known "$T/k.csv" --particles 0
printf 'x1,x2\n1,\n' >"$T/e.csv"
"$SCORE" sample "$T/m.safetensors" -q --init "$T/e.csv" >/dev/null 2>"$T/err" &&
    fail "--init accepted an empty cell"
grep -q "empty" "$T/err" || fail "--init empty cell: $(cat "$T/err")"

[ "$fails" -eq 0 ] && echo "impute CLI: all checks passed"
exit "$fails"
