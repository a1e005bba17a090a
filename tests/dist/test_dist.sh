#!/usr/bin/env bash
# Failures and signals across ranks, with test_comm's modes.
# usage: test_dist.sh CASE path/to/test_comm mpiexec [launcher flags...]
#   abort               rank 1 of 3 fails while the others wait: all stop, its message once, exit 2
#   agree               rank 2 of 3 fails at a common point: rank 0 prints it once, exit 2
#   interrupt-rank      SIGINT to rank 1 only: every rank stops after the same chunk, exit 130
#   interrupt-launcher  SIGINT to the launcher (Open MPI's mpirun sends SIGTERM to every rank)
#   reruns              sums over 2 and 3 ranks: the same bits run after run
#   launch              no launcher needed: srun's tasks without MPI are refused,
#                       DLAB_MPI=0 runs alone, DLAB_MPI=1 makes an MPI singleton
# Every run has a watchdog: a hang is killed and fails the case.
set -u
case_name=$1 test_comm=$2
shift 2
launcher=("$@")
. "$(dirname "$0")/../harness.sh"

. "$(dirname "$0")/jobs.sh"

# wait_pids N: until the N ranks have written their pid files (at most 30 s).
wait_pids() {
  for _ in $(seq 300); do
    [ "$(ls "$tmp"/pids/rank*.pid 2>/dev/null | wc -l)" -eq "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# no_rank_left: none of the ranks whose pids were written still runs (a
# zombie waiting for a parent that does not reap has finished).
no_rank_left() {
  local f state
  for f in "$tmp"/pids/rank*.pid; do
    state=$(ps -o stat= -p "$(cat "$f")" 2>/dev/null)
    if [ -n "$state" ] && [ "${state#Z}" = "$state" ]; then
      echo "rank pid $(cat "$f") still runs"
      return 1
    fi
  done
}

count() { grep -c -- "$1" "$2"; }

show() { echo "--- stdout"; cat "$tmp/out"; echo "--- stderr"; cat "$tmp/err"; }

# fails_once MESSAGE ARGS...: test_comm ARGS on 3 ranks exits 2 (the failing
# rank's code) and MESSAGE is printed exactly once.
fails_once() {
  local msg=$1 n
  shift
  run_job 60 "${launcher[@]}" -np 3 "$test_comm" "$@"
  finish_job
  [ "$rc" -eq 2 ] && ok || { bad "exit $rc, expected 2"; show; }
  n=$(count "$msg" "$tmp/err")
  [ "$n" -eq 1 ] && ok || { bad "'$msg' printed $n times"; show; }
}

case $case_name in
abort)
  fails_once "dlab-gpu: rank 1: error: data.csv:73:2: not a number" --abort-on 1
  grep -q "barrier returned" "$tmp/err" && { bad "a rank went on after the failure"; show; } || ok
  ;;
agree)
  fails_once "dlab-gpu: error: rank 2: data.csv:12:1: empty field" --agree-fail 2
  grep -q "MPI_ABORT" "$tmp/err" && { bad "an agreed failure aborted"; show; } || ok
  ;;
interrupt-rank | interrupt-launcher)
  mkdir -p "$tmp/pids"
  run_job 90 "${launcher[@]}" -np 3 "$test_comm" --loop "$tmp/pids"
  if wait_pids 3; then
    sleep 0.5
    if [ "$case_name" = interrupt-rank ]; then
      kill -INT "$(cat "$tmp/pids/rank1.pid")"
    else
      kill -INT "$job"
    fi
  else
    bad "the ranks did not start"
  fi
  finish_job
  [ "$rc" -ne 137 ] && ok || { bad "the job hung and was killed"; show; }
  grep -q "stopped after chunk [0-9]* on all 3 ranks" "$tmp/out" && ok \
    || { bad "the ranks did not stop together"; show; }
  if [ "$case_name" = interrupt-rank ]; then
    [ "$rc" -eq 130 ] && ok || { bad "exit $rc, expected 130"; show; }
  else
    [ "$rc" -ne 0 ] && ok || { bad "an interrupted job exited 0"; show; }
  fi
  sleep 0.5
  no_rank_left && ok || bad "a rank outlived the job"
  ;;
reruns)
  for np in 2 3; do
    for run in 1 2 3; do
      run_job 60 "${launcher[@]}" -np $np "$test_comm" --checksum
      finish_job
      [ "$rc" -eq 0 ] || { bad "checksum run exited $rc"; show; }
      grep "^checksum" "$tmp/out" >"$tmp/sum.$np.$run"
    done
    [ -s "$tmp/sum.$np.1" ] && cmp -s "$tmp/sum.$np.1" "$tmp/sum.$np.2" \
      && cmp -s "$tmp/sum.$np.1" "$tmp/sum.$np.3" && ok \
      || bad "$np ranks: sums differ between runs: $(cat "$tmp"/sum.$np.*)"
  done
  ;;
launch)
  slurm=(SLURM_STEP_NUM_TASKS=4 SLURM_PROCID=2 SLURM_LAUNCH_NODE_IPADDR=10.0.0.1)
  env "${slurm[@]}" "$test_comm" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ "$rc" -ne 0 ] && grep -q "srun started 4 tasks without an MPI plugin.*--mpi=pmix" "$tmp/err" \
    && ok || { bad "srun tasks without MPI: exit $rc"; show; }
  env "${slurm[@]}" DLAB_MPI=0 "$test_comm" >"$tmp/out" 2>"$tmp/err" && ok \
    || { bad "DLAB_MPI=0 did not run alone"; show; }
  env DLAB_MPI=1 "$test_comm" >"$tmp/out" 2>"$tmp/err" \
    && grep -q "(rank 0 of 1): [0-9]* passed, 0 failed" "$tmp/out" && ok \
    || { bad "DLAB_MPI=1 did not run as one rank"; show; }
  ;;
*)
  echo "test_dist.sh: unknown case $case_name" >&2
  exit 2
  ;;
esac
finish "test_dist $case_name"
