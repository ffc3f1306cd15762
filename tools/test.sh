#!/bin/sh
# Sets up a fresh Debian 12 machine (packages), builds libscore twice - a normal build and an
# AddressSanitizer + UndefinedBehaviorSanitizer build - runs the test suites in both, and ends
# with one line "N passed, N failed" (the totals of both runs). Exit status 0 only if all pass.
set -u
cd "$(dirname "$0")/.."
sh tools/setup-debian.sh || { echo "package set-up failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0
failed=0
count() { # count <builddir>: add that build's results to the totals
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

status=0
# 1. the normal build: every default suite (unit, build, abi, examples)
if meson setup build-test --wipe >/dev/null 2>&1 || meson setup build-test >build-test.log 2>&1; then
    ninja -C build-test >build-test.log 2>&1 || { cat build-test.log; status=1; }
    meson test -C build-test --print-errorlogs --num-processes 2 || status=1
    count build-test
else
    cat build-test.log; status=1; failed=$((failed + 1))
fi

# 2. the sanitizer build: unit tests and examples under ASan + UBSan (UBSan findings are fatal)
if meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
        -Dc_args=-fno-sanitize-recover=all -Dcpp_args=-fno-sanitize-recover=all \
        --wipe >/dev/null 2>&1 || meson setup build-asan -Db_sanitize=address,undefined \
        -Db_lundef=false -Dc_args=-fno-sanitize-recover=all \
        -Dcpp_args=-fno-sanitize-recover=all >build-asan.log 2>&1; then
    ninja -C build-asan >build-asan.log 2>&1 || { cat build-asan.log; status=1; }
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        meson test -C build-asan --print-errorlogs --num-processes 2 \
        --suite unit --suite examples || status=1
    count build-asan
else
    cat build-asan.log; status=1; failed=$((failed + 1))
fi

[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed"
exit $status
