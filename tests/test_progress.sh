#!/usr/bin/env bash
# The progress line: on stderr only when stderr is a terminal (a
# pseudo-terminal here), one line redrawn in place with the epoch, loss,
# epochs per second and time left, cut to the terminal's width, cleared
# before the report, never in --json's stdout; silent with --quiet and when
# stderr is not a terminal. Runs are long and stopped by SIGINT after a few
# seconds, so the line has time to appear on any machine.
# usage: test_progress.sh path/to/dlab-gpu
set -u
python3 - "$1" <<'PY'
import fcntl, json, os, pty, re, select, signal, struct, subprocess, sys, tempfile, termios, time

bin = sys.argv[1]
args = [bin, "--task", "factorise", "--device", "cpu", "--synthetic", "400x100", "--rank", "4",
        "--lr", "1e-4", "--epochs", "2000000", "--no-svd", "--json"]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def run(extra, tty, cols=100, seconds=2.5):
    """Runs dlab-gpu, SIGINT after `seconds`; returns (rc, stdout, stderr)."""
    if tty:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
        err_to = slave
    else:
        err_to = subprocess.PIPE
    # stdout goes to a file: the JSON of a long run outgrows a pipe's buffer
    # and would block the child while this loop waits on the terminal.
    out_file = tempfile.TemporaryFile()
    p = subprocess.Popen(args + extra, stdout=out_file, stderr=err_to, stdin=subprocess.DEVNULL)
    err = b""
    if tty:
        os.close(slave)
        end, sent = time.time() + seconds, False
        while True:
            if not sent and time.time() > end:
                p.send_signal(signal.SIGINT)
                sent = True
            if time.time() > end + 60:  # it did not stop: fail rather than hang
                p.kill()
                break
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                err += chunk
            if sent and p.poll() is not None and not r:
                break
        os.close(master)
    else:
        time.sleep(seconds)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    rc = p.wait(timeout=120)
    out_file.seek(0)
    return rc, out_file.read(), err.decode("utf-8", "replace")


# On a terminal: the line appears, is redrawn with \r only, then cleared.
rc, out, err = run([], tty=True)
check(rc == 130, f"tty run: exit {rc}, expected 130")
report_at = err.find("factorise synthetic")
check(report_at > 0, "tty run: no progress before the report")
progress = err[:report_at]
frames = [f for f in progress.split("\r") if f.strip()]
pattern = re.compile(r"^epoch (\d+)/2000000  loss \S+  [\d.e+]+ epochs/s  \S+ \S*\s*left\s*$")
check(len(frames) >= 2, f"tty run: {len(frames)} progress frames, expected several")
check(all(pattern.match(f) for f in frames), f"tty run: unexpected frame in {frames[:3]}")
check("\n" not in progress, "tty run: the progress line spans several lines")
check(progress.endswith("\r") and progress.rstrip("\r").split("\r")[-1].strip() == "",
      "tty run: the line is not cleared before the report")
epochs = [int(pattern.match(f).group(1)) for f in frames if pattern.match(f)]
check(epochs == sorted(epochs), "tty run: epochs go backwards")
try:
    check(json.loads(out)["status"] == "interrupted", "tty run: stdout JSON status")
except ValueError as e:
    check(False, f"tty run: stdout is not one JSON object ({e}): {out[:200]!r}")

# A narrow terminal: every frame fits in it.
rc, out, err = run([], tty=True, cols=30)
frames = [f for f in err[:err.find("factorise synthetic")].split("\r") if f.strip()]
check(frames and all(len(f) <= 29 for f in frames), f"30 columns: frames {frames[:2]}")

# --quiet on a terminal, and a terminal-less stderr: no progress at all.
rc, out, err = run(["--quiet"], tty=True)
check(rc == 130 and "\repoch" not in err and "epochs/s" not in err, f"--quiet: progress shown: {err[:200]!r}")
rc, out, err = run([], tty=False)
check(rc == 130 and "epochs/s" not in err and "\r" not in err, f"pipe: progress shown: {err[:200]!r}")

print(f"test_progress: {'0 failed' if not failures else f'{len(failures)} failed'}")
sys.exit(1 if failures else 0)
PY
