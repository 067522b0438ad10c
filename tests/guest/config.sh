#!/bin/sh
# sommelier's config file: the [sommelier] section, --config, the default
# path, errors, and precedence (defaults < SOMMELIER_* < file < command
# line, the host side being one setting). No compositor needed: `display =
# nowhere` picks direct mode, whose connection fails without harm, and
# PROGRAM's exit status tells that sommelier got as far as running it.
# Which host side was chosen shows in the log: a peer that cannot be
# reached is named in a warning, a direct display is not.
set -u
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; sed 's/^/  stderr: /' "$tmp/err" 2>/dev/null; exit 1; }
mkdir -m 700 "$tmp/run" "$tmp/home"
export XDG_RUNTIME_DIR="$tmp/run" HOME="$tmp/home"
unset WAYLAND_DISPLAY WAYLAND_SOCKET SOMMELIER_PEER SOMMELIER_DISPLAY SOMMELIER_SOCKET \
	SOMMELIER_LOG_LEVEL XDG_CONFIG_HOME NOTIFY_SOCKET

conf() { # conf FILE LINE... : a config file with those lines
	f=$1; shift
	printf '%s\n' "$@" > "$f"
}
# run STATUS DESCRIPTION COMMAND...: COMMAND's exit status must be STATUS.
run() {
	want=$1 what=$2; shift 2
	"$@" 2> "$tmp/err"; got=$?
	[ $got -eq "$want" ] || fail "$what: exit status $got, expected $want"
}

# Direct mode from the file: no complaint about a missing host side.
conf "$tmp/direct.conf" '# comment' '[other]' 'anything = 1' '[sommelier]' 'display = nowhere'
run 5 "display from --config" "$bin" --config="$tmp/direct.conf" sh -c 'exit 5'
run 5 "-c FILE" "$bin" -c "$tmp/direct.conf" sh -c 'exit 5'
grep -q "no host side" "$tmp/err" && fail "file's display not used"

# Errors: exit 2 and a message that names the file, the line and the key.
conf "$tmp/unknown.conf" '[sommelier]' 'display = nowhere' 'no-such-key = 1'
run 2 "unknown key" "$bin" --config="$tmp/unknown.conf" true
grep -q "unknown.conf:3: .*no-such-key" "$tmp/err" || fail "unknown key not named"
run 2 "missing --config" "$bin" --config="$tmp/missing.conf" true
grep -q "missing.conf" "$tmp/err" || fail "missing --config not named"
conf "$tmp/cmdonly.conf" '[sommelier]' 'parent = true'
run 2 "command-line-only key" "$bin" --config="$tmp/cmdonly.conf" true
conf "$tmp/badflag.conf" '[sommelier]' 'display = nowhere' 'shm-copy = maybe'
run 2 "bad flag value" "$bin" --config="$tmp/badflag.conf" true
grep -q "shm-copy" "$tmp/err" || fail "bad flag value not named"
conf "$tmp/badpeer.conf" '[sommelier]' 'peer = bogus'
run 2 "bad peer" "$bin" --config="$tmp/badpeer.conf" true
conf "$tmp/syntax.conf" '[sommelier]' 'display nowhere'
run 2 "malformed line" "$bin" --config="$tmp/syntax.conf" true
grep -q "syntax.conf:2" "$tmp/err" || fail "malformed line not located"
# --help needs no valid file; options after PROGRAM are PROGRAM's.
"$bin" --config="$tmp/unknown.conf" --help > /dev/null || fail "--help with a bad file"
run 3 "--config after PROGRAM" "$bin" --display=nowhere sh -c 'exit 3' --config=/missing

# Flags take true/false, yes/no, on/off, 1/0.
conf "$tmp/flags.conf" '[sommelier]' 'display = nowhere' 'shm-copy = yes' \
	'virtgpu-channel = false' 'noop-driver = 0' 'no-exit-with-child = off'
run 6 "flags" "$bin" --config="$tmp/flags.conf" sh -c 'exit 6'

# The command line beats the file, for the host side as a whole: the
# file's peer is not even tried.
conf "$tmp/peer.conf" '[sommelier]' 'peer = unix:/nonexistent/peer.sock'
run 5 "command line over file" "$bin" --config="$tmp/peer.conf" -l info --display=nowhere \
	sh -c 'exit 5'
