#!/bin/sh
# The `score` tool under mpirun: train, sample and loglik on 1, 2 and 3 ranks write the same
# bytes as one process (a one-thread BLAS in every rank: a multi-threaded one may round a
# network's products differently for other row counts); a failing rank fails every rank;
# 'score info' says that MPI is available.
# Usage: test-mpi-cli.sh /path/to/score /path/to/mpirun
set -u
SCORE=${1:?usage: test-mpi-cli.sh SCORE MPIRUN}
MPIRUN=${2:?usage: test-mpi-cli.sh SCORE MPIRUN}
T=$(mktemp -d "${TMPDIR:-/tmp}/score-mpi-cli.XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
export OPENBLAS_NUM_THREADS=1 BLIS_NUM_THREADS=1 OMP_NUM_THREADS=1
run() { np=$1; shift; "$MPIRUN" -np "$np" --oversubscribe --allow-run-as-root \
    -x OPENBLAS_NUM_THREADS -x BLIS_NUM_THREADS -x OMP_NUM_THREADS "$@"; }
fails=0
check() { # check DESCRIPTION -- command...
    what=$1
    shift 2
    if ! "$@" >"$T/out" 2>&1; then
        echo "FAIL: $what"
        sed 's/^/    /' "$T/out"
        fails=$((fails + 1))
    fi
}
TRAIN="train --dataset ring8 -n 1500 --steps 30 --hidden 32 --batch 200 --seed 4 -q"

# training: 200-row batches in ceil(200 / 64) = 4 reduction blocks (the library default of
# SCORE_TRAINER_PARAM_REDUCE_ROWS), on 1, 2 and 3 ranks
for np in 1 2 3; do
    check "train on $np ranks" -- run "$np" "$SCORE" $TRAIN -o "$T/m$np.st" \
        --checkpoint "$T/c$np.st"
done
check "train: 2 ranks = 1 rank" -- cmp "$T/m1.st" "$T/m2.st"
check "train: 3 ranks = 1 rank" -- cmp "$T/m1.st" "$T/m3.st"
check "checkpoint: 3 ranks = 1 rank" -- cmp "$T/c1.st" "$T/c3.st"

# resume on another rank count: 15 steps on 3 ranks, then to 30 on 2 ranks = 30 on 1 rank
check "train 15 steps on 3 ranks" -- run 3 "$SCORE" train --dataset ring8 -n 1500 --steps 15 \
    --hidden 32 --batch 200 --seed 4 -q -o "$T/h.st" --checkpoint "$T/h.ckpt"
check "resume on 2 ranks" -- run 2 "$SCORE" $TRAIN -o "$T/r.st" --resume "$T/h.ckpt" \
    --checkpoint "$T/rc.st"
check "resumed checkpoint = straight run" -- cmp "$T/c1.st" "$T/rc.st"

# sampling: rows split over the ranks, gathered, written by rank 0
check "sample, one process" -- "$SCORE" sample "$T/m1.st" -n 101 --seed 3 -o "$T/s1.csv" -q
for np in 2 3; do
    check "sample on $np ranks" -- run "$np" "$SCORE" sample "$T/m1.st" -n 101 --seed 3 \
        -o "$T/s$np.csv" -q
    check "sample: $np ranks = one process" -- cmp "$T/s1.csv" "$T/s$np.csv"
done

# log-likelihood: 2 ranks solving 50 rows each = one process solving calls of 50 rows (an
# MLP's trace may round differently for other call sizes, see likelihood.h)
check "loglik, one process" -- "$SCORE" loglik "$T/m1.st" "$T/s1.csv" --batch 50 -o "$T/l1.csv" -q
check "loglik on 2 ranks" -- run 2 "$SCORE" loglik "$T/m1.st" "$T/s1.csv" --batch 100 \
    -o "$T/l2.csv" -q
check "loglik: 2 ranks = one process" -- cmp "$T/l1.csv" "$T/l2.csv"

# a rank that cannot write fails every rank, and no model file is left
if run 2 "$SCORE" $TRAIN -o "$T/no-such-dir/m.st" >"$T/out" 2>&1; then
    echo "FAIL: an unwritable output did not fail the run"
    fails=$((fails + 1))
fi
[ ! -e "$T/no-such-dir/m.st" ] || { echo "FAIL: a model file was left"; fails=$((fails + 1)); }

check "info reports MPI" -- sh -c "'$SCORE' info '$T/m1.st' | grep -q '^mpi: *available'"

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all MPI CLI checks passed"
