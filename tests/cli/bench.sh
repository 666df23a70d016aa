#!/usr/bin/env bash
# tessera bench: usage and argument errors (the suites themselves take a minute and
# belong to benchmarking, not to the test run).
set -u
tessera=$1
fail=0
check() { # expected-status description command...
    local want=$1 what=$2
    shift 2
    "$@" >/dev/null 2>&1
    local got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL $what: exit $got, want $want"
        fail=1
    else
        echo "ok   $what"
    fi
}
check 0 "bench --help" "$tessera" bench --help
check 2 "bench without a suite" "$tessera" bench
check 2 "bench unknown suite" "$tessera" bench nosuch
check 2 "bench --threads without a number" "$tessera" bench ops --threads abc
check 2 "bench --threads 0" "$tessera" bench ops --threads 0
"$tessera" bench nosuch 2>&1 | grep -q "unknown suite 'nosuch'" || { echo "FAIL message names the suite"; fail=1; }
"$tessera" --help | grep -q "bench" || { echo "FAIL bench listed in tessera --help"; fail=1; }
exit $fail
