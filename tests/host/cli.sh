#!/bin/sh
# sommelier-host's command line, config file and signal handling.
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export XDG_CONFIG_HOME="$tmp/config" # no user config in tests

"$bin" --help > "$tmp/help" || fail "--help exited $?"
grep -q -- "--display" "$tmp/help" || fail "--help does not list --display"
grep -q -- "--max-queue" "$tmp/help" || fail "--help does not list --max-queue"
"$bin" --version | grep -qx "sommelier-host [0-9.]*" || fail "--version"

"$bin" --max-pipes=abc 2> "$tmp/err"; [ $? -eq 2 ] || fail "bad value not exit 2"
grep -q "max-pipes" "$tmp/err" || fail "bad value message does not name the option"
"$bin" --no-such-option 2>/dev/null; [ $? -eq 2 ] || fail "unknown option not exit 2"
"$bin" stray-argument 2>/dev/null; [ $? -eq 2 ] || fail "stray argument not exit 2"
"$bin" --config="$tmp/missing.conf" --version 2>/dev/null; [ $? -eq 2 ] || fail "missing explicit config accepted"

printf '[host]\nmax-pipes = 8\nno-such-key = 1\n' > "$tmp/bad.conf"
"$bin" --config="$tmp/bad.conf" --version 2> "$tmp/err"; [ $? -eq 2 ] || fail "unknown config key accepted"
grep -q "no-such-key" "$tmp/err" || fail "config error does not name the key"
printf '[host]\nmax-pipes = 8\nlog-level = debug\n[sommelier]\nanything = 1\n' > "$tmp/good.conf"
"$bin" --config="$tmp/good.conf" --version > /dev/null || fail "valid config rejected"

# Runs, listens, and on SIGTERM exits 0 removing its socket and lock.
mkdir -m 700 "$tmp/run"
XDG_RUNTIME_DIR="$tmp/run" "$bin" --display=nothing-here &
pid=$!
i=0
while [ ! -S "$tmp/run/sommelier-host.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$tmp/run/sommelier-host.sock" ] || fail "default socket not created"
# A second daemon on the same socket refuses to start instead of stealing it.
XDG_RUNTIME_DIR="$tmp/run" "$bin" 2>/dev/null; [ $? -ne 0 ] || fail "second daemon started"
[ -S "$tmp/run/sommelier-host.sock" ] || fail "second daemon removed the socket"
# Stopped and continued (job control, a debugger attaching), its wait is
# interrupted (EINTR); it must keep serving.
kill -STOP $pid; sleep 0.1; kill -CONT $pid; sleep 0.3
kill -0 $pid 2>/dev/null || fail "died after SIGSTOP/SIGCONT"
[ -S "$tmp/run/sommelier-host.sock" ] || fail "socket gone after SIGSTOP/SIGCONT"
kill -TERM $pid
wait $pid; status=$?
[ $status -eq 0 ] || fail "SIGTERM exit status $status"
[ ! -e "$tmp/run/sommelier-host.sock" ] || fail "socket left behind"
[ ! -e "$tmp/run/sommelier-host.sock.lock" ] || fail "lock left behind"
# Out of fds, accepting pauses instead of spinning on EMFILE (the pending
# guests wait in the backlog), and resumes once fds are free again.
mkdir -m 700 "$tmp/few"
(ulimit -n 24 && exec "$bin" --socket="$tmp/few/h.sock" --display="$tmp/few/nothing-here" --log-level=info) 2> "$tmp/few.log" &
pid=$!
i=0
while [ ! -S "$tmp/few/h.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
python3 - "$tmp/few/h.sock" $pid "$tmp/few.log" <<'PY' || { kill $pid; fail "accept under EMFILE"; }
import os, socket, sys, time
path, pid, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def connected():
    return open(log).read().count(": connected")
held = []
for _ in range(30):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    held.append(s)
time.sleep(0.3)
before = connected()
start = cpu()
time.sleep(1.0)
used = cpu() - start
assert used < 0.3, f"sommelier-host used {used:.2f} s of CPU in 1 s with accept failing"
assert "pausing" in open(log).read(), "no pause logged"
assert 5 < before < 30, f"{before} connections accepted under a limit of 24 fds"
# Those that waited were not accepted and dropped: once fds are free, the
# next ones are accepted and kept.
for s in held[:before]:
    s.close()
deadline = time.time() + 5
while connected() < 2 * before - 1 and time.time() < deadline:
    time.sleep(0.05)
assert connected() >= 2 * before - 1, f"{connected()} accepted after {before} closed"
for s in held[before:connected()]:
    s.setblocking(False)
    try:
        data = s.recv(1)
        raise AssertionError(f"a waiting guest was dropped ({data!r})")
    except BlockingIOError:
        pass
PY
kill -TERM $pid; wait $pid || fail "EMFILE daemon exit status $?"

# vsock: this machine can bind a vsock port (though not connect to itself),
# so check that a vsock-only daemon comes up and shuts down cleanly.
if python3 -c 'import socket; socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)' 2>/dev/null; then
	port=$((20000 + $$ % 20000))
	XDG_RUNTIME_DIR="$tmp/run" "$bin" --socket=none --vsock=$port 2> "$tmp/vsock.err" &
	pid=$!
	sleep 0.3
	kill -0 $pid 2>/dev/null || fail "vsock-only daemon died: $(cat "$tmp/vsock.err")"
	kill -TERM $pid
	wait $pid || fail "vsock daemon exit status $?"
else
	echo "note: no AF_VSOCK here; vsock listener not exercised"
fi
XDG_RUNTIME_DIR="$tmp/run" "$bin" --socket=none 2> "$tmp/err"; [ $? -ne 0 ] || fail "daemon with nothing to listen on started"
grep -q "nothing to listen on" "$tmp/err" || fail "no listener: wrong message: $(cat "$tmp/err")"
echo "cli: 1 passed, 0 failed"
