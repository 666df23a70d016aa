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

# expect_msg CODE PATTERN -- command...: exit status CODE and a stderr line matching PATTERN
# (grep); a failure (CODE != 0) must say so in exactly one line.
expect_msg() {
    local want=$1 pattern=$2
    shift 3
    "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $*: exit $got, expected $want"; sed 's/^/    /' "$tmp/err.txt" | tail -3; fail=1
    elif ! grep -q -- "$pattern" "$tmp/err.txt"; then
        echo "FAIL: $*: no '$pattern' in:"; sed 's/^/    /' "$tmp/err.txt" | tail -3; fail=1
    elif [ "$want" -ne 0 ] && [ "$(grep -vc '^$' "$tmp/err.txt")" -ne 1 ]; then
        echo "FAIL: $*: the error is not one line:"; sed 's/^/    /' "$tmp/err.txt"; fail=1
    else
        echo "ok: ${pattern}"
    fi
}
