#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The whole test suite, as CI runs it: installs what is missing, builds build/ (warnings are
# errors) and runs the unit tests, checks the rule of the rooms, runs the integration tests
# against the real lowat and demo app, then does the unit and integration tests again on an
# AddressSanitizer + UBSan build in build-asan/. Extra arguments go to both pytest runs
# (e.g. tools/test.sh -k h2 -x). It goes on after a failure so one run shows everything,
# exits non-zero if anything failed, and ends with a summary whose last line is
# "N passed, N failed" (unit and integration tests together) when every count is known.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# Debian's interpreter, where python3-h2 and python3-pytest are installed: a python3 found
# first on PATH (pyenv, a virtualenv) may lack them.
python=/usr/bin/python3
pytest_timeout_s=600
meson_test_timeout_s=600
build_timeout_s=1800

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

summary=()       # one line per step
status=0         # exit status: 1 once anything failed
total_passed=0
total_failed=0
counts_known=true

banner() {
    printf '\n==== %s\n' "$*"
}

# note STATUS TEXT: remember a step's outcome for the summary.
note() {
    summary+=("$(printf '%-5s %s' "$1" "$2")")
    if [ "$1" != ok ]; then
        status=1
    fi
}

# options_differ DIR NAME=VALUE...: prints the names of the options whose value in the
# configured build DIR is not the one wanted.
options_differ() {
    local dir=$1
    shift
    meson introspect --buildoptions "$dir" | "$python" -c '
import json, sys
have = {o["name"]: o["value"] for o in json.load(sys.stdin)}
for want in sys.argv[1:]:
    name, value = want.split("=", 1)
    cur = have.get(name)
    if isinstance(cur, bool):
        cur = "true" if cur else "false"
    elif isinstance(cur, list):
        cur = ",".join(cur)
    if str(cur) != value:
        print(name)
' "$@"
}

# configure DIR NAME=VALUE...: set up DIR with those options; reuse it when it already has
# them (ninja re-runs meson by itself when a meson.build changes).
configure() {
    local dir=$1 kv
    shift
    local args=()
    for kv in "$@"; do
        args+=("-D$kv")
    done
    if [ ! -f "$dir/meson-private/coredata.dat" ]; then
        meson setup "$dir" "${args[@]}"
    elif [ -n "$(options_differ "$dir" "$@")" ]; then
        meson setup --reconfigure "$dir" "${args[@]}"
    fi
}

# build DIR NAME=VALUE...: configure and compile; returns non-zero on failure.
build() {
    local dir=$1
    banner "build $dir/ (${*:2})"
    configure "$@" && timeout "$build_timeout_s" ninja -C "$dir"
}

# unit_tests DIR LABEL: meson test, counting its Ok:/Fail: summary.
unit_tests() {
    local dir=$1 label=$2 out="$tmp/unit-$1.txt" rc ok bad
    banner "$label"
    timeout "$meson_test_timeout_s" meson test -C "$dir" --print-errorlogs 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    local counts
    counts=$(awk '
        /^Ok:/ { ok = $2; seen = 1 }
        /^Fail:/ { bad += $2 }
        /^Unexpected Pass:/ { bad += $3 }
        /^Timeout:/ { bad += $2 }
        END { if (seen) print ok + 0, bad + 0 }' "$out")
    local detail=""
    if [ -n "$counts" ]; then
        read -r ok bad <<<"$counts"
        total_passed=$((total_passed + ok))
        total_failed=$((total_failed + bad))
        detail=": $ok ok, $bad failed"
    else
        counts_known=false
    fi
    if [ "$rc" -eq 124 ]; then
        detail="$detail (timed out after ${meson_test_timeout_s}s)"
    fi
    if [ "$rc" -eq 0 ]; then
        note ok "$label$detail"
    else
        note FAIL "$label$detail"
    fi
}

# integration_tests LABEL LOWAT_BIN [pytest args...]: the pytest suite, counting its summary.
integration_tests() {
    local label=$1 lowat=$2 out="$tmp/pytest-${1// /-}.txt" rc
    shift 2
    banner "$label (lowat: $lowat)"
    LOWAT_BIN="$root/$lowat" LOWAT_DEMO_APP="$root/build/tools/lowat-demo-app" \
        timeout "$pytest_timeout_s" "$python" -m pytest -q integration-tests "$@" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    # pytest -q ends with e.g. "12 passed, 1 failed, 2 skipped in 3.40s" or "no tests ran in 0.01s".
    local line
    line=$(grep -E '(passed|failed|error|no tests ran).* in [0-9.]+s' "$out" | tail -n 1)
    local detail=""
    if [ -n "$line" ]; then
        local p f e
        p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
        f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || echo 0)
        e=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || echo 0)
        total_passed=$((total_passed + p))
        total_failed=$((total_failed + f + e))
        detail=": $p passed, $((f + e)) failed"
    else
        counts_known=false
    fi
    case $rc in
    0) note ok "$label$detail" ;;
    5) note FAIL "$label: pytest collected no tests" ;;
    124) note FAIL "$label$detail (timed out after ${pytest_timeout_s}s)" ;;
    *) note FAIL "$label$detail (pytest exit status $rc)" ;;
    esac
}

