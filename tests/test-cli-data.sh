#!/bin/sh
# The `score` tool on real-data-shaped tables: held-out loss and early stopping on a wine-sized
# table (178 rows x 13 columns) that a large network overfits; --checkpoint / --resume
# bit-identical to one run; --init and its refusals; integer data (digits-like, 0..16) with and
# without --dequantize and the loglik summary; quoted CSV fields and delimiters; conditions
# (--condition-columns / --condition). The tables are generated here by a fixed integer
# generator (Park-Miller), the same on every machine. Usage: test-cli-data.sh /path/to/score
set -u
SCORE=${1:?usage: test-cli-data.sh /path/to/score}
T=$(mktemp -d "${TMPDIR:-/tmp}/score-cli-data.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
fails=0
n=0

fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
check() {   # check DESCRIPTION COMMAND...: the command must succeed
    desc=$1
    shift
    n=$((n + 1))
    "$@" || fail "$desc"
}
# run LOG -- command...: runs the command with stdout+stderr into $T/LOG; a failure is reported
run() {
    log=$1
    shift 2
    n=$((n + 1))
    if ! "$@" >"$T/$log" 2>&1; then
        fail "status $? of: $*"
        sed 's/^/    /' "$T/$log"
    fi
}
# refused STATUS PATTERN -- command...: exit STATUS and one stderr line containing PATTERN
refused() {
    want=$1 pat=$2
    shift 3
    n=$((n + 1))
    "$@" >"$T/out" 2>"$T/err"
    st=$?
    if [ "$st" -ne "$want" ] || [ "$(wc -l <"$T/err")" -ne 1 ] || ! grep -qF -- "$pat" "$T/err"; then
        fail "$* (want status $want and one line containing: $pat)"
        sed 's/^/    got: /' "$T/err"
    fi
}

cat >"$T/gen.awk" <<'EOF'
function u01() { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
function gauss(  a, b) { a = u01(); b = u01(); return sqrt(-2 * log(a)) * cos(6.283185307179586 * b) }
BEGIN {
    seed = 12345
    if (kind == "wine") {            # 178 x 13: three clusters, correlated columns
        for (c = 1; c <= 13; c++) printf "%sc%d", (c > 1 ? "," : ""), c; print ""
        for (i = 0; i < 178; i++) {
            k = i % 3; z = gauss()
            for (c = 1; c <= 13; c++)
                printf "%s%.4f", (c > 1 ? "," : ""), 2 * k * ((c % 3) - 1) + z * (c % 4) / 2 + gauss()
            print ""
        }
    } else if (kind == "digits") {   # 400 x 16 integers 0..16
        for (c = 1; c <= 16; c++) printf "%sp%d", (c > 1 ? "," : ""), c; print ""
        for (i = 0; i < 400; i++) {
            k = i % 4
            for (c = 1; c <= 16; c++) {
                v = int(8 + 6 * ((c + k) % 3 - 1) + 2.5 * gauss() + 0.5)
                if (v < 0) v = 0
                if (v > 16) v = 16
                printf "%s%d", (c > 1 ? "," : ""), v
            }
            print ""
        }
    } else if (kind == "cond") {     # x ~ N(2 + 4c, 0.5^2), y ~ N(-1, 0.5^2), c in {0, 1}
        print "x,c,y"
        for (i = 0; i < 2000; i++) {
            c = i % 2
            printf "%.5f,%d,%.5f\n", 2 + 4 * c + 0.5 * gauss(), c, -1 + 0.5 * gauss()
        }
    }
}
EOF
for k in wine digits cond; do awk -v kind=$k -f "$T/gen.awk" >"$T/$k.csv"; done
W="--data $T/wine.csv --valid-fraction 0.25 --valid-every 100 --ema 0 --hidden 256 --batch 64"

# ---- held-out loss and early stopping (wine-sized, overfitting) ------------------------------
# 178 rows, --valid-fraction 0.25: round(44.5) = 45 held-out rows, 133 training rows
run full.log -- "$SCORE" train $W --steps 3000 -o "$T/full.st" --plot "$T/full.svg"
check "held-out rows" grep -q "^trained 3000 steps (batch 64, 133 rows, dim 13)" "$T/full.log"
check "held-out summary" grep -q "^held-out loss (45 rows): " "$T/full.log"
check "30 evaluations" test "$(grep -c '^step [0-9]*: training loss [0-9.e+-]*, held-out loss' "$T/full.log")" -eq 30
check "plot has the held-out curve" grep -q "held-out loss" "$T/full.svg"
# the full run overfits: after its best evaluation the held-out loss rises by more than 15 %
check "overfitting shows in the held-out loss" awk '
    /^step [0-9]+: training loss/ { v = $8 + 0; if (n == 0 || v < best) best = v; n++; l[n] = v; b[n] = best }
    END { for (i = 1; i <= n; i++) if (l[i] > m) m = l[i]; rise = 0
          for (i = 1; i <= n; i++) if (l[i] / b[i] - 1 > rise) rise = l[i] / b[i] - 1
          exit !(rise > 0.15) }' "$T/full.log"
# --early-stop 5 stops before 3000 steps, before the held-out loss has risen more than 10 %
# above its best, and saves the best evaluation's weights
run early.log -- "$SCORE" train $W --steps 3000 --early-stop 5 -o "$T/early.st"
check "early stop stops" grep -q "stopped early: no new best in 5 evaluations" "$T/early.log"
check "early stop before the end" awk '/^trained [0-9]+ steps/ { s = $2 } END { exit !(s < 3000 && s >= 600) }' "$T/early.log"
check "early stop: rise below 10 %" awk '
    /^step [0-9]+: training loss/ { v = $8 + 0; if (n == 0 || v < best) best = v; n++; if (v / best - 1 > rise) rise = v / best - 1 }
    END { exit !(n >= 6 && rise <= 0.10) }' "$T/early.log"
check "best weights saved" grep -q "^saved $T/early.st (best held-out, raw weights" "$T/early.log"
best=$(sed -n 's/.*best [0-9.e+-]* at step \([0-9]*\); stopped early.*/\1/p' "$T/early.log")
# the same training stopped at the best step has bit-identical weights: same samples
run beststep.log -- "$SCORE" train $W --steps "${best:-1}" -o "$T/best.st"
run s1.log -- "$SCORE" sample "$T/early.st" -n 64 --steps 20 -q -o "$T/s1.csv"
run s2.log -- "$SCORE" sample "$T/best.st" -n 64 --steps 20 -q -o "$T/s2.csv"
check "early stop keeps the weights of step $best" cmp -s "$T/s1.csv" "$T/s2.csv"
run info.log -- "$SCORE" info "$T/early.st"
check "info shows the held-out loss" grep -q "held-out loss .* (45 rows, best at step $best)" "$T/info.log"

# --early-stop across --checkpoint / --resume: the evaluations, the best weights and the count
# since the best are kept in CKPT.valid, so N steps then --resume ends like one run: the same
# early-stop step and a bit-identical model file (550 is off the --valid-every grid: the first
# run's evaluation there is not one of the uninterrupted run's)
run es1.log -- "$SCORE" train $W --steps 550 --early-stop 5 -o "$T/es1.st" --checkpoint "$T/es.ckpt"
check "held-out state next to the checkpoint" test -f "$T/es.ckpt.valid"
run es2.log -- "$SCORE" train $W --steps 3000 --early-stop 5 -o "$T/es2.st" --resume "$T/es.ckpt"
check "resumed early stop at the same step" grep -q "best [0-9.e+-]* at step $best; stopped early" "$T/es2.log"
check "resumed early stop: bit-identical model file" cmp -s "$T/early.st" "$T/es2.st"
refused 1 "the checkpoint's run had --early-stop 5, this one 4" -- \
    "$SCORE" train $W --steps 3000 --early-stop 4 -o "$T/x.st" --resume "$T/es.ckpt"
refused 1 "this one every 50 (give --valid-every 100" -- \
    "$SCORE" train $W --steps 3000 --valid-every 50 --early-stop 5 -o "$T/x.st" --resume "$T/es.ckpt"
refused 1 "optimizer parameter 'lr' = 0.002, this trainer has 'lr' = 0.001 (continuing with another value would not continue that run) (resume with the options of the run that wrote it: --lr)" -- \
    "$SCORE" train $W --lr 1e-3 --steps 3000 --early-stop 5 -o "$T/x.st" --resume "$T/es.ckpt"
mv "$T/es.ckpt.valid" "$T/es.valid.saved"
refused 1 "no held-out evaluation state '$T/es.ckpt.valid' next to it" -- \
    "$SCORE" train $W --steps 3000 --early-stop 5 -o "$T/x.st" --resume "$T/es.ckpt"

# ---- --checkpoint / --resume: 2N steps in one go = N + N, bit for bit; --init --------------
R="--data $T/wine.csv --valid-fraction 0.2 --hidden 64 --batch 32 --seed 7 -q"
run one.log -- "$SCORE" train $R --steps 400 -o "$T/one.st"
run half.log -- "$SCORE" train $R --steps 200 -o "$T/half.st" --checkpoint "$T/half.ckpt"
run two.log -- "$SCORE" train $R --steps 400 -o "$T/two.st" --resume "$T/half.ckpt"
check "resumed model file bit-identical" cmp -s "$T/one.st" "$T/two.st"
# --resume refuses another sde or other data (the library compares the checkpoint's record):
# another schedule, schedule parameter, network output or time input, held-out split, data file
refused 1 "schedule kind 'vp' (2), this trainer's sde has 've' (1) (continuing with another noise schedule would not continue that run) (resume with the options of the run that wrote it: --schedule)" -- \
    "$SCORE" train $R --schedule ve --steps 400 -o "$T/x.st" --resume "$T/half.ckpt"
refused 1 "schedule parameter 'beta_max' = 20, this trainer has 'beta_max' = 15 (continuing with another value would not continue that run) (resume with the options of the run that wrote it: --schedule, --sigma-min" -- \
    "$SCORE" train $R --beta-max 15 --steps 400 -o "$T/x.st" --resume "$T/half.ckpt"
refused 1 "sde parameter 'output' = 2, this trainer has 'output' = 1 (continuing with another value would not continue that run) (resume with the options of the run that wrote it: --predict)" -- \
    "$SCORE" train $R --predict score --steps 400 -o "$T/x.st" --resume "$T/half.ckpt"
refused 1 "sde parameter 'cond' = 0, this trainer has 'cond' = 3" -- \
    "$SCORE" train $R --cond sigma --steps 400 -o "$T/x.st" --resume "$T/half.ckpt"
refused 1 "data parameter 'rows' = 142, this trainer has 'rows' = 133 (another dataset) (resume with the options of the run that wrote it: the data of that run: --data" -- \
    "$SCORE" train $R --valid-fraction 0.25 --steps 400 -o "$T/x.st" --resume "$T/half.ckpt"
sed '5s/^[^,]*,/9.5,/' "$T/wine.csv" >"$T/wine2.csv"
refused 1 "data parameter 'hash' = " -- \
    "$SCORE" train --data "$T/wine2.csv" --valid-fraction 0.2 --hidden 64 --batch 32 --seed 7 -q --steps 400 -o "$T/x.st" --resume "$T/half.ckpt"
run dq1.log -- "$SCORE" train --data "$T/digits.csv" --dequantize uniform --hidden 32 --batch 64 --steps 240 -q -o "$T/dq1.st"
run dq2.log -- "$SCORE" train --data "$T/digits.csv" --dequantize uniform --hidden 32 --batch 64 --steps 120 -q -o "$T/dq2.st" --checkpoint "$T/dq.ckpt"
run dq3.log -- "$SCORE" train --data "$T/digits.csv" --dequantize uniform --hidden 32 --batch 64 --steps 240 -q -o "$T/dq3.st" --resume "$T/dq.ckpt"
check "resumed with dequantization bit-identical" cmp -s "$T/dq1.st" "$T/dq3.st"
refused 1 "the checkpoint's model has 12109 parameters, this one 4013" -- \
    "$SCORE" train $R --steps 400 --hidden 32 -o "$T/x.st" --resume "$T/half.ckpt"
refused 2 "the checkpoint is at step 200 already" -- \
    "$SCORE" train $R --steps 200 -o "$T/x.st" --resume "$T/half.ckpt"
refused 1 "--init $T/one.st: its network has --hidden 64, this run asks for 32" -- \
    "$SCORE" train $R --steps 10 --hidden 32 -o "$T/x.st" --init "$T/one.st"
refused 1 "--init $T/one.st: its network has dimension 13, the data have 16 columns" -- \
    "$SCORE" train --data "$T/digits.csv" --dequantize uniform --steps 10 --hidden 64 -o "$T/x.st" --init "$T/one.st"
refused 2 "--resume continues a run and --init starts one" -- \
    "$SCORE" train $R --steps 10 -o "$T/x.st" --init "$T/one.st" --resume "$T/half.ckpt"
# --init at learning rate 0 keeps the weights: the same samples as the model it started from
run init.log -- "$SCORE" train $R --steps 5 --lr 0 --ema 0 -o "$T/init.st" --init "$T/one.st"
run s3.log -- "$SCORE" sample "$T/one.st" -n 64 --steps 20 -q -o "$T/s3.csv"
run s4.log -- "$SCORE" sample "$T/init.st" -n 64 --steps 20 -q -o "$T/s4.csv"
check "--init starts from the saved weights" cmp -s "$T/s3.csv" "$T/s4.csv"

# ---- integer data: the warning, --dequantize uniform, the loglik summary ---------------------
"$SCORE" train --data "$T/digits.csv" --steps 20 --hidden 32 -q -o "$T/dig0.st" 2>"$T/warn.log"
n=$((n + 1))
grep -q "^score train: warning: 16 of 16 data columns ('p1', 'p2', 'p3', 'p4', 'p5', 'p6', 'p7', 'p8', ...) hold only integers.*--dequantize uniform$" \
    "$T/warn.log" || fail "no warning for integer columns: $(cat "$T/warn.log")"
run nowarn.log -- "$SCORE" train --data "$T/wine.csv" --steps 20 --hidden 32 -q -o "$T/w0.st"
check "no warning for real-valued data" test ! -s "$T/nowarn.log"
refused 1 "--dequantize uniform is for integer data, but column 'c1' holds 0.863799989 (row 1 of the data)" -- \
    "$SCORE" train --data "$T/wine.csv" --dequantize uniform --steps 10 -o "$T/x.st"
refused 2 "unknown dequantization 'gauss' (valid: none, uniform)" -- \
    "$SCORE" train --data "$T/digits.csv" --dequantize gauss --steps 10 -o "$T/x.st"
run dig.log -- "$SCORE" train --data "$T/digits.csv" --dequantize uniform --valid-fraction 0.2 \
    --steps 1200 --hidden 128 -q -o "$T/dig.st"
check "dequantization stored" sh -c "'$SCORE' info '$T/dig.st' | grep -q 'dequantize: *uniform, bin width 1'"
head -81 "$T/digits.csv" >"$T/digits-test.csv"
run ll.log -- "$SCORE" loglik "$T/dig.st" "$T/digits-test.csv" -o "$T/ll.csv"
check "loglik names the dequantization" grep -q "^mean log-likelihood .* (80 rows, dim 16, exact divergence, uniform dequantization (bin 1)," "$T/ll.log"
check "loglik prints median and quantiles" grep -q "^log-likelihood (nats): median -[0-9.]*, quantiles 5% -[0-9.]*, 25% -[0-9.]*, 75% -[0-9.]*, 95% -[0-9.]*$" "$T/ll.log"
check "bits/dim quantiles" grep -q "^bits/dim: median [0-9.]*, quantiles 5% [0-9.]*, 25% [0-9.]*, 75% [0-9.]*, 95% [0-9.]*$" "$T/ll.log"
# the printed summary is that of the per-row values: mean and median of -o's column 2 (bits/dim),
# and the mean of the bits/dim lies between the probability of a uniform cell (log2 17 = 4.09)
# and 1 bit per pixel
check "loglik summary matches the rows" awk -F, '
    FNR == NR && FNR > 1 { v[++k] = $2 + 0; s += $2; next }
    /^bits\/dim: median/ { split($0, a, /[ ,]+/); med = a[3] + 0 }
    /^mean log-likelihood/ { mean = $2 + 0 }
    END { n = asort_(v, k); m = (v[40] + v[41]) / 2
          exit !(k == 80 && (mean - s / k) ^ 2 < 1e-8 && (med - m) ^ 2 < 1e-8 && mean > 1 && mean < 4.09) }
    function asort_(v, k,   i, j, t) { for (i = 2; i <= k; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t } return k }' \
    "$T/ll.csv" "$T/ll.log"

# ---- CSV: quoted fields, delimiters, the header kept by sample ------------------------------
printf 'a;b\n1.5;2\n' >"$T/plain-semi.csv"
refused 1 "plain-semi.csv:2:1: column 1: '1.5;2' is not a number (it holds ';': give --delimiter ';' if that separates the fields)" -- \
    "$SCORE" train --data "$T/plain-semi.csv" --steps 2 -q -o "$T/x.st"
printf 'a;b\n1,5;2\n' >"$T/comma-in-semi.csv"
refused 1 "comma-in-semi.csv:2:1: column 1: '1,5' is not a number (it holds ',': give --delimiter ',' if that separates the fields)" -- \
    "$SCORE" train --data "$T/comma-in-semi.csv" --delimiter ';' --steps 2 -q -o "$T/x.st"
printf '"len, mm";"say ""w"""\n"1.5";2\n3;4\n5;"6.5"\n7;8\n' >"$T/semi.csv"
run semi.log -- "$SCORE" train --data "$T/semi.csv" --delimiter ';' --steps 20 --hidden 16 -q -o "$T/semi.st"
run semis.log -- "$SCORE" sample "$T/semi.st" -n 3 --steps 5 -q -o "$T/semi-s.csv"
check "sample header keeps quoted names" test "$(head -1 "$T/semi-s.csv")" = '"len, mm","say ""w"""'
printf 'p\tq\n1\t2\n3\t4\n5\t6\n' >"$T/tab.csv"
run tab.log -- "$SCORE" train --data "$T/tab.csv" --delimiter tab --steps 20 --hidden 16 -q -o "$T/tab.st"
run tabs.log -- "$SCORE" sample "$T/tab.st" -n 2 --steps 5 -q -o "$T/tab-s.csv"
check "tab-separated header" test "$(head -1 "$T/tab-s.csv")" = "p,q"
refused 2 "--delimiter '|' is not supported (valid: ',', ';', 'tab' or '\\t')" -- \
    "$SCORE" train --data "$T/tab.csv" --delimiter '|' -o "$T/x.st"
printf 'a,b\n1,"2\n' >"$T/open.csv"
refused 1 "open.csv:2:3: a quoted field is never closed" -- "$SCORE" train --data "$T/open.csv" -o "$T/x.st"

# ---- conditions: a model whose mean depends on a condition column -----------------------------
run cond.log -- "$SCORE" train --data "$T/cond.csv" --condition-columns c --steps 1500 --hidden 64 -q -o "$T/cond.st"
run ci.log -- "$SCORE" info "$T/cond.st"
check "condition spec shown" grep -q "^condition:     context vector of width 1 (c)" "$T/ci.log"
for c in 0 1; do
    run c$c.log -- "$SCORE" sample "$T/cond.st" --condition $c -n 2000 --steps 200 -q -o "$T/c$c.csv"
    check "samples for c = $c: header x,y" test "$(head -1 "$T/c$c.csv")" = "x,y"
    # mean of x near 2 + 4c (sd 0.5: the mean of 2000 samples is within 0.3 of it), y near -1
    check "samples for c = $c near the conditional mean" awk -F, -v c=$c '
        NR > 1 { x += $1; y += $2; k++ }
        END { mx = x / k; my = y / k; exit !(k == 2000 && (mx - 2 - 4 * c) ^ 2 < 0.09 && (my + 1) ^ 2 < 0.09) }' "$T/c$c.csv"
done
refused 2 "is conditional: give --condition with 1 value (c)" -- "$SCORE" sample "$T/cond.st" -n 2 -q
refused 2 "--condition '1,2': 2 values, the model takes 1 (c)" -- "$SCORE" sample "$T/cond.st" --condition 1,2 -n 2 -q
refused 2 "--condition: $T/one.st takes no condition vector" -- "$SCORE" sample "$T/one.st" --condition 1 -n 2 -q
refused 1 "--condition-columns of $T/cond.csv: no column named 'z' in the header" -- \
    "$SCORE" train --data "$T/cond.csv" --condition-columns z --steps 2 -o "$T/x.st"
# loglik reads each row's condition: the rows with their own condition are far likelier than
# with the other one (x is 8 standard deviations away; measured -1.43 and -15.0 nats, -1.45 the
# exact value with the own condition), the rows in file order (1-row blocks: alternating c)
head -201 "$T/cond.csv" >"$T/cond-test.csv"
awk -F, 'NR == 1 { print; next } { printf "%s,%d,%s\n", $1, 1 - $2, $3 }' "$T/cond-test.csv" >"$T/cond-swapped.csv"
run lc.log -- "$SCORE" loglik "$T/cond.st" "$T/cond-test.csv" -o "$T/lc.csv"
run ls.log -- "$SCORE" loglik "$T/cond.st" "$T/cond-swapped.csv"
check "conditional likelihood follows the condition" awk '
    /^mean log-likelihood/ { v[++k] = $3 + 0 }
    END { exit !(k == 2 && v[1] > -3 && v[1] < 0 && v[2] < v[1] - 8) }' "$T/lc.log" "$T/ls.log"
check "loglik rows of a conditional model" test "$(wc -l <"$T/lc.csv")" -eq 201
refused 1 "cond-swapped2.csv: the condition columns of $T/cond.st: no column named 'c' in the header" -- \
    sh -c "sed '1s/c/d/' '$T/cond-swapped.csv' >'$T/cond-swapped2.csv' && exec '$SCORE' loglik '$T/cond.st' '$T/cond-swapped2.csv'"

echo "$((n - fails)) of $n data checks passed"
[ "$fails" -eq 0 ]
