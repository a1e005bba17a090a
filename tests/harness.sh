# Sourced by the shell test suites: a scratch directory removed on exit,
# pass/fail counters, and the closing line ctest shows.
#   ok                      count a passed check
#   bad MESSAGE...          count a failed check and say why
#   check NAME COMMAND...   ok if COMMAND succeeds, else bad NAME
#   finish SUITE            print "SUITE: N passed, N failed"; status 1 on a failure
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
check() {
  local name=$1
  shift
  if "$@"; then ok; else bad "$name"; fi
}
finish() {
  echo "$1: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
