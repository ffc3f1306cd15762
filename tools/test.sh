#!/bin/sh
# Sets up a fresh Debian 12 machine (packages) and runs every check libscore has:
#   1. a normal build: all default suites (unit, build, abi, examples, cli, oom, python, torch);
#   1b. the other CBLAS back end: a build with -Dblas=blis running the unit suite;
#   1c. the multi-versioned loops at their other levels (-Dsimd=avx2, -Dsimd=baseline): the
#       recorded outputs, bit for bit;
#   2. an AddressSanitizer + UndefinedBehaviorSanitizer build: unit, example and CLI tests
#      (LeakSanitizer on: the CLI error paths must not leak) and the allocation-failure test
#      (oom: the N-th allocation fails, for every N);
#   3. a clang build with -Dfuzz=true: a 60-second libFuzzer run of the model-file loader and a
#      30-second one of the .npy header parser of the score tool;
#   4. a ThreadSanitizer build: one model shared by several threads, and the model's own threads;
#   4b. the digits suite on the normal build: class-conditional 8x8 digits judged by an SVC;
#   4c. an MPI build (-Dmpi=enabled): the mpi suite under mpirun -np 1, 2, 3;
#   5. the Doxygen reference with warnings as errors (-Ddocs=enabled);
#   6. the Debian packages: dpkg-buildpackage, lintian, installed and used by consumers, removed.
# Ends with one line "N passed, N failed" (the totals of all runs). Exit status 0 only if all pass.
set -u
cd "$(dirname "$0")/.."
sh tools/setup-debian.sh doxygen clang libclang-rt-14-dev python3-numpy python3-torch cmake \
        libblis-dev debhelper lintian python3-sklearn ||
    { echo "package set-up failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
status=0

count() { # count <builddir>: add that build's last test run to the totals
    log="$1/meson-logs/testlog.json"
    if [ -f "$log" ]; then
        p=$(grep -c '"result": "OK"' "$log" || true)
        s=$(grep -c '"result": "SKIP"' "$log" || true)
        t=$(grep -c '"name"' "$log" || true)
        passed=$((passed + p + s))
        failed=$((failed + t - p - s))
    else
        failed=$((failed + 1))
    fi
}

fail_step() { # fail_step <what>: a build step failed
    echo "FAILED: $1"
    failed=$((failed + 1))
    status=1
}

setup() { # setup <builddir> <meson options...>
    dir=$1
    shift
    rm -rf "$dir"
    meson setup "$dir" "$@" >"$dir.log" 2>&1 || { cat "$dir.log"; return 1; }
    ninja -C "$dir" >>"$dir.log" 2>&1 || { tail -n 60 "$dir.log"; return 1; }
}

# 1. normal build
if setup build-test; then
    meson test -C build-test --print-errorlogs --num-processes 2 || status=1
    count build-test
else
    fail_step "normal build"
fi

# 1b. the second CBLAS back end of the design (BLIS, Debian's libblis-dev): the unit suite
if setup build-blis -Dblas=blis -Dexamples=false -Dcli=false -Dbench=false; then
    meson test -C build-blis --print-errorlogs --num-processes 2 --suite unit || status=1
    count build-blis
else
    fail_step "BLIS build (-Dblas=blis)"
fi

# 1c. the multi-versioned elementwise and RNG loops at their other levels: with the widest
# version left out (-Dsimd=avx2) and with no versions (-Dsimd=baseline) the recorded outputs
# must come out bit for bit (every version does the same arithmetic, without contraction)
for level in avx2 baseline; do
    dir=build-simd-$level
    rm -rf "$dir"
    if meson setup "$dir" -Dsimd=$level -Dexamples=false -Dcli=false -Dbench=false \
            -Dpython=disabled >"$dir.log" 2>&1 &&
        ninja -C "$dir" tests/test-recorded >>"$dir.log" 2>&1; then
        meson test -C "$dir" --print-errorlogs --no-rebuild recorded || status=1
        count "$dir"
    else
        tail -n 60 "$dir.log"
        fail_step "build with -Dsimd=$level"
    fi
done

# 2. sanitizer build (UBSan findings are fatal)
if setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fno-sanitize-recover=all -Dcpp_args=-fno-sanitize-recover=all; then
    # The sanitizers slow the tests 5-10x: the time limits (meson's per test, Check's per case)
    # are there to catch hangs, so they scale with the build, like TSan's below.
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 CK_TIMEOUT_MULTIPLIER=3 \
        meson test -C build-asan --print-errorlogs --num-processes 2 --timeout-multiplier 3 \
        --suite unit --suite examples --suite cli --suite oom --no-suite python || status=1
    count build-asan
else
    fail_step "sanitizer build"
fi

# 3. fuzz smoke run (clang + libFuzzer)
if CC=clang CXX=clang++ setup build-fuzz -Dfuzz=true -Dexamples=false; then
    meson test -C build-fuzz --print-errorlogs --suite fuzz || status=1
    count build-fuzz
else
    fail_step "fuzz build"
fi

# 4. ThreadSanitizer: the tests where threads share a model (shared-model) or run a model's
# row blocks (threads, and the U-Net's and energy kind's thread cases), and score_blas_check
# called from several threads (version); only those are built.
# OpenBLAS is not instrumented: its own threads are switched off so that every thread TSan
# cannot see is the library's. No suppressions; any report fails the test. ASLR is off for the
# run (setarch -R, inherited by the tests): GCC 12's TSan run-time cannot map its shadow memory
# with the address randomisation of recent kernels.
rm -rf build-tsan
if meson setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dexamples=false \
        >build-tsan.log 2>&1 &&
        ninja -C build-tsan tests/test-shared-model tests/test-threads tests/test-unet \
            tests/test-energy-hsm tests/test-version >>build-tsan.log 2>&1; then
    tsan_run() { # tsan_run <Check test case or ''> <meson test names...>
        case_name=$1
        shift
        (if [ -n "$case_name" ]; then export CK_RUN_CASE="$case_name"; fi
         OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
            CK_TIMEOUT_MULTIPLIER=3 \
            setarch "$(uname -m)" -R meson test -C build-tsan --no-rebuild --print-errorlogs \
            --num-processes 1 --timeout-multiplier 3 "$@") || status=1
        count build-tsan
    }
    tsan_run '' shared-model threads version
    # the U-Net's and the energy kind's image / row blocks on the model's threads
    tsan_run model unet
    tsan_run threads energy-hsm
else
    tail -n 60 build-tsan.log
    fail_step "ThreadSanitizer build"
fi

# 4b. class-conditional 8x8 digits (the opt-in digits suite, on the normal build): train with
# --label-column, sample 500 per class at guidance 0, 1, 2, 4, judge with an SVC fitted on
# real digits (scikit-learn's copy, nothing downloaded); about 2-3 minutes on 2 cores
if [ -f build-test/build.ninja ]; then
    meson test -C build-test --print-errorlogs --suite digits || status=1
    count build-test
else
    fail_step "digits (no normal build)"
fi

# 4c. MPI (OpenMPI from tools/setup-debian.sh): a build with -Dmpi=enabled running the mpi
# suite: training, sampling and likelihood on 1, 2 and 3 ranks bit for bit against one process,
# resume across rank counts, a failing rank stopping every rank, the tool under mpirun, and
# libscore.so without libmpi in its NEEDED entries; about 2 minutes on 2 cores
if setup build-mpi -Dmpi=enabled -Dexamples=false -Dbench=false -Dpython=disabled; then
    meson test -C build-mpi --print-errorlogs --suite mpi || status=1
    count build-mpi
else
    fail_step "MPI build (-Dmpi=enabled)"
fi

# 5. API reference, warnings as errors
if setup build-docs -Ddocs=enabled -Dtests=disabled -Dexamples=false; then
    if grep -rlF "$(pwd)" build-docs/doc/html | head -n 3 | grep .; then
        fail_step "Doxygen reference: pages name the build machine's source path"
    else
        echo "docs: Doxygen reference built with no warnings and relative page names"
        passed=$((passed + 1))
    fi
else
    fail_step "Doxygen reference (-Ddocs=enabled)"
fi

# 6. Debian packages (needs root to install them; removed again at the end)
if [ "$(id -u)" -eq 0 ]; then
    if sh tests/debian-test.sh .; then
        passed=$((passed + 1))
    else
        fail_step "Debian packages (tests/debian-test.sh)"
    fi
else
    echo "Debian packages: not root, stage not run (not counted)"
fi

[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed"
exit $status
