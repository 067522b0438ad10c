#!/bin/sh
# sommelier's command line, exit status and readiness notification; no
# compositor needed (programs that never connect, and --parent without
# clients).
set -u
bin=$1
tmp=$(mktemp -d)
# Programs of a failed check must not outlive it (they hold the output).
trap 'kill $pid 2>/dev/null; pkill -f "$tmp/"; pkill -xf "sleep 29.37"; rm -rf "$tmp"' EXIT
pid=
fail() { echo "FAIL: $*"; exit 1; }
mkdir -m 700 "$tmp/run"
export XDG_RUNTIME_DIR="$tmp/run" XDG_CONFIG_HOME="$tmp/config" # no user config in tests
unset WAYLAND_DISPLAY WAYLAND_SOCKET SOMMELIER_PEER SOMMELIER_DISPLAY SOMMELIER_SOCKET

"$bin" --help | grep -q -- "--peer=unix:PATH" || fail "--help"
"$bin" --version | grep -qx "sommelier [0-9.]*" || fail "--version"

# No host side at all: a clear message naming the fix, exit 2.
"$bin" true 2> "$tmp/err"; [ $? -eq 2 ] || fail "no host: exit status"
grep -q "sommelier-host" "$tmp/err" || fail "no host: message does not say what to start"
"$bin" --peer=tcp:127.0.0.1:1 true 2>/dev/null; [ $? -eq 2 ] || fail "tcp peer accepted"
"$bin" --peer=bogus true 2>/dev/null; [ $? -eq 2 ] || fail "bad peer accepted"
"$bin" --parent --display=x 2>/dev/null; [ $? -eq 2 ] || fail "--parent without --socket"
"$bin" --display=x 2>/dev/null; [ $? -eq 2 ] || fail "no program accepted"

# PROGRAM's exit status is sommelier's, also after "--", and options after
# PROGRAM belong to PROGRAM.
"$bin" --display=nowhere sh -c 'exit 7'; [ $? -eq 7 ] || fail "exit status not passed on"
"$bin" --display=nowhere -- sh -c 'exit 3' --help; [ $? -eq 3 ] || fail "-- form"
"$bin" --display=nowhere sh -c 'kill -TERM $$'; [ $? -eq 143 ] || fail "signal status"
# Stopping sommelier stops its program: SIGTERM is passed on, and sommelier
# leaves with the program's status (here what its handler chose, then that
# of a program killed by it); the soft fd limit it raised for itself is not
# the program's.
"$bin" --display=nowhere sh -c 'trap "exit 9" TERM; touch "$0.up"; while :; do sleep 0.05; done' \
	"$tmp/trap" & pid=$!
