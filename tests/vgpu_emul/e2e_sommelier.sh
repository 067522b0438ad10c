#!/bin/sh
# The real guest proxy on its kernel backend, end to end through the
# emulated render node: sommelier --virtgpu-channel with libsml-vgpu-emul
# preloaded, sommelier-host as the device, a headless weston as the host
# compositor, wayland-info as the guest program.
# Usage: e2e_sommelier.sh SOMMELIER SOMMELIER_HOST LIBSML_VGPU_EMUL
set -u
guest=$1 host=$2 lib=$3
for prog in weston wayland-info; do
	command -v $prog >/dev/null || { echo "SKIP: $prog is not installed"; exit 77; }
done
tmp=$(mktemp -d)
pids=
trap 'for p in $pids; do kill $p 2>/dev/null; done; wait; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; cat "$tmp/guest.log"; exit 1; }
mkdir -m 700 "$tmp/run"
export XDG_RUNTIME_DIR="$tmp/run"
unset WAYLAND_DISPLAY WAYLAND_SOCKET SOMMELIER_PEER SOMMELIER_DISPLAY SOMMELIER_SOCKET \
	LD_PRELOAD SML_VGPU_EMUL_SOCKET

wait_for() {
	for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done
	fail "$1 did not appear"
}

weston --backend=headless-backend.so --socket=wl-host --idle-time=0 --no-config \
	2> "$tmp/weston.log" &
pids="$pids $!"
wait_for "$XDG_RUNTIME_DIR/wl-host"
"$host" --socket="$XDG_RUNTIME_DIR/sommelier-host.sock" --display=wl-host 2> "$tmp/host.log" &
pids="$pids $!"
wait_for "$XDG_RUNTIME_DIR/sommelier-host.sock"

SML_VGPU_EMUL_SOCKET="$XDG_RUNTIME_DIR/sommelier-host.sock" LD_PRELOAD="$lib" \
	timeout 30 "$guest" --virtgpu-channel --log-level=info -- wayland-info \
	> "$tmp/guest.log" 2>&1 || fail "sommelier --virtgpu-channel wayland-info: status $?"
grep -q "kernel device /dev/dri/renderD128" "$tmp/guest.log" || fail "kernel backend not used"
grep -q "interface: 'wl_compositor'" "$tmp/guest.log" || fail "no wl_compositor"
grep -q "interface: 'xdg_wm_base'" "$tmp/guest.log" || fail "no xdg_wm_base"
n=$(grep -c "^interface:" "$tmp/guest.log")
echo "sommelier --virtgpu-channel: $n globals through the emulated node"
