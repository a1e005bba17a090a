# Sourced by the multi-rank shell suites (after tests/harness.sh, which sets
# $tmp): one background job at a time under a watchdog, so a hang fails the
# case instead of blocking ctest.
#   run_job SECONDS CMD...  starts CMD (stdout to $tmp/out, stderr to
#                           $tmp/err); $job is its pid
#   finish_job              waits for it; $rc is its status (137 when the
#                           watchdog killed it)

run_job() {
  local limit=$1
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" &
  job=$!
  # Its own sleep goes when it is told to, and it holds none of our pipes.
  (
    trap 'kill "$nap"; exit 0' TERM
    sleep "$limit" &
    nap=$!
    wait "$nap"
    kill -KILL "$job"
  ) >/dev/null 2>&1 &
  watchdog=$!
}

finish_job() {
  wait "$job"
  rc=$?
  kill "$watchdog" 2>/dev/null
  wait "$watchdog" 2>/dev/null
}
