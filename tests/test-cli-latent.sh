#!/bin/sh
# `score encode` / `score decode`: the probability-flow map in the data's units. A small ring8
# model maps its data to latents and back within 1e-4 at the default (tight) tolerances; the
# latents do not depend on --batch; the headers name the columns; bad input gives one clear
# line. Usage: test-cli-latent.sh /path/to/score
set -u
SCORE=${1:?usage: test-cli-latent.sh /path/to/score}
T=$(mktemp -d "${TMPDIR:-/tmp}/score-latent-test.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
fails=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}

"$SCORE" train --dataset ring8 --steps 300 -o "$T/m.safetensors" -q >/dev/null 2>&1 ||
    { echo "FAIL: training the model"; exit 1; }
"$SCORE" datasets ring8 -n 100 --seed 5 -o "$T/d.csv" >/dev/null 2>&1 ||
    { echo "FAIL: writing the data"; exit 1; }

"$SCORE" encode "$T/m.safetensors" "$T/d.csv" -o "$T/z.csv" -q 2>"$T/err" || fail "encode: $(cat "$T/err")"
"$SCORE" encode "$T/m.safetensors" "$T/d.csv" -o "$T/z7.csv" --batch 7 -q 2>"$T/err" ||
    fail "encode --batch 7: $(cat "$T/err")"
"$SCORE" decode "$T/m.safetensors" "$T/z.csv" -o "$T/back.csv" -q 2>"$T/err" || fail "decode: $(cat "$T/err")"

[ "$(head -n 1 "$T/z.csv")" = "z1,z2" ] || fail "latent header: $(head -n 1 "$T/z.csv")"
[ "$(head -n 1 "$T/back.csv")" = "$(head -n 1 "$T/d.csv")" ] ||
    fail "decoded header $(head -n 1 "$T/back.csv") is not the data's $(head -n 1 "$T/d.csv")"
# other blocks of rows: the same latents, bit for bit (rows keep their global numbers)
cmp -s "$T/z.csv" "$T/z7.csv" || fail "the latents depend on --batch"
[ "$(wc -l <"$T/z.csv")" -eq 101 ] || fail "$(wc -l <"$T/z.csv") lines of latents, want 101"

# the round trip, and latents that are not the data (the map moved every point)
worst=$(paste -d, "$T/d.csv" "$T/back.csv" | awk -F, 'NR > 1 {
    for (j = 1; j <= 2; j++) { e = $j - $(j + 2); if (e < 0) e = -e; if (e > w) w = e } }
    END { printf "%.3g", w + 0 }')
moved=$(paste -d, "$T/d.csv" "$T/z.csv" | awk -F, 'NR > 1 {
    e = $1 - $3; if (e < 0) e = -e; if (e < 1e-3) same++ } END { print same + 0 }')
echo "round trip: max |decode(encode(x)) - x| = $worst; rows with an unmoved first coordinate: $moved"
awk -v w="$worst" 'BEGIN { exit !(w < 1e-4) }' || fail "round trip error $worst >= 1e-4"
[ "$moved" -lt 5 ] || fail "$moved latents equal their data"

# errors: one line each
printf 'a,b,c\n1,2,3\n' >"$T/three.csv"
"$SCORE" encode "$T/m.safetensors" "$T/three.csv" >/dev/null 2>"$T/err" && fail "3 columns accepted"
grep -qF "has 3 columns but the model's dimension is 2" "$T/err" || fail "3 columns: $(cat "$T/err")"
"$SCORE" decode "$T/m.safetensors" "$T/z.csv" --rtol 0 --atol 0 >/dev/null 2>"$T/err" &&
    fail "zero tolerances accepted"
grep -qF -- "--rtol and --atol are both 0" "$T/err" || fail "zero tolerances: $(cat "$T/err")"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
