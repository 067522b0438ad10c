#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian 12 packages needed to build and test sommelier, in one place.
#
#   tools/deps.sh --list     print them, one per line
#   tools/deps.sh --check    exit 0 if all are installed, else list the missing ones
#   tools/deps.sh --install  apt-get update + install them (as root, or through sudo)
#
# Add a package here in the same change that starts needing it.
set -euo pipefail

# Configure and compile: meson.build, protocol/wayland/protogen.py.
build=(
	meson ninja-build pkg-config gcc python3
	libwayland-dev wayland-protocols plasma-wayland-protocols
	libdrm-dev libgbm-dev libxkbcommon-dev libpixman-1-dev libinih-dev
)
# fuzz/run: clang with libFuzzer and the sanitizer runtimes.
fuzz=(clang libclang-rt-dev)
# meson test: headless compositors and real clients.
tests=(weston wayland-utils sway foot wtype wl-clipboard grim python3-pil)
# The copy path against more host compositors: mutter (it releases shm
# buffers at commit) and kwin (KDE shadows name shm buffers; screenshots
# over D-Bus, with python3-dbus), headless; both need a session bus and
# Mesa's software EGL driver.
tests+=(mutter kwin-wayland dbus-daemon libgl1-mesa-dri python3-dbus)
# Planned for the Xwayland tests (DESIGN.md), not needed yet:
# xwayland x11-utils xterm xdotool. bench/run also compares with waypipe when
# it is installed.

packages=("${build[@]}" "${fuzz[@]}" "${tests[@]}")

usage() {
	echo "usage: $0 --list | --check | --install" >&2
	exit 2
}

missing() {
	local pkg status
	for pkg in "${packages[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
		[[ $status == installed ]] || echo "$pkg"
	done
}

install() {
	local -a apt=(apt-get) prefix=()
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null; then
			echo "$0: not root and no sudo; as root, run:" >&2
			echo "  apt-get update && apt-get install -y --no-install-recommends ${packages[*]}" >&2
			exit 1
		fi
		# sudo resets the environment; keep a noninteractive frontend if one was asked for.
		prefix=(sudo env "DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}")
	fi
	"${prefix[@]}" "${apt[@]}" update
	"${prefix[@]}" "${apt[@]}" install -y --no-install-recommends "${packages[@]}"
}

(($# == 1)) || usage
case $1 in
--list) printf '%s\n' "${packages[@]}" ;;
--check)
	mapfile -t absent < <(missing)
	if ((${#absent[@]})); then
		echo "missing packages: ${absent[*]}"
		exit 1
	fi
	;;
--install) install ;;
*) usage ;;
esac
