# Sourced by CLI tests (not a test itself: only tests/cli/*.sh are).  Needs $tmp.
# expect CODE DESCRIPTION -- command...: runs the command into $tmp/out.txt and
# checks its exit status, printing ok/FAIL; a failure sets fail=1 and shows the output.
expect() {
    local want=$1 what=$2; shift 3
    "$@" >"$tmp/out.txt" 2>&1
    local got=$?
    if [ "$got" -ne "$want" ]; then echo "FAIL: $what: exit $got, expected $want"; sed 's/^/    /' "$tmp/out.txt"; fail=1
    else echo "ok: $what"; fi
}