n=0; while [ ! -e "$tmp/trap.up" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
kill -TERM $pid; wait $pid; [ $? -eq 9 ] || fail "SIGTERM: the program's handler status"
"$bin" --display=nowhere sh -c 'touch "$0.up"; exec sleep 29.37' "$tmp/sleep" & pid=$!
n=0; while [ ! -e "$tmp/sleep.up" ] && [ $n -lt 100 ]; do sleep 0.05; n=$((n + 1)); done
sleep 0.1 # past the exec
kill -TERM $pid; wait $pid; [ $? -eq 143 ] || fail "SIGTERM: not passed on to the program"
! ps -eo args | grep -qx "sleep 29.37" || fail "SIGTERM: the program outlived sommelier"
[ "$("$bin" --display=nowhere sh -c 'ulimit -Sn')" = "$(ulimit -Sn)" ] ||
	fail "the program got sommelier's raised fd limit"
# The child sees a Wayland socket of its own and a display for its children.
"$bin" --display=nowhere sh -c '[ -n "$WAYLAND_SOCKET" ] && [ -S "$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY" ]' ||
	fail "child environment"
# SOMMELIER_DISPLAY is a default for --display.
SOMMELIER_DISPLAY=nowhere "$bin" true || fail "SOMMELIER_DISPLAY"

# Direct mode must not take its own socket for the host compositor (that
# would connect sommelier to itself, forever).
timeout 10 "$bin" --noop-driver true 2> "$tmp/err"; st=$?
[ $st -ne 0 ] && [ $st -ne 124 ] || fail "direct mode on its own socket: status $st"
grep -q "own socket" "$tmp/err" || fail "own socket: no message"
timeout 10 "$bin" --parent --socket=sml-self --display=sml-self 2> "$tmp/err"; st=$?
[ $st -ne 0 ] && [ $st -ne 124 ] || fail "--parent on its own display: status $st"

# --parent: listens, tells systemd it is ready, and exits 0 on SIGTERM.
/usr/bin/python3 - "$tmp/notify" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(10)
open(sys.argv[1] + ".got", "wb").write(s.recv(64))
PY
npid=$!
i=0; while [ ! -S "$tmp/notify" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
NOTIFY_SOCKET="$tmp/notify" "$bin" --parent --socket=sml-cli --display=nowhere \
	--sd-notify=READY=1 &
pid=$!
wait $npid
[ "$(cat "$tmp/notify.got" 2>/dev/null)" = "READY=1" ] || fail "sd-notify"
[ -S "$tmp/run/sml-cli" ] || fail "--parent socket"
kill -STOP $pid; sleep 0.1; kill -CONT $pid; sleep 0.3
kill -0 $pid 2>/dev/null || fail "--parent died after SIGSTOP/SIGCONT"
# A second server on the same socket: refused, and the first keeps it.
"$bin" --parent --socket=sml-cli --display=nowhere 2> "$tmp/err"; [ $? -ne 0 ] ||
	fail "a second --parent on a socket in use"
grep -q "holds its lock" "$tmp/err" || fail "socket in use: wrong message: $(cat "$tmp/err")"
[ -S "$tmp/run/sml-cli" ] && [ -e "$tmp/run/sml-cli.lock" ] ||
	fail "the refused second --parent removed the socket or its lock"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$tmp/run/sml-cli" ||
	fail "the first --parent stopped accepting after a second was refused"
kill -TERM $pid; wait $pid; [ $? -eq 0 ] || fail "--parent SIGTERM status"
[ ! -e "$tmp/run/sml-cli" ] && [ ! -e "$tmp/run/sml-cli.lock" ] ||
	fail "--parent left its socket or lock behind"
# A stale socket file and its lock, unheld (what a crash leaves), are taken over.
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$tmp/run/sml-cli"
touch "$tmp/run/sml-cli.lock"
"$bin" --parent --socket=sml-cli --display=nowhere & pid=$!
python3 - "$tmp/run/sml-cli" <<'PY' || fail "a stale socket file was not replaced"
import socket, sys, time
for _ in range(100):
    try:
        socket.socket(socket.AF_UNIX).connect(sys.argv[1])
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
kill -TERM $pid; wait $pid; [ $? -eq 0 ] || fail "--parent on a stale socket: SIGTERM status"
env -u XDG_RUNTIME_DIR "$bin" --parent --socket=sml-cli --display=nowhere 2> "$tmp/err" &&
	fail "--parent without XDG_RUNTIME_DIR started"
grep -q "XDG_RUNTIME_DIR is not set" "$tmp/err" || fail "no XDG_RUNTIME_DIR: wrong message: $(cat "$tmp/err")"
# As libwayland: a relative name goes only under an absolute runtime dir.
(cd "$tmp" && XDG_RUNTIME_DIR=run "$bin" --parent --socket=sml-cli --display=nowhere 2> "$tmp/err") &&
	fail "--parent with a relative XDG_RUNTIME_DIR started"
[ ! -e "$tmp/run/sml-cli" ] || fail "a relative XDG_RUNTIME_DIR was used"
# A path that cannot be unlinked is named as such, not as a held lock.
mkdir "$tmp/run/sml-dir"
"$bin" --parent --socket=sml-dir --display=nowhere 2> "$tmp/err" && fail "--parent on a directory started"
grep -q "cannot listen on sml-dir: Is a directory" "$tmp/err" || fail "directory: wrong message: $(cat "$tmp/err")"
pid=
echo "cli: 1 passed, 0 failed"
