# Sourced by CLI tests (not a test itself: only tests/cli/*.sh are).  Needs $tmp and a
# bad() that reports a failure.  expect CODE PATTERN -- command...: exit status CODE and a
# stderr matching PATTERN; a failure (CODE != 0) must be one line, as every CLI error is.
expect() {
    local want=$1 pattern=$2
    shift 3
    "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
    local got=$?
    if [ "$got" -ne "$want" ]; then
        bad "$*: exit $got, expected $want"; sed 's/^/    /' "$tmp/err.txt" | tail -3
    elif ! grep -q -- "$pattern" "$tmp/err.txt"; then
        bad "$*: no '$pattern' in:"; sed 's/^/    /' "$tmp/err.txt" | tail -3
    elif [ "$want" -ne 0 ] && [ "$(grep -vc '^$' "$tmp/err.txt")" -ne 1 ]; then
        bad "$*: the error is not one line:"; sed 's/^/    /' "$tmp/err.txt"
    else
        echo "ok: ${pattern}"
    fi
}