grep -q "/nonexistent/peer.sock" "$tmp/err" && fail "file's peer used over --display"
# (The probe works: without --display the peer is tried and named.)
run 5 "file's peer" "$bin" --config="$tmp/peer.conf" sh -c 'exit 5'
grep -q "/nonexistent/peer.sock" "$tmp/err" || fail "file's peer not used"

# The file beats the environment: its display over SOMMELIER_PEER, its
# noop-driver too, and its log level over SOMMELIER_LOG_LEVEL (probed with
# the info message --peer-cmd-prefix prints).
run 5 "file over SOMMELIER_PEER" env SOMMELIER_PEER=unix:/nonexistent/env.sock \
	"$bin" --config="$tmp/direct.conf" sh -c 'exit 5'
grep -q "/nonexistent/env.sock" "$tmp/err" && fail "SOMMELIER_PEER used over the file"
run 5 "SOMMELIER_PEER alone" env SOMMELIER_PEER=unix:/nonexistent/env.sock \
	"$bin" sh -c 'exit 5'
grep -q "/nonexistent/env.sock" "$tmp/err" || fail "SOMMELIER_PEER not used"
# (noop-driver: direct to $WAYLAND_DISPLAY.)
conf "$tmp/noop.conf" '[sommelier]' 'noop-driver = true'
run 5 "file's noop-driver over SOMMELIER_PEER" env SOMMELIER_PEER=unix:/nonexistent/env.sock \
	WAYLAND_DISPLAY=nowhere "$bin" --config="$tmp/noop.conf" sh -c 'exit 5'
grep -q "/nonexistent/env.sock" "$tmp/err" && fail "SOMMELIER_PEER used over noop-driver"
conf "$tmp/quiet.conf" '[sommelier]' 'display = nowhere' 'log-level = error'
run 0 "file's log level" env SOMMELIER_LOG_LEVEL=info \
	"$bin" --config="$tmp/quiet.conf" --peer-cmd-prefix=x true
grep -q "peer-cmd-prefix" "$tmp/err" && fail "SOMMELIER_LOG_LEVEL used over the file"
run 0 "SOMMELIER_LOG_LEVEL alone" env SOMMELIER_LOG_LEVEL=info \
	"$bin" --display=nowhere --peer-cmd-prefix=x true
grep -q "peer-cmd-prefix" "$tmp/err" || fail "SOMMELIER_LOG_LEVEL not used"
# A SOMMELIER_* variable is still a default where the file says nothing.
conf "$tmp/other.conf" '[sommelier]' 'shm-copy = true'
run 4 "SOMMELIER_DISPLAY with a file" env SOMMELIER_DISPLAY=nowhere \
	"$bin" --config="$tmp/other.conf" sh -c 'exit 4'

# The default file: $XDG_CONFIG_HOME/sommelier/sommelier.conf, else
# ~/.config/sommelier/sommelier.conf; --config replaces it.
run 2 "no file, no host" "$bin" true
grep -q "no host side" "$tmp/err" || fail "no host side without a file"
mkdir -p "$tmp/xdg/sommelier" "$tmp/home/.config/sommelier"
cp "$tmp/direct.conf" "$tmp/xdg/sommelier/sommelier.conf"
run 5 "XDG_CONFIG_HOME" env XDG_CONFIG_HOME="$tmp/xdg" "$bin" sh -c 'exit 5'
cp "$tmp/direct.conf" "$tmp/home/.config/sommelier/sommelier.conf"
run 5 "~/.config" "$bin" sh -c 'exit 5'
cp "$tmp/unknown.conf" "$tmp/xdg/sommelier/sommelier.conf"
run 2 "bad default file" env XDG_CONFIG_HOME="$tmp/xdg" "$bin" true
grep -q "no-such-key" "$tmp/err" || fail "default file's unknown key not named"
run 7 "--config instead of the default" env XDG_CONFIG_HOME="$tmp/xdg" \
	"$bin" --config="$tmp/direct.conf" sh -c 'exit 7'

echo "config: 1 passed, 0 failed"