# skipped LABEL WHY: a step that could not run.
skipped() {
    note SKIP "$1 ($2)"
    counts_known=false
}

banner "dependencies"
if tools/deps.sh; then
    note ok "dependencies"
else
    note FAIL "dependencies (tools/deps.sh)"
    counts_known=false
fi

if build build buildtype=debugoptimized werror=true; then
    note ok "build build/ (debugoptimized, werror)"
    unit_tests build "unit tests"
    build_ok=true
else
    note FAIL "build build/ (debugoptimized, werror)"
    skipped "unit tests" "the build failed"
    build_ok=false
fi

banner "rooms"
if tools/check-rooms.sh; then
    note ok "check-rooms"
else
    note FAIL "check-rooms"
fi

if $build_ok; then
    integration_tests "integration tests" build/proxy/lowat "$@"
else
    skipped "integration tests" "the build failed"
fi

# Each libFuzzer target for a few seconds from its seed corpus (a copy: new inputs the
# fuzzer finds stay out of the tree). A crash or a sanitizer report fails the step.
fuzz_all() {
    local failed=0 ran=0 exe name corpus
    for exe in build-fuzz/common/fuzz_*; do
        [ -f "$exe" ] && [ -x "$exe" ] || continue  # not the .p object directories
        name=${exe##*/fuzz_}
        corpus="$tmp/corpus-$name"
        mkdir -p "$corpus"
        cp -r "common/fuzz/corpus/$name/." "$corpus/" 2>/dev/null || true
        ran=$((ran + 1))
        if ! timeout 60 "$exe" -max_total_time=5 -rss_limit_mb=1024 -print_final_stats=0 "$corpus" \
            >"$tmp/fuzz-$name.log" 2>&1; then
            echo "fuzz $name failed:"
            tail -40 "$tmp/fuzz-$name.log"
            failed=$((failed + 1))
        else
            echo "fuzz $name: $(grep -o '#[0-9]*.*DONE.*' "$tmp/fuzz-$name.log" | tail -1)"
        fi
    done
    [ "$ran" -gt 0 ] && [ "$failed" -eq 0 ]
}

if CC=clang build build-fuzz fuzz=true buildtype=debugoptimized; then
    banner "fuzz (5 s per target)"
    if fuzz_all; then
        note ok "fuzz targets (5 s each)"
    else
        note FAIL "fuzz targets"
    fi
else
    note FAIL "build build-fuzz/ (clang, libFuzzer)"
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if build build-asan buildtype=debug b_sanitize=address,undefined b_lundef=false; then
    note ok "build build-asan/ (address,undefined)"
    unit_tests build-asan "unit tests (asan)"
    if $build_ok; then
        integration_tests "integration tests (asan)" build-asan/proxy/lowat "$@"
    else
        skipped "integration tests (asan)" "the demo app comes from build/, which failed"
    fi
else
    note FAIL "build build-asan/ (address,undefined)"
    skipped "unit tests (asan)" "the build failed"
    skipped "integration tests (asan)" "the build failed"
fi

banner "summary"
printf '%s\n' "${summary[@]}"
if [ "$status" -eq 0 ]; then
    echo "test.sh: all passed"
else
    echo "test.sh: FAILED"
fi
if $counts_known; then
    echo "$total_passed passed, $total_failed failed"
fi
exit "$status"
