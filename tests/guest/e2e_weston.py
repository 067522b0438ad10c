#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End-to-end tests of the guest proxy with a real compositor and real clients.

A headless weston (pixman renderer, so that weston-screenshooter has pixels)
runs in a private XDG_RUNTIME_DIR, sommelier-host in front of it, and the
guest proxy `sommelier` in front of that. Each test prints one line with its
result and numbers; the last line is "N passed, M failed" and the exit status
is non-zero when anything failed.

  globals_match             wayland-info lists the same globals through the proxy
  direct_and_default_peer   no host option finds the host side; --display is direct
  simple_shm_runs           weston-simple-shm through the proxy, window on screen
  pixels_passthrough        sml-paint's exact colour on screen (the default path:
                            shared memory, or copied on virtgpu)
  pixels_copy               the same with --shm-copy (and the pool really copied)
  pixels_copy_repaint       --shm-copy with --frames 3 --damage 50
  pixels_copy_history       damage history across two buffers, both paths
  pixels_copy_catch_up      a released buffer brought up to date before its commit
  fifty_clients_isolation   50 clients on one --parent; SIGKILL one, garbage one
  no_growth_500_cycles      fds, threads and RSS of sommelier and sommelier-host
  out_of_fds                a --parent out of fds rests instead of spinning, and the
                            clients that wait are served as fds come free
  host_protocol_error       a host error reaches the guest on the guest's object
  ring_destroyed_under_context
                            virtgpu only: a guest destroys its channel ring while
                            its context lives (the kernel backend's teardown
                            order); sommelier-host must survive the compositor's
                            next data
  copy_unoffered_format     a format the host does not offer: the error on the pool
  refused_fd_named          a client fd that cannot cross: the error says why
  random_requests           sml-chaos's random requests through both buffer paths:
                            the proxies survive, fds come back, a bystander works
  copy_spare_slots          after a burst, slots the compositor does not need are
                            given back: each damaged row copied as often as before
  frame_callback_dies_with_surface
                            a surface destroyed with a frame callback pending: the
                            callback's id comes back, as from the compositor
  output_hotplug            headless mutter's second monitor off and on 5 times:
                            foot through sommelier sees the same output globals,
                            removals, releases and xdg-output names as foot
                            straight on mutter; no fd growth
  dmabuf_passthrough        linux-dmabuf through the proxy in front of
                            sml-dmabuf-compositor (no GPU compositor runs here):
                            the compositor gets the client's own file, feedback's
                            format table arrives, created buffers are released;
                            hidden on the copy path and on virtgpu
  object_churn_no_growth    one connection, 10,000 cycles of a mapped toplevel and popup,
                            shm pools and buffers, frame callbacks, a region, an inert
                            subsurface, a data source, a viewport, presentation
                            feedback, an output; both buffer paths: every delete_id
                            comes, ids are reused on both sides, fds and RSS of
                            sommelier and sommelier-host stay put
  compositor_gone           weston killed: clients fail, the proxy survives

Two modes. By default every sommelier the suite starts reaches sommelier-host
through the socket device (--peer=unix:PATH), where guest memory is shared
with the host. With SML_E2E_VIRTGPU=1 every sommelier runs as
`sommelier --virtgpu-channel` on the kernel backend, against a virtio-gpu
render node emulated by libsml-vgpu-emul.so (SML_VGPU_EMUL_LIB, preloaded
into sommelier only, with SML_VGPU_EMUL_SOCKET naming this suite's
sommelier-host; doc/vgpu-emulation.md). A VM shares no memory with its host,
so in that mode the copy path is always active and the tests say so where
their expectations differ: the default path copies too (weston never maps a
client's pool), zwp_linux_dmabuf_v1 is hidden, sommelier without a host
option picks the render node, and each client costs sommelier one more
thread (the emulation's reader, one per open of the node).

Binaries: SML_HOST_BIN, SML_GUEST_BIN, SML_PAINT_BIN, SML_CHAOS_BIN, SML_VGPU_EMUL_LIB,
SML_DMABUF_COMPOSITOR_BIN, SML_DMABUF_BIN
(meson sets them; by hand they default to the build/ directory of this
checkout). SML_E2E_ONLY=test_NAME[,test_NAME] runs only those tests.
Python standard library, PIL (python3-pil) and, for the tests on mutter's
and kwin's D-Bus interfaces, python3-dbus.
"""
import os
import sys

try:
    from PIL import Image, ImageChops
except ImportError:
    # A python3 earlier in PATH (pyenv, a venv) may lack Debian's python3-pil.
    if os.path.exists("/usr/bin/python3") and not os.environ.get("SML_E2E_REEXEC"):
        os.environ["SML_E2E_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("FAIL setup: PIL is missing (tools/deps.sh --install installs python3-pil)")
    print("0 passed, 1 failed")
    sys.exit(1)

import collections
import ctypes
import glob
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HOST_BIN = os.environ.get("SML_HOST_BIN") or os.path.join(ROOT, "build/proxy/host/sommelier-host")
GUEST_BIN = os.environ.get("SML_GUEST_BIN") or os.path.join(ROOT, "build/proxy/guest/sommelier")
PAINT_BIN = os.environ.get("SML_PAINT_BIN") or os.path.join(ROOT, "build/tests/guest/sml-paint")
CHAOS_BIN = os.environ.get("SML_CHAOS_BIN") or os.path.join(ROOT, "build/tests/guest/sml-chaos")
DMABUF_COMPOSITOR_BIN = os.environ.get("SML_DMABUF_COMPOSITOR_BIN") or os.path.join(
    ROOT, "build/tests/guest/sml-dmabuf-compositor")
DMABUF_BIN = os.environ.get("SML_DMABUF_BIN") or os.path.join(ROOT, "build/tests/guest/sml-dmabuf")
VGPU_LIB = os.environ.get("SML_VGPU_EMUL_LIB") or os.path.join(
    ROOT, "build/tests/vgpu_emul/libsml-vgpu-emul.so")
VIRTGPU = os.environ.get("SML_E2E_VIRTGPU") == "1"
MODE = "virtgpu" if VIRTGPU else "socket device"
# What sommelier logs (at info) when it opened a virtio-gpu render node.
KERNEL_DEVICE_LINE = "kernel device /dev/dri/renderD128"

WESTON_SOCKET = "host-weston"  # not wayland-N: sommelier picks those for its programs
PAINT_AREA = 256 * 256

# Globals weston offers that the proxy must not carry, and why. Anything else
# that differs between wayland-info direct and through the proxy fails.
HIDDEN_GLOBALS = {
    "zwp_linux_explicit_synchronization_v1":
        "hidden: sync_file fds cannot cross the channel",
    "weston_desktop_shell":
        "weston's private protocol: XML not packaged, never advertised unparsed",
    "weston_screenshooter":
        "weston's private protocol: XML not packaged, never advertised unparsed",
    "weston_debug_v1":
        "weston's private protocol: XML not packaged, never advertised unparsed",
}
if VIRTGPU:
    # proxy/guest/forward.c, global_allowed(): linux-dmabuf only when the
    # device shares guest memory as it is; the kernel backend does not
    # (vgpu_kernel.c sets guest_memory false).
    HIDDEN_GLOBALS["zwp_linux_dmabuf_v1"] = (
        "hidden: a VM shares no memory with the host, so a guest dma-buf cannot "
        "reach the compositor as it is")


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_us():
    # In the child before exec: if this script is killed outright (SIGKILL),
    # what it started goes too instead of lingering.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup(fd_limit):
    _die_with_us()
    if fd_limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))


class TestFailure(Exception):
    pass


class TestSkipped(Exception):
    pass


def check(cond, what):
    """Fails the test with WHAT (a string, or a function making it) unless COND."""
    if not cond:
        raise TestFailure(what() if callable(what) else what)


# ---- processes -------------------------------------------------------------

class Env:
    """The private runtime directory and every process started in it."""

    def __init__(self):
        self.runtime = tempfile.mkdtemp(prefix="sml-e2e-")
        os.chmod(self.runtime, 0o700)
        self.procs = []
        self.logs = {}  # Popen -> log path
        self.weston = None
        self.host = None
        self.host_sock = os.path.join(self.runtime, "sommelier-host.sock")
        self.serial = 0

    def env(self, **extra):
        env = dict(os.environ)
        for key in ("WAYLAND_DISPLAY", "WAYLAND_SOCKET", "SOMMELIER_PEER",
                    "SOMMELIER_DISPLAY", "SOMMELIER_SOCKET", "NOTIFY_SOCKET",
                    "SML_VGPU_EMUL_SOCKET"):
            env.pop(key, None)
        env["XDG_RUNTIME_DIR"] = self.runtime
        env["XDG_CONFIG_HOME"] = self.runtime  # no user config in tests
        env.update(extra)
        return env

    def env_for(self, argv, host_sock=None, **extra):
        """The environment for argv. In virtgpu mode sommelier (and only
        sommelier, whatever it runs inherits it) gets the emulated render
        node: the library preloaded, and this suite's sommelier-host as its
        device. Everything else (weston, the screenshooter, clients of a
        --parent) runs without it."""
        env = self.env(**extra)
        if VIRTGPU and argv and argv[0] == GUEST_BIN:
            old = env.get("LD_PRELOAD")
            env["LD_PRELOAD"] = VGPU_LIB + (":" + old if old else "")
            env["SML_VGPU_EMUL_SOCKET"] = host_sock or self.host_sock
        return env

    def path(self, name):
        return os.path.join(self.runtime, name)

    def log_path(self, tag):
        self.serial += 1
        return self.path("log-%03d-%s.txt" % (self.serial, tag))

    def spawn(self, argv, tag, display=None, stdout_path=None, cwd=None, fd_limit=None,
              host_sock=None):
        """Starts argv in its own process group, stdout and stderr to files;
        fd_limit sets its RLIMIT_NOFILE (soft and hard); host_sock is the
        sommelier-host of the emulated render node in virtgpu mode, when not
        the suite's."""
        extra = {"WAYLAND_DISPLAY": display} if display else {}
        log = self.log_path(tag)
        err = open(log, "wb")
        out = open(stdout_path, "wb") if stdout_path else err
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=self.env_for(argv, host_sock, **extra),
                                 cwd=cwd or self.runtime,
                                 start_new_session=True,
                                 preexec_fn=lambda: _child_setup(fd_limit))
        finally:
            err.close()
            if out is not err:
                out.close()
        self.procs.append(p)
        self.logs[p] = log
        return p

    def log_tail(self, p, lines=5):
        try:
            with open(self.logs[p], "r", errors="replace") as f:
                text = f.read().strip().splitlines()
        except (OSError, KeyError):
            return ""
        return " | ".join(text[-lines:])

    def killpg(self, p, sig):
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, p, timeout=3.0):
        """SIGTERM to the group, SIGKILL after timeout; returns the status."""
        if p.poll() is None:
            self.killpg(p, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.killpg(p, signal.SIGKILL)
        return p.wait()

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                self.killpg(p, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for p in self.procs:
            try:
                p.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            # The group may outlive its leader (a program sommelier started).
            self.killpg(p, signal.SIGKILL)
            try:
                p.wait(1)
            except subprocess.TimeoutExpired:
                pass
        if os.environ.get("SML_E2E_KEEP"):
            print("kept %s" % self.runtime)
        else:
            shutil.rmtree(self.runtime, ignore_errors=True)

    # -- the host side --

    def start_weston(self):
        self.weston = self.spawn(
            ["weston", "--backend=headless-backend.so", "--use-pixman", "--debug",
             "--socket=" + WESTON_SOCKET, "--idle-time=0", "--no-config",
             "--width=640", "--height=480"], "weston")
        wait_for_socket(self.path(WESTON_SOCKET), 20, self.weston, "weston")
        # The desktop shell client draws the background and the panel a
        # little later: wait for two equal screenshots that are not blank.
        deadline = time.monotonic() + 15
        previous = None
        while True:
            try:
                shot = screenshot(self)
                blank = all(lo == hi for lo, hi in shot.getextrema())
                if not blank and previous is not None and \
                        ImageChops.difference(shot, previous).getbbox() is None:
                    return
                previous = None if blank else shot
            except (TestFailure, subprocess.TimeoutExpired):
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TestFailure("weston's desktop never settled")
            time.sleep(0.2)

    def start_host(self):
        # At info, it logs each device connection (host_connections).
        self.host = self.spawn([HOST_BIN, "--socket=" + self.host_sock, "--log-level=info",
                                "--display=" + WESTON_SOCKET], "host")
        wait_for_socket(self.host_sock, 10, self.host, "sommelier-host")
        # wait_for_socket's probe is a connection too: let it be logged
        # before anyone counts.
        deadline = time.monotonic() + 5
        while self.host_connections() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)

    def host_connections(self):
        """How many device connections sommelier-host has accepted."""
        return sum(1 for line in read_text(self.logs[self.host]).splitlines()
                   if re.search(r": connected, from ", line))

    def expect_one_connection(self, before, what):
        """A program run through sommelier is one client: one connection to
        sommelier-host. In virtgpu mode the program inherits the preload
        from sommelier; a second connection would be the program opening the
        emulated render node itself."""
        got = self.host_connections() - before
        check(got == 1, "%s through sommelier: sommelier-host accepted %d device connections, "
              "want 1 (one per client%s)" % (what, got, "; did the program open the emulated "
                                             "render node itself?" if VIRTGPU else ""))

    def host_option(self, host_sock=None):
        """How a sommelier reaches the sommelier-host at host_sock (the
        suite's by default), by mode; in virtgpu mode, spawn's host_sock
        names the device."""
        return "--virtgpu-channel" if VIRTGPU else "--peer=unix:" + (host_sock or self.host_sock)

    def start_parent(self, name, *options, fd_limit=None):
        p = self.spawn([GUEST_BIN, self.host_option(), *options,
                        "--parent", "--socket=" + name], "parent-" + name, fd_limit=fd_limit)
        wait_for_socket(self.path(name), 10, p, "sommelier --parent")
        return p

    def sommelier_argv(self, *options):
        return [GUEST_BIN, self.host_option(), *options]


def status_text(status):
    if status is not None and status < 0:
        try:
            return "signal %s" % signal.Signals(-status).name
        except ValueError:
            return "signal %d" % -status
    return "status %s" % status


def host_death(env):
    """None while sommelier-host runs, else how it ended and its last words."""
    if env.host is None or env.host.poll() is None:
        return None
    return "sommelier-host died during the test (%s): %s" % (
        status_text(env.host.returncode), env.log_tail(env.host, 2))


def wait_for_socket(path, timeout, proc, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise TestFailure("%s exited with %s before creating %s" % (what, proc.returncode, path))
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.02)
    raise TestFailure("%s did not create %s in %ss" % (what, path, timeout))


def wait_exit(p, timeout):
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        return None


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def status_field(pid, key):
    """An integer field of /proc/PID/status (-1 if missing)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def thread_count(pid):
    return status_field(pid, "Threads")


def rss_kib(pid):
    return status_field(pid, "VmRSS")


def shared_files(pid):
    """{(device, inode): path} of the memfds PID has mapped."""
    found = {}
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and fields[5].startswith("/memfd:"):
                found[(fields[3], fields[4])] = fields[5].strip()
    return found


def client_pool_in_weston(env, sommelier_proc):
    """The memfds that sommelier's program (sml-paint) has mapped, and those
    of them weston has mapped too: the pass-through path hands weston the
    client's own pool, the copy path must not."""
    kids = children_of(sommelier_proc.pid)
    check(len(kids) == 1, "sommelier has %d children, not one sml-paint" % len(kids))
    client = shared_files(kids[0])
    check(client, "sml-paint maps no memfd (no shm pool?)")
    weston = shared_files(env.weston.pid)
    return client, sorted(path for key, path in weston.items() if key in client)


def read_text(path):
    try:
        with open(path, "r", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_until(predicate, timeout, interval=0.05):
    """Whether predicate() became true within timeout seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_for_text(path, needle, timeout, proc=None):
    """Whether needle shows in the file within timeout seconds (or before
    proc, if given, ends)."""
    ended = lambda: proc is not None and proc.poll() is not None  # noqa: E731
    wait_until(lambda: needle in read_text(path) or ended(), timeout, 0.02)
    return needle in read_text(path)


# ---- screenshots -----------------------------------------------------------

def screenshot(env):
    """A screenshot of weston, taken directly (never through the proxy)."""
    d = tempfile.mkdtemp(prefix="shot-", dir=env.runtime)
    try:
        r = subprocess.run(["weston-screenshooter"], cwd=d, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env.env(WAYLAND_DISPLAY=WESTON_SOCKET), timeout=15)
        files = glob.glob(os.path.join(d, "wayland-screenshot-*.png"))
        if r.returncode != 0 or len(files) != 1:
            raise TestFailure("weston-screenshooter: status %d, %d files: %s" %
                              (r.returncode, len(files), r.stdout.decode(errors="replace")))
        with Image.open(files[0]) as im:
            return im.convert("RGB")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def colour_mask(im, rgb):
    """A mode-L image: 255 where im has exactly rgb."""
    bands = [band.point(lambda v, want=want: 255 if v == want else 0)
             for band, want in zip(im.split(), rgb)]
    return ImageChops.multiply(ImageChops.multiply(bands[0], bands[1]), bands[2])


def count_set(mask):
    return mask.histogram()[255]


def colour_on_screen(im, argb):
    """(pixels of the exact colour inside their bounding box, bbox)."""
    rgb = ((argb >> 16) & 0xff, (argb >> 8) & 0xff, argb & 0xff)
    mask = colour_mask(im, rgb)
    bbox = mask.getbbox()
    if not bbox:
        return 0, None
    return count_set(mask.crop(bbox)), bbox


def window_from_diff(before, after, min_run):
    """The bounding box of the rows and columns where at least min_run pixels
    changed (a window, not a clock that ticked in the panel)."""
    diff = ImageChops.difference(before, after).convert("L").point(lambda v: 255 if v else 0)
    w, h = diff.size
    data = diff.tobytes()
    rows = [y for y in range(h) if data[y * w:(y + 1) * w].count(255) >= min_run]
    if not rows:
        return None, 0
    y0, y1 = rows[0], rows[-1] + 1
    band = data[y0 * w:y1 * w]
    cols = [x for x in range(w) if band[x::w].count(255) >= min_run]
    if not cols:
        return None, 0
    bbox = (cols[0], y0, cols[-1] + 1, y1)
    return bbox, count_set(diff.crop(bbox))


# ---- a raw Wayland client ----------------------------------------------------

def wl_string(s):
    b = s.encode() + b"\0"
    return struct.pack("=I", len(b)) + b + b"\0" * (-len(b) % 4)


def wl_parse_string(payload, off):
    (n,) = struct.unpack_from("=I", payload, off)
    s = payload[off + 4:off + 4 + n - 1].decode(errors="replace") if n else None
    return s, off + 4 + n + (-n % 4)


class RawClient:
    """Speaks the Wayland wire format over a Unix socket."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.eof = False
        self.send_failed = False

    def close(self):
        self.sock.close()

    def send(self, obj, opcode, payload=b"", fds=()):
        size = 8 + len(payload)
        msg = struct.pack("=II", obj, (size << 16) | opcode) + payload
        try:
            if fds:
                socket.send_fds(self.sock, [msg], list(fds))
            else:
                self.sock.sendall(msg)
        except (BrokenPipeError, ConnectionResetError):
            self.send_failed = True  # the peer hung up: what it said is still readable

    def event(self):
        """The next (object, opcode, payload), or None at EOF.
        socket.timeout when nothing comes."""
        while True:
            if len(self.buf) >= 8:
                obj, word = struct.unpack_from("=II", self.buf)
                size = word >> 16
                if size < 8:
                    raise TestFailure("malformed event header %08x %08x" % (obj, word))
                if len(self.buf) >= size:
                    payload = self.buf[8:size]
                    self.buf = self.buf[size:]
                    return obj, word & 0xffff, payload
            if self.eof:
                return None
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 8)
            except ConnectionResetError:
                data, fds = b"", []
            for fd in fds:
                os.close(fd)
            if not data:
                self.eof = True
            self.buf += data

    def roundtrip(self, callback_id, on_event=None):
        """wl_display.sync(callback_id), then events until its done.
        Returns ('done', None), ('error', (obj, code, msg)) or ('eof', None)."""
        self.send(1, 0, struct.pack("=I", callback_id))
        return self.until_done(callback_id, on_event)

    def until_done(self, callback_id, on_event=None):
        while True:
            ev = self.event()
            if ev is None:
                return "eof", None
            obj, opcode, payload = ev
            if obj == 1 and opcode == 0:
                err_obj, code = struct.unpack_from("=II", payload)
                msg, _ = wl_parse_string(payload, 8)
                return "error", (err_obj, code, msg)
            if obj == callback_id and opcode == 0:
                return "done", None
            if on_event:
                on_event(obj, opcode, payload)


def registry_of(client, registry_id=2, callback_id=3):
    """get_registry + sync: {interface: (name, version)}; status of the sync."""
    globals_ = {}

    def on_event(obj, opcode, payload):
        if obj == registry_id and opcode == 0:
            (name,) = struct.unpack_from("=I", payload)
            iface, off = wl_parse_string(payload, 4)
            (version,) = struct.unpack_from("=I", payload, off)
            globals_[iface] = (name, version)

    client.send(1, 1, struct.pack("=I", registry_id))
    status, detail = client.roundtrip(callback_id, on_event)
    return globals_, status, detail


# ---- the tests -------------------------------------------------------------

def parse_wayland_info(text):
    found = collections.Counter()
    for m in re.finditer(r"interface: '([^']+)',\s*version:\s*(\d+)", text):
        found[(m.group(1), int(m.group(2)))] += 1
    return found


def test_globals_match(env):
    direct = subprocess.run(["wayland-info"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=env.env(WAYLAND_DISPLAY=WESTON_SOCKET),
                            timeout=20)
    check(direct.returncode == 0, "wayland-info direct: status %d" % direct.returncode)
    argv = env.sommelier_argv("wayland-info")
    connections = env.host_connections()
    proxied = subprocess.run(argv, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             env=env.env_for(argv), timeout=20, start_new_session=True)
    check(proxied.returncode == 0, "wayland-info through sommelier: status %d: %s" %
          (proxied.returncode, proxied.stdout.decode(errors="replace")[-300:]))
    env.expect_one_connection(connections, "wayland-info")
    d = parse_wayland_info(direct.stdout.decode(errors="replace"))
    p = parse_wayland_info(proxied.stdout.decode(errors="replace"))
    check(d, "wayland-info direct listed no globals")
    hidden = sorted({iface for iface, _ in d if iface in HIDDEN_GLOBALS})
    expected = collections.Counter({k: n for k, n in d.items() if k[0] not in HIDDEN_GLOBALS})
    missing = sorted((expected - p).elements())
    extra = sorted((p - expected).elements())
    problems = []
    for iface, version in missing:
        other = [v for (i, v) in p if i == iface]
        problems.append("%s v%d %s" % (iface, version,
                                       "is v%s through the proxy" % ",".join(map(str, other))
                                       if other else "missing"))
    for iface, version in extra:
        if not any(i == iface for i, _ in missing):
            problems.append("%s v%d extra%s" % (iface, version,
                                                " (" + HIDDEN_GLOBALS[iface] + ")"
                                                if iface in HIDDEN_GLOBALS else ""))
    check(not problems, "globals differ: " + "; ".join(problems))
    dmabuf = ""
    if VIRTGPU and "zwp_linux_dmabuf_v1" not in hidden:
        # Nothing to hide: weston's pixman renderer imports no dma-bufs, so
        # it offers no linux-dmabuf (the check above would catch it through
        # the proxy all the same).
        dmabuf = "; zwp_linux_dmabuf_v1: weston offers none to hide (pixman renderer)"
    return "direct %d globals, proxied %d, hidden as expected: %s%s" % (
        sum(d.values()), sum(p.values()),
        ", ".join("%s (%s)" % (h, HIDDEN_GLOBALS[h]) for h in hidden) or "none", dmabuf)


def run_wayland_info(env, argv, extra_env=None):
    """wayland-info's globals, and everything printed (sommelier's log too)."""
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=extra_env or env.env_for(argv),
                         timeout=20, start_new_session=True)
    text = out.stdout.decode(errors="replace")
    check(out.returncode == 0, "%s: status %d: %s" % (" ".join(argv[:-1]), out.returncode,
                                                     text[-300:]))
    return parse_wayland_info(text), text


def test_direct_and_default_peer(env):
    """`sommelier PROGRAM` with no host option finds the host side on its own:
    a virtio-gpu render node with the Wayland channel first (in virtgpu mode
    the emulated one is there, and must win over the default socket, which
    exists too), else sommelier-host's default socket. `--display=NAME` talks
    to the compositor itself and never opens the node, in either mode. All
    show the same globals as the channel does, but for what only a shared
    memory device offers (zwp_linux_dmabuf_v1, when weston has it)."""
    via, _ = run_wayland_info(env, env.sommelier_argv("wayland-info"))
    default, default_log = run_wayland_info(env, [GUEST_BIN, "--log-level=info",
                                                  "wayland-info"])
    direct, direct_log = run_wayland_info(env, [GUEST_BIN, "--log-level=info",
                                                "--display=" + WESTON_SOCKET, "wayland-info"])
    option = env.host_option().split("=")[0]
    picked = "the render node" if KERNEL_DEVICE_LINE in default_log else "the default socket"
    if VIRTGPU:
        check(KERNEL_DEVICE_LINE in default_log,
              "no host option: sommelier did not pick the virtio-gpu render node (the "
              "emulated %s) but the default socket: %s" %
              (KERNEL_DEVICE_LINE.split()[-1], default_log[-300:]))
    check(KERNEL_DEVICE_LINE not in direct_log,
          "--display opened the render node (direct mode must not use it): " +
          direct_log[-300:])
    check(default == via, "no host option (%s): globals differ from %s: %s vs %s" %
          (picked, option, sorted(default.elements()), sorted(via.elements())))
    # Direct mode shares memory with the compositor in either mode: it sees
    # what a channel that cannot carry guest dma-bufs hides.
    only_shared = collections.Counter({k: n for k, n in direct.items()
                                       if VIRTGPU and k[0] == "zwp_linux_dmabuf_v1"})
    check(direct == via + only_shared, "--display: globals differ from %s: %s vs %s" %
          (option, sorted(direct.elements()), sorted(via.elements())))
    return "%d globals through %s (no host option), --display and %s alike%s" % (
        sum(via.values()), picked, option,
        "; --display also zwp_linux_dmabuf_v1" if only_shared else "")


def test_simple_shm_runs(env):
    before = screenshot(env)
    connections = env.host_connections()
    p = env.spawn(env.sommelier_argv("weston-simple-shm"), "simple-shm")
    start = time.monotonic()
    kid = None
    while time.monotonic() - start < 5 and not kid:
        check(p.poll() is None, "sommelier exited with %s at once: %s" %
              (p.returncode, env.log_tail(p)))
        kids = children_of(p.pid)
        kid = kids[0] if kids else None
        time.sleep(0.05)
    check(kid, "sommelier did not start weston-simple-shm")
    time.sleep(max(0.0, 1.5 - (time.monotonic() - start)))
    after = screenshot(env)
    time.sleep(max(0.0, 2.0 - (time.monotonic() - start)))
    check(p.poll() is None, "sommelier (and weston-simple-shm) ended before 2 s: status %s: %s" %
          (p.returncode, env.log_tail(p)))
    os.kill(kid, signal.SIGINT)  # the client only: it exits 0, then sommelier with it
    status = wait_exit(p, 5)
    log = read_text(env.logs[p]).strip()
    check(status is not None, "sommelier still running 5 s after weston-simple-shm got SIGINT")
    bbox, changed = window_from_diff(before, after, 125)
    check(status == 0, "weston-simple-shm through sommelier: status %s: %s" %
          (status, env.log_tail(p)))
    env.expect_one_connection(connections, "weston-simple-shm")
    noise = [l for l in log.splitlines() if l.strip() and "simple-shm exiting" not in l]
    check(not noise, "errors printed: %s" % " | ".join(noise[-5:]))
    check(bbox is not None, "no window on the screenshot")
    w, h = bbox[2] - bbox[0], bbox[3] - bbox[1]
    # weston-simple-shm's window is 250x250.
    check(240 <= w <= 260 and 240 <= h <= 260 and changed >= 0.9 * w * h,
          "the screenshot changed in %dx%d at %s (%d pixels), not a 250x250 window" %
          (w, h, bbox[:2], changed))
    return "ran %.1f s, status 0, window %dx%d at (%d,%d), %d pixels differ from the desktop" % (
        time.monotonic() - start, w, h, bbox[0], bbox[1], changed)


def paint_and_check(env, argb, options, paint_args, wait_for):
    """Runs sml-paint through sommelier OPTIONS, screenshots once WAIT_FOR is
    printed; returns (pixels, bbox, sommelier Popen, weston maps of its pool)."""
    out = env.log_path("paint-out")
    # sml-paint flushes its "painted" line but not the "frames" one: with
    # stdout in a file that would appear only at exit, when the window is
    # gone. stdbuf makes its stdout line-buffered.
    stdbuf = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
    connections = env.host_connections()
    p = env.spawn(env.sommelier_argv(*options, *stdbuf, PAINT_BIN, "--color", "%08x" % argb,
                                     "--size", "256x256", *paint_args),
                  "paint", stdout_path=out)
    try:
        check(wait_for_text(out, wait_for, 15, p),
              "sml-paint did not print %r (status %s): %s %s" %
              (wait_for, p.poll(), read_text(out).strip(), env.log_tail(p)))
        time.sleep(0.2)  # let weston repaint the output
        check(p.poll() is None, "sml-paint exited before the screenshot: status %s: %s %s" %
              (p.returncode, read_text(out).strip(), env.log_tail(p)))
        im = screenshot(env)
        _, in_weston = client_pool_in_weston(env, p)
        pixels, bbox = colour_on_screen(im, argb)
    finally:
        env.stop(p)
    env.expect_one_connection(connections, "sml-paint")
    return pixels, bbox, p, in_weston


def describe(pixels, bbox):
    if not bbox:
        return "0 pixels of the colour"
    return "%d/%d pixels (%.1f%%), bbox %dx%d at (%d,%d)" % (
        pixels, PAINT_AREA, 100.0 * pixels / PAINT_AREA, bbox[2] - bbox[0], bbox[3] - bbox[1],
        bbox[0], bbox[1])


def check_colour(pixels, bbox):
    check(bbox is not None and bbox[2] - bbox[0] <= 256 and bbox[3] - bbox[1] <= 256 and
          pixels >= 0.95 * PAINT_AREA, "colour not on screen: " + describe(pixels, bbox))


def test_pixels_passthrough(env):
    """The default path: the socket device shares the client's pool with
    weston; a VM cannot, so in virtgpu mode the copy path must take over."""
    argb = 0xff3366cc
    pixels, bbox, _, maps = paint_and_check(env, argb, [], ["--seconds", "5"], "painted")
    check_colour(pixels, bbox)
    if VIRTGPU:
        check(not maps, lambda: "pixels correct (%s) but weston maps the client's own pool "
              "(%s) through a virtio-gpu device: a VM shares no memory, the copy path must "
              "take over" % (describe(pixels, bbox), maps[0]))
        return "%s; weston does not map the client's pool (the copy path took over)" % (
            describe(pixels, bbox))
    check(maps, "pixels correct (%s) but weston does not map the client's pool: the "
          "default path did not share memory" % describe(pixels, bbox))
    return "%s; weston maps the client's own pool (%s)" % (describe(pixels, bbox), maps[0])


def check_copied(maps):
    # In the copy path the pixels reach weston in host memory: weston must
    # not be reading the client's own memfd.
    check(not maps, lambda: "--shm-copy did not copy: weston maps the client's own pool memory "
          "(%s), so the pixels came through the pass-through path" % maps[0])


def test_pixels_copy(env):
    argb = 0xff33cc66
    pixels, bbox, _, maps = paint_and_check(env, argb, ["--shm-copy"], ["--seconds", "5"],
                                            "painted")
    result = describe(pixels, bbox)
    check_colour(pixels, bbox)
    try:
        check_copied(maps)
    except TestFailure as e:
        raise TestFailure("pixels correct (%s) but %s" % (result, e))
    return result + "; weston does not map the client's pool"


def test_pixels_copy_repaint(env):
    argb = 0xffcc6633
    pixels, bbox, _, maps = paint_and_check(
        env, argb, ["--shm-copy"], ["--frames", "3", "--damage", "50", "--seconds", "5"],
        "frames 3")
    result = describe(pixels, bbox)
    check_colour(pixels, bbox)
    try:
        check_copied(maps)
    except TestFailure as e:
        raise TestFailure("pixels correct (%s) but %s" % (result, e))
    return result + " after 3 frames; weston does not map the client's pool"


def history_pixels(env, options, scenario="--history"):
    """sml-paint SCENARIO through sommelier OPTIONS: pixel counts of its
    three colours on screen, and whether weston maps the client's pool."""
    out = env.log_path("history-out")
    connections = env.host_connections()
    p = env.spawn(env.sommelier_argv(*options, PAINT_BIN, scenario, "--seconds", "5"),
                  "history", stdout_path=out)
    try:
        check(wait_for_text(out, "painted", 15, p),
              "sml-paint --history did not finish: %s %s" % (read_text(out), env.log_tail(p)))
        time.sleep(0.2)
        im = screenshot(env)
        _, maps = client_pool_in_weston(env, p)
        counts = [colour_on_screen(im, argb)[0] for argb in (0xff00ff00, 0xff0000ff, 0xffff0000)]
    finally:
        env.stop(p)
    env.expect_one_connection(connections, "sml-paint --history")
    return counts, maps


def test_pixels_copy_history(env):
    """Two buffers, each frame damaged only where it differs from the frame
    before (as clients that track buffer age do): a copy path that copies
    only each commit's damage leaves stale rows in the buffer shown last.
    At buffer scale 2 the 128x128 window must be 50 rows green, 50 blue and
    28 red, the same as through shared memory."""
    want = [128 * 50, 128 * 50, 128 * 28]
    # The default path shares memory on the socket device; on virtgpu it is a
    # second run of the copy path, without --shm-copy.
    default_path = "the default path (copy: virtgpu)" if VIRTGPU else "shared memory"
    shared, maps = history_pixels(env, [])
    check(shared == want, "%s: green/blue/red %s, want %s%s" %
          (default_path, shared, want, " (stale host rows)" if VIRTGPU else ""))
    if VIRTGPU:
        check(not maps, lambda: "%s: weston maps the client's own pool (%s)" %
              (default_path, maps[0]))
    copied, maps = history_pixels(env, ["--shm-copy"])
    check(copied == want, "--shm-copy: green/blue/red %s, want %s (stale host rows)" %
          (copied, want))
    check_copied(maps)
    return "green/blue/red pixels %s with %s and with --shm-copy" % (copied, default_path)


def test_pixels_copy_catch_up(env):
    """The copy path brings a released buffer's host copy up to date from
    the frame on screen while the client draws, so the commit itself copies
    only its damage. sml-paint --history-lazy leaves that catching up to the
    proxy: its A keeps stale red rows where B drew green. Copied, the window
    must show green there (what was on screen), proving the catch-up ran and
    copied from the right buffer; sharing memory, weston reads A's red."""
    want = [128 * 50, 128 * 50, 128 * 28]
    copied, maps = history_pixels(env, ["--shm-copy"], "--history-lazy")
    check(copied == want, "--shm-copy: green/blue/red %s, want %s (no catch-up: red rows)" %
          (copied, want))
    check_copied(maps)
    if VIRTGPU:
        return "green/blue/red pixels %s with --shm-copy" % (copied,)
    shared, _ = history_pixels(env, [], "--history-lazy")
    read_a = [0, 128 * 50, 128 * 78]
    check(shared == read_a, "shared memory: green/blue/red %s, want %s (A as it is)" %
          (shared, read_a))
    return "green/blue/red pixels %s copied, %s shared (A's own rows)" % (copied, shared)


def copy_stats(text, spares=False):
    """sommelier's copy-path summary of a client (logged at info when the
    client goes): (commits, KiB copied at commit, KiB ahead of commits,
    most slots on one surface) and, with spares, the spare slots given
    back; or None."""
    m = re.search(r"copy path: (\d+) commits, (\d+) KiB copied at commit, (\d+) KiB ahead "
                  r"of commits, at most (\d+) slots on a surface, (\d+) spare", text)
    return tuple(int(g) for g in m.groups()[:5 if spares else 4]) if m else None


def history_copies(env, host_sock, what):
    """sml-paint --history through sommelier --shm-copy on the sommelier-host
    at host_sock: sommelier's copy statistics."""
    argv = [GUEST_BIN, env.host_option(host_sock),
            "--shm-copy", "--log-level=info", PAINT_BIN, "--history"]
    p = env.spawn(argv, "slots", host_sock=host_sock)
    try:
        status = p.wait(20)
    except subprocess.TimeoutExpired:
        status = "still running after 20 s"
    log = read_text(env.logs[p])
    check(status == 0, lambda: "%s: sml-paint --history through sommelier: %s: %s" %
          (what, status_text(status) if isinstance(status, int) else status,
           env.log_tail(p)))
    stats = copy_stats(log)
    check(stats, lambda: "%s: sommelier logged no copy-path summary: %s" % (what, env.log_tail(p)))
    return stats


MUTTER_SOCKET = "host-mutter"
KWIN_SOCKET = "host-kwin"


def start_other_host(env, argv, name, what):
    """Another compositor (argv makes its socket `name` in the runtime
    directory) and a sommelier-host of its own in front of it: the
    processes, and the host's socket."""
    compositor = env.spawn(argv, name)
    wait_for_socket(env.path(name), 30, compositor, what)
    sock = env.path("sommelier-host-%s.sock" % name)
    host = env.spawn([HOST_BIN, "--socket=" + sock, "--display=" + name], "host-" + name)
    wait_for_socket(sock, 10, host, "sommelier-host for " + what)
    return [compositor, host], sock


def start_mutter_host(env, monitors=1):
    """GNOME's compositor, headless, with `monitors` virtual monitors of
    320x240: it takes an shm buffer's pixels at commit and releases the
    buffer at once. Its session bus's address goes to mutter-bus (for
    DisplayConfig), and a sommelier-host sits in front of it: (processes,
    host socket, display name)."""
    env.serial += 1
    name = "%s-%d" % (MUTTER_SOCKET, env.serial)  # not an earlier mutter's socket
    script = ('echo "$DBUS_SESSION_BUS_ADDRESS" > mutter-bus && exec mutter --wayland '
              '--headless --no-x11 %s --wayland-display=%s' %
              (" ".join(["--virtual-monitor 320x240"] * monitors), name))
    procs, sock = start_other_host(env, ["dbus-run-session", "--", "sh", "-c", script],
                                   name, "headless mutter")
    return procs, sock, name


def start_kwin_host(env):
    """KDE's compositor, on a virtual framebuffer, its session bus's address
    in kwin-bus (for screenshots, which it then allows anyone to take).
    /usr/bin/kwin_wayland carries a file capability (cap_sys_resource) that
    a sandbox without it refuses to exec; a copy, which has none, runs the
    same."""
    kwin = env.path("kwin_wayland")
    if not os.path.exists(kwin):  # an earlier test's kwin may still be going away
        shutil.copy("/usr/bin/kwin_wayland", kwin)
    env.serial += 1
    name = "%s-%d" % (KWIN_SOCKET, env.serial)  # not an earlier kwin's socket
    script = ('echo "$DBUS_SESSION_BUS_ADDRESS" > kwin-bus && '
              'exec env KWIN_SCREENSHOT_NO_PERMISSION_CHECKS=1 "$0" --virtual '
              '--socket=%s --width=640 --height=480' % name)
    procs, sock = start_other_host(env, ["dbus-run-session", "--", "sh", "-c", script, kwin],
                                   name, "kwin_wayland --virtual")
    return procs, sock, name


def kwin_screenshot(env):
    """kwin's whole workspace (org.kde.KWin.ScreenShot2.CaptureWorkspace),
    as an RGB image."""
    import dbus  # python3-dbus: only this test needs it
    with open(env.path("kwin-bus")) as f:
        bus = dbus.bus.BusConnection(f.read().strip())
    try:
        shooter = dbus.Interface(bus.get_object("org.kde.KWin", "/org/kde/KWin/ScreenShot2"),
                                 "org.kde.KWin.ScreenShot2")
        r, w = os.pipe()
        try:
            meta = shooter.CaptureWorkspace({"native-resolution": True}, dbus.types.UnixFd(w))
        finally:
            os.close(w)
        with os.fdopen(r, "rb") as pipe:
            data = pipe.read()
    finally:
        bus.close()
    width, height, stride = int(meta["width"]), int(meta["height"]), int(meta["stride"])
    # A QImage in ARGB32 order: B, G, R, A bytes in memory.
    im = Image.frombuffer("RGBA", (width, height), data, "raw", "BGRA", stride, 1)
    return im.convert("RGB")


def on_weston_and_mutter(env, measure):
    """measure(env, host_sock, name) against the suite's weston, then a
    headless mutter of its own: {name: result}."""
    got = {"weston": measure(env, env.host_sock, "weston")}
    procs, sock, _ = start_mutter_host(env)
    try:
        got["mutter"] = measure(env, sock, "mutter")
    finally:
        for p in reversed(procs):
            env.stop(p)
    return got


def test_copy_slots(env):
    """The copy path keeps host memory per surface, not per client buffer.
    sml-paint --history commits two 256x256 buffers (1 KiB a row): A whole,
    B rows 0-99, A rows 100-199, A again without damage.
    - mutter takes the pixels at commit and releases the buffer at once: one
      slot takes every commit, and each damaged row is copied once: 256 +
      100 + 100 + 0 = 456 KiB. (With host memory per client buffer, the
      design before slots, 812 KiB were copied in all: every damaged row
      went into the host copies of both buffers.)
    - weston holds the buffer on screen: two slots. B's commit fills the new
      one (256); once weston releases the other it catches up with B's rows
      0-99 from the buffer on screen (100, ahead of the commit); A's commit
      then copies its own 100 rows; the last commit, 0. 612 at commit, 200
      ahead."""
    want = {"weston": (4, 612, 200, 2), "mutter": (4, 456, 0, 1)}
    got = on_weston_and_mutter(env, history_copies)
    text = "; ".join("%s: %d commits, %d KiB copied at commit, %d KiB ahead, %d slot(s)" %
                     ((name,) + got[name]) for name in ("weston", "mutter"))
    check(got == want, lambda: "%s; want %s" % (text, want))
    return text


def test_fifty_clients_isolation(env):
    name = "sml-load"
    parent = env.start_parent(name)
    n = 50
    # wait_for_socket's probe was a client too: its channel (on virtgpu, its
    # open of the node and the reader thread) may still be going away.
    deadline = time.monotonic() + 3
    while thread_count(parent.pid) != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    threads_idle = thread_count(parent.pid)
    fds_idle = fd_count(parent.pid)
    clients, outs = [], []
    start = time.monotonic()
    for i in range(n):
        out = env.log_path("load-out")
        outs.append(out)
        clients.append(env.spawn([PAINT_BIN, "--size", "32x32", "--seconds", "20",
                                  "--color", "ff%06x" % (0x102030 + i)],
                                 "load", display=name, stdout_path=out))
    deadline = start + 30
    not_painted = list(range(n))
    while not_painted and time.monotonic() < deadline:
        not_painted = [i for i in not_painted if "painted" not in read_text(outs[i])]
        if any(clients[i].poll() is not None for i in not_painted):
            break
        time.sleep(0.05)
    painted_in = time.monotonic() - start
    check(not not_painted, lambda: "%d of %d clients did not paint (first: status %s: %s)" %
          (len(not_painted), n, clients[not_painted[0]].poll(),
           env.log_tail(clients[not_painted[0]])))
    # One channel per client: on virtgpu each is its own open of the render
    # node, which the emulation serves with a reader thread of its own.
    threads_busy = thread_count(parent.pid)
    fds_busy = fd_count(parent.pid)
    per_client = "sommelier threads %d->%d, fds %d->%d with %d clients" % (
        threads_idle, threads_busy, fds_idle, fds_busy, n)
    want_threads = threads_idle + (n if VIRTGPU else 0)
    check(threads_busy == want_threads, "%s: want %d threads (%s)" % (
        per_client, want_threads, "one reader per open of the node" if VIRTGPU
        else "sommelier is single-threaded"))

    # One client dies hard, another talks garbage.
    victim = clients[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    garbage = RawClient(env.path(name))
    blob = random.Random(20240601).randbytes(8192)
    try:
        garbage.sock.sendall(blob)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        status, detail = garbage.until_done(0xffffffff)
        garbage_result = "wl_display.error %s, then EOF" % (detail[:2],) if detail else status
        garbage_cut = status in ("eof", "error")
    except socket.timeout:
        garbage_result, garbage_cut = "still connected after 5 s", False
    garbage.close()
    time.sleep(0.5)
    check(parent.poll() is None, "sommelier --parent died: status %s: %s" %
          (parent.returncode, env.log_tail(parent)))
    check(env.host.poll() is None, "sommelier-host died: %s" % env.log_tail(env.host))
    dead = [i for i in range(1, n) if clients[i].poll() is not None]
    check(not dead, lambda: "%d clients died after one was killed and one sent garbage "
          "(first: #%d status %s: %s)" % (len(dead), dead[0] if dead else -1,
                                          clients[dead[0]].returncode if dead else None,
                                          env.log_tail(clients[dead[0]])))
    # A new client still connects and paints.
    out = env.log_path("load-new-out")
    newcomer = env.spawn([PAINT_BIN, "--size", "32x32", "--seconds", "0", "--color", "ff0a0b0c"],
                         "load-new", display=name, stdout_path=out)
    status = wait_exit(newcomer, 15)
    check(status == 0 and "painted" in read_text(out),
          "a new client after the kill and the garbage: status %s: %s" %
          (status, env.log_tail(newcomer)))
    # Everyone else lasts their 20 s and exits cleanly.
    alive_after = n - 1 - len(dead)
    statuses = [wait_exit(c, max(1.0, start + 40 - time.monotonic())) for c in clients[1:]]
    bad = [(i + 1, s) for i, s in enumerate(statuses) if s != 0]
    check(not bad, "%d clients did not end their 20 s with status 0: %s" % (len(bad), bad[:5]))
    check(parent.poll() is None, "sommelier --parent died: %s" % env.log_tail(parent))
    check(garbage_cut, "the garbage client was not disconnected: " + garbage_result)
    env.stop(parent)
    return ("%d clients painted in %.1f s (%s); after SIGKILL of one and %d garbage bytes "
            "(garbage client: %s): %d/%d alive, new client painted, %d/%d exited 0 after 20 s" %
            (n, painted_in, per_client, len(blob), garbage_result, alive_after, n - 1,
             statuses.count(0), n - 1))


def raw_cycle(path):
    c = RawClient(path)
    try:
        globals_, status, detail = registry_of(c)  # get_registry + sync
        if status != "done" or "wl_compositor" not in globals_:
            raise TestFailure("connect/disconnect cycle: %s %s, %d globals" %
                              (status, detail, len(globals_)))
    finally:
        c.close()


def fds_threads(pid):
    return fd_count(pid), thread_count(pid)


def settle(pids, want, timeout):
    """{pid: (fds, threads)} once it equals WANT, or when TIMEOUT is over."""
    now = {}

    def reached():
        now.update((pid, fds_threads(pid)) for pid in pids)
        return now == want

    wait_until(reached, timeout)
    return now


def test_no_growth_500_cycles(env):
    """500 connect/registry/sync/disconnect cycles on one --parent: the fds
    and threads of sommelier and sommelier-host come back to where they
    were, and RSS grows by at most 2 MiB. On virtgpu each connection is an
    open of the render node: in sommelier's process the emulation adds a
    pipe, a socket and a reader thread per open, all of which must go when
    the client does."""
    name = "sml-cycles"
    parent = env.start_parent(name)
    path = env.path(name)
    pids = {"sommelier": parent.pid, "sommelier-host": env.host.pid}
    for _ in range(20):  # warm up allocators and caches
        raw_cycle(path)
    time.sleep(0.3)
    state0 = {pid: fds_threads(pid) for pid in pids.values()}
    state0 = settle(pids.values(), state0, 0.5)
    # What one connected client costs, while it is connected.
    c = RawClient(path)
    try:
        _, status, _ = registry_of(c)
        check(status == "done", "a held client's registry round trip: %s" % status)
        held = fds_threads(parent.pid)
    finally:
        c.close()
    settle(pids.values(), state0, 3.0)
    rss0 = {pid: rss_kib(pid) for pid in pids.values()}
    start = time.monotonic()
    for _ in range(500):
        raw_cycle(path)
    took = time.monotonic() - start
    state1 = settle(pids.values(), state0, 3.0)
    rss1 = {pid: rss_kib(pid) for pid in pids.values()}
    check(parent.poll() is None, "sommelier --parent died: %s" % env.log_tail(parent))
    report = "; ".join("%s fds %d->%d threads %d->%d rss %d->%d KiB" % (
        n, state0[pid][0], state1[pid][0], state0[pid][1], state1[pid][1], rss0[pid],
        rss1[pid]) for n, pid in pids.items())
    idle = state0[parent.pid]
    report = "500 cycles in %.1f s (%.1f ms each); one client costs sommelier %+d fds, " \
        "%+d threads; %s" % (took, took * 2, held[0] - idle[0], held[1] - idle[1],
                             report)
    want_threads = 1 if VIRTGPU else 0
    check(held[1] - idle[1] == want_threads, "a connected client costs sommelier %d threads, "
          "want %d (%s): %s" % (held[1] - idle[1], want_threads,
                                "the emulation's reader" if VIRTGPU else "single-threaded",
                                report))
    grew = [n for n, pid in pids.items() if state1[pid][0] != state0[pid][0]]
    check(not grew, "fd count changed: " + report)
    grew = [n for n, pid in pids.items() if state1[pid][1] != state0[pid][1]]
    check(not grew, "thread count changed: " + report)
    fat = [n for n, pid in pids.items() if rss1[pid] - rss0[pid] > 2048]
    check(not fat, "RSS grew by more than 2 MiB: " + report)
    env.stop(parent)
    return report

def cpu_seconds(pid):
    fields = read_text("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def served(client, timeout):
    """Whether the client's get_registry + sync (sent on connecting) came
    back within timeout: False while it waits in the backlog."""
    client.sock.settimeout(timeout)
    try:
        status, detail = client.until_done(3)
    except socket.timeout:
        return False
    check(status == "done", "a waiting client was dropped: %s %s" % (status, detail))
    return True


# Few enough fds that some of the clients below must wait: about four fit
# (sommelier accepts while 12 fds are free; a client takes 8 over the socket
# device, 11 on the emulated render node).
OUT_OF_FDS_LIMIT = 64
OUT_OF_FDS_CLIENTS = 12


def test_out_of_fds(env):
    """A --parent out of fds neither spins nor drops clients: accepting
    rests (one warning per shortage) while the others wait in the backlog,
    and they are served, each, as fds come free."""
    name = "sml-fds"
    parent = env.start_parent(name, "--log-level=info", fd_limit=OUT_OF_FDS_LIMIT)
    path = env.path(name)
    raw_cycle(path)  # what the first client sets up for good
    time.sleep(0.3)  # its fds close off the loop
    idle = fd_count(parent.pid)
    clients = []
    for _ in range(OUT_OF_FDS_CLIENTS):
        c = RawClient(path)
        c.send(1, 1, struct.pack("=I", 2))  # get_registry
        c.send(1, 0, struct.pack("=I", 3))  # sync
        clients.append(c)
    time.sleep(0.5)
    waiting = [c for c in clients if not served(c, 0.5)]
    n_served = len(clients) - len(waiting)
    check(0 < n_served < len(clients), "%d of %d clients served under %d fds" %
          (n_served, len(clients), OUT_OF_FDS_LIMIT))
    start = cpu_seconds(parent.pid)
    time.sleep(1.0)
    busy = cpu_seconds(parent.pid) - start
    check(busy < 0.2, "sommelier used %.2f s of CPU in 1 s while out of fds (spinning?)" % busy)
    log = read_text(env.logs[parent])
    check(log.count("pausing") == 1, "%d pause warnings for one shortage: %s" %
          (log.count("pausing"), env.log_tail(parent)))
    # Each served client that leaves lets a waiting one in.
    for c in clients:
        if c not in waiting:
            c.close()
    deadline = time.monotonic() + 15
    while waiting and time.monotonic() < deadline:
        for c in [c for c in waiting if served(c, 0.2)]:
            waiting.remove(c)
            c.close()
    check(not waiting, "%d clients never served after the others left" % len(waiting))
    check("accepting on the client listener again" in read_text(env.logs[parent]),
          "no word that accepting resumed: %s" % env.log_tail(parent))
    after = settle([parent.pid], {parent.pid: (idle, thread_count(parent.pid))}, 3)[parent.pid][0]
    check(after == idle, "sommelier's fds: %d after, %d before" % (after, idle))
    check(parent.poll() is None, "sommelier --parent died: %s" % env.log_tail(parent))
    env.stop(parent)
    return ("%d of %d clients served at once under %d fds, the others waited; %.2f s of CPU "
            "in 1 s out of fds; 1 warning; all served as fds came free; fds %d -> %d" %
            (n_served, len(clients), OUT_OF_FDS_LIMIT, busy, idle, after))


# Guest ids in the error sequence: the proxy's host connection reuses the ids
# of finished callbacks, the raw client never does, so the guest's id of the
# pool (7) differs from the host's and the error must be translated.
POOL_ID = 7


def shm_error_sequence(path):
    """Makes the compositor fail wl_shm_pool.create_buffer with a negative width.
    Returns (error tuple or None, what followed, object ids)."""
    c = RawClient(path)
    memfd = os.memfd_create("sml-e2e-pool", os.MFD_CLOEXEC)
    try:
        globals_, status, detail = registry_of(c)
        if status != "done":
            raise TestFailure("registry round trip: %s %s" % (status, detail))
        for cb in (4, 5):
            status, detail = c.roundtrip(cb)
            if status != "done":
                raise TestFailure("sync round trip: %s %s" % (status, detail))
        if "wl_shm" not in globals_:
            raise TestFailure("no wl_shm global")
        shm_name, _ = globals_["wl_shm"]
        shm_id, pool_id, buffer_id, sync_id = 6, POOL_ID, 8, 9
        c.send(2, 0, struct.pack("=I", shm_name) + wl_string("wl_shm") +
               struct.pack("=II", 1, shm_id))  # wl_registry.bind
        os.ftruncate(memfd, 4096)
        c.send(shm_id, 0, struct.pack("=Ii", pool_id, 4096), fds=[memfd])  # create_pool
        c.send(pool_id, 0, struct.pack("=IiiiiI", buffer_id, 0, -16, 16, 64, 0))  # create_buffer
        status, detail = c.roundtrip(sync_id)
        after = "eof" if status == "error" and c.event() is None else "still open"
        return (detail if status == "error" else None), status, after
    finally:
        os.close(memfd)
        c.close()


def test_host_protocol_error(env):
    direct_err, direct_status, direct_after = shm_error_sequence(env.path(WESTON_SOCKET))
    check(direct_err is not None, "weston sent no error directly (%s)" % direct_status)
    name = "sml-errors"
    parent = env.start_parent(name)
    bystander = RawClient(env.path(name))
    globals_, status, _ = registry_of(bystander)
    check(status == "done", "bystander's first round trip: %s" % status)
    paint_out = env.log_path("err-paint-out")
    painter = env.spawn([PAINT_BIN, "--size", "64x64", "--seconds", "3", "--color", "ff445566"],
                        "err-paint", display=name, stdout_path=paint_out)
    check(wait_for_text(paint_out, "painted", 15, painter), "bystander sml-paint did not paint")
    try:
        proxied_err, proxied_status, proxied_after = shm_error_sequence(env.path(name))
    except socket.timeout:
        raise TestFailure("the guest got neither an error nor a reply within 5 s")
    numbers = "direct: error on object %d code %d (%s), then %s; proxied: %s, then %s" % (
        direct_err[0], direct_err[1], direct_err[2], direct_after,
        "error on object %d code %d (%s)" % proxied_err if proxied_err else
        "no error (%s)" % proxied_status, proxied_after)
    check(direct_err[0] == POOL_ID, "weston's error is not on the pool: " + numbers)
    check(proxied_err is not None, "no error reached the guest: " + numbers)
    check(proxied_err[:2] == direct_err[:2],
          "the guest got a different error (want object %d code %d): %s" %
          (direct_err[0], direct_err[1], numbers))
    check(proxied_after == "eof", "the guest was not disconnected after the error: " + numbers)
    # The others on the same sommelier are untouched.
    status, detail = bystander.roundtrip(4)
    check(status == "done", "the bystander's round trip after the error: %s %s; %s" %
          (status, detail, numbers))
    bystander.close()
    check(painter.poll() is None, "the bystander sml-paint died: status %s: %s" %
          (painter.returncode, env.log_tail(painter)))
    check(wait_exit(painter, 10) == 0, "the bystander sml-paint ended with %s" % painter.returncode)
    check(parent.poll() is None, "sommelier --parent died: %s" % env.log_tail(parent))
    env.stop(parent)
    return numbers + "; bystanders kept working"


# A virtio-gpu guest of its own, through the emulated node (run with the
# library preloaded): a cross-domain context with both rings, a POLL
# outstanding on the channel ring, then GEM_CLOSE of the channel ring while
# the context lives (what proxy/guest/vgpu_kernel.c's vk_destroy does for
# every channel: unmap and close the rings, then close the fd; the emulation
# sends RESOURCE_DESTROY, a kernel RESOURCE_UNREF), then a wl_display.sync
# that makes the compositor answer into that ring.
RING_DESTROYED_GUEST = r"""
import ctypes, fcntl, os, struct, time
def drm_iowr(nr, size):
    return (3 << 30) | (size << 16) | (ord("d") << 8) | (0x40 + nr)
CONTEXT_INIT, CREATE_BLOB, EXECBUFFER = drm_iowr(0x0b, 16), drm_iowr(0x0a, 48), drm_iowr(0x02, 64)
GEM_CLOSE = (1 << 30) | (8 << 16) | (ord("d") << 8) | 0x09
fd = os.open("/dev/dri/renderD128", os.O_RDWR | os.O_CLOEXEC)
# capset cross-domain (5), 2 rings, poll mask: the channel ring (1)
params = ctypes.create_string_buffer(struct.pack("=6Q", 1, 5, 2, 2, 3, 1 << 1))
fcntl.ioctl(fd, CONTEXT_INIT, struct.pack("=IIQ", 3, 0, ctypes.addressof(params)))
def blob():  # GUEST, MAPPABLE, one page
    b = bytearray(struct.pack("=IIIIQIIQQ", 1, 1, 0, 0, 4096, 0, 0, 0, 0))
    fcntl.ioctl(fd, CREATE_BLOB, b)
    return struct.unpack_from("=II", b, 8)
def execbuffer(cmd, ring=None):
    buf = ctypes.create_string_buffer(cmd, len(cmd))
    fcntl.ioctl(fd, EXECBUFFER, struct.pack(
        "=IIQQIiIIIIQQ", 0 if ring is None else 4, len(cmd), ctypes.addressof(buf), 0, 0, -1,
        ring or 0, 0, 0, 0, 0, 0))
(q_bo, q_res), (c_bo, c_res) = blob(), blob()
execbuffer(struct.pack("=BBHIIII", 1, 0, 20, 0, q_res, c_res, 1))  # INIT, Wayland
execbuffer(struct.pack("=BBHIQ", 3, 0, 16, 0, 0), ring=1)  # POLL
fcntl.ioctl(fd, GEM_CLOSE, struct.pack("=II", c_bo, 0))  # the channel ring goes
sync = struct.pack("=III", 1, 12 << 16, 2)  # wl_display.sync(2)
execbuffer(struct.pack("=BBHIII", 4, 0, 352 + len(sync), 0, 0, len(sync)) + bytes(336) + sync)
time.sleep(1)
os.close(fd)
print("guest done")
"""


def test_ring_destroyed_under_context(env):
    """sommelier-host is the boundary all guests share: a guest that
    destroys the resource its context uses as the channel ring (as
    sommelier's kernel backend does at every channel teardown, just before
    closing the node) must not make it write into memory it unmapped. It may
    lose that context; it must keep serving everyone else."""
    if not VIRTGPU:
        raise TestSkipped("a virtio-gpu guest; runs in virtgpu mode")
    connections = env.host_connections()
    env_ = env.env(LD_PRELOAD=VGPU_LIB, SML_VGPU_EMUL_SOCKET=env.host_sock)
    guest = subprocess.run([sys.executable, "-c", RING_DESTROYED_GUEST], env=env_,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=20, start_new_session=True)
    out = guest.stdout.decode(errors="replace").strip().replace("\n", " | ")
    check(env.host_connections() - connections == 1,
          "the guest did not reach sommelier-host through the emulated node: " + out)
    time.sleep(0.2)
    check(host_death(env) is None, "the guest destroyed the channel ring of its live context "
          "(a POLL outstanding), then sent wl_display.sync: sommelier-host did not survive it")
    check(guest.returncode == 0 and "guest done" in out,
          "the guest: status %d: %s" % (guest.returncode, out))
    globals_, _ = run_wayland_info(env, env.sommelier_argv("wayland-info"))
    check(("wl_compositor", 6) in globals_ or any(i == "wl_compositor" for i, _ in globals_),
          "wayland-info through sommelier afterwards lists no wl_compositor")
    return "sommelier-host survived (guest: %s); wayland-info through sommelier " \
        "afterwards: %d globals" % (out or "no output", sum(globals_.values()))


def test_compositor_gone(env):
    name = "sml-gone"
    parent = env.start_parent(name)
    clients, outs = [], []
    for i in range(3):
        out = env.log_path("gone-out")
        outs.append(out)
        clients.append(env.spawn([PAINT_BIN, "--size", "64x64", "--seconds", "30",
                                  "--color", "ff%06x" % (0x203040 + i)],
                                 "gone", display=name, stdout_path=out))
    for c, out in zip(clients, outs):
        check(wait_for_text(out, "painted", 15, c), "client did not paint: %s" % env.log_tail(c))
    start = time.monotonic()
    env.killpg(env.weston, signal.SIGKILL)
    env.weston.wait()
    statuses = [wait_exit(c, max(0.5, start + 5 - time.monotonic())) for c in clients]
    took = time.monotonic() - start
    check(all(s is not None for s in statuses),
          "clients still running 5 s after weston died: statuses %s" % statuses)
    check(all(s > 0 for s in statuses),
          "clients did not exit with an error status: %s" % statuses)
    time.sleep(0.5)
    check(parent.poll() is None, "sommelier --parent ended after weston died: status %s: %s" %
          (parent.returncode, env.log_tail(parent)))
    # A new client gets an error, not a hang.
    out = env.log_path("gone-new-out")
    newcomer = env.spawn([PAINT_BIN, "--size", "64x64", "--seconds", "0"], "gone-new",
                         display=name, stdout_path=out)
    t0 = time.monotonic()
    status = wait_exit(newcomer, 10)
    new_took = time.monotonic() - t0
    check(status is not None, "a new sml-paint hangs (10 s) with weston gone")
    check(status > 0, "a new sml-paint with weston gone: status %s" % status)
    raw = RawClient(env.path(name))
    try:
        raw.send(1, 1, struct.pack("=I", 2))
        raw_status, raw_detail = raw.roundtrip(3)
    except socket.timeout:
        raw_status, raw_detail = "hang", None
    finally:
        raw.close()
    check(raw_status in ("eof", "error"),
          "a raw client with weston gone: %s (want an error or EOF, not a reply or a hang)" %
          raw_status)
    time.sleep(0.3)
    check(parent.poll() is None, "sommelier --parent ended: status %s: %s" %
          (parent.returncode, env.log_tail(parent)))
    check(env.host.poll() is None, "sommelier-host ended: status %s: %s" %
          (env.host.returncode, env.log_tail(env.host)))
    return ("3 clients exited %s within %.2f s; sommelier --parent and sommelier-host alive; "
            "new sml-paint: status %d in %.2f s (%s); raw client: %s %s" %
            (statuses, took, status, new_took, env.log_tail(newcomer, 1), raw_status,
             raw_detail or ""))

class CopyClient:
    """A raw client of a copy-path sommelier: a 64x64 surface, `nbuf` buffers."""

    W = H = 64

    def __init__(self, path, nbuf=2):
        self.c = RawClient(path)
        self.next_id = 3  # ids are dense: 2 and 3 went to registry_of
        globals_, status, detail = registry_of(self.c)
        check(status == "done", "registry round trip: %s %s" % (status, detail))
        self.globals = globals_
        self.compositor = self.bind(globals_, "wl_compositor", 4)
        self.shm = self.bind(globals_, "wl_shm", 1)
        self.memfd = os.memfd_create("sml-e2e-copy", os.MFD_CLOEXEC)
        stride, size = self.W * 4, self.W * 4 * self.H * nbuf
        os.ftruncate(self.memfd, size)
        self.pool = self.new_id()
        self.c.send(self.shm, 0, struct.pack("=Ii", self.pool, size), fds=[self.memfd])
        self.buffers = [self.buffer(i * stride * self.H) for i in range(nbuf)]
        self.surface = self.new_id()
        self.c.send(self.compositor, 0, struct.pack("=I", self.surface))

    def new_id(self):
        self.next_id += 1
        return self.next_id

    def bind(self, globals_, iface, version):
        check(iface in globals_, "no %s global" % iface)
        new = self.new_id()
        self.c.send(2, 0, struct.pack("=I", globals_[iface][0]) + wl_string(iface) +
                    struct.pack("=II", version, new))
        return new

    def buffer(self, offset, w=W, h=H):
        new = self.new_id()
        self.c.send(self.pool, 0, struct.pack("=IiiiiI", new, offset, w, h, w * 4, 1))
        return new

    def commit(self, buf, rects=(), surface_damage=False):
        self.c.send(self.surface, 1, struct.pack("=Iii", buf, 0, 0))  # attach
        if surface_damage:
            self.c.send(self.surface, 2, struct.pack("=iiii", 0, 0, 1, 1))
        msg = b"".join(struct.pack("=II", self.surface, (24 << 16) | 9) +
                       struct.pack("=iiii", *r) for r in rects)  # damage_buffer
        if msg:
            self.c.sock.sendall(msg)
        self.c.send(self.surface, 6)  # commit

    def roundtrip(self):
        status, detail = self.c.roundtrip(self.new_id())
        check(status == "done", "round trip: %s %s" % (status, detail))

    def close(self):
        self.c.close()
        os.close(self.memfd)


# Damage is a client's to get wrong: rectangles past the buffer (generous
# damage, or surface units under a buffer scale) and before it are clipped.
# They used to reach the copies of the other buffer, whose catch-up then
# wrote past its host memory: sommelier crashed, with every client.
def test_copy_damage_outside_buffer(env):
    name = "sml-damage"
    parent = env.start_parent(name, "--shm-copy")
    bystander = CopyClient(env.path(name))
    c = CopyClient(env.path(name))
    a, b = c.buffers
    for damage in ((10, 10, 100000, 100000), (32, 32, 64, 64), (-8, -8, 16, 16),
                   (-100000, 0, 200000, 64)):
        c.commit(a, [(0, 0, 64, 64)])
        c.roundtrip()
        c.commit(b, [damage])
        c.roundtrip()
        time.sleep(0.2)  # weston releases a; the catch-up copies into it
        c.roundtrip()
        check(parent.poll() is None, "sommelier died after damage %s: %s" %
              (damage, env.log_tail(parent)))
    bystander.roundtrip()
    c.close()
    bystander.close()
    env.stop(parent)
    return "4 kinds of damage outside a buffer clipped; sommelier and a bystander fine"


# Copy-path buffers and damage cost sommelier nothing that outlives them:
# no fd per buffer (a client with many buffers would exhaust sommelier's
# fds, and other clients with them) and no memory per commit when
# damage_buffer rectangles and wl_surface.damage mix (that leaked).
def test_copy_no_growth(env):
    name = "sml-copy-growth"
    parent = env.start_parent(name, "--shm-copy")
    c = CopyClient(env.path(name), nbuf=1)
    c.roundtrip()
    fds_before = fd_count(parent.pid)
    extra = [c.buffer(0, 1, 1) for _ in range(300)]
    c.roundtrip()
    fds_after = fd_count(parent.pid)
    rects = [(2 * (i % 32), 2 * (i // 32), 1, 1) for i in range(512)]
    for i in range(50):  # warm up: allocations that stay are not leaks
        c.commit(c.buffers[0], rects, surface_damage=True)
    c.roundtrip()
    rss_before = rss_kib(parent.pid)
    for i in range(1000):
        c.commit(c.buffers[0], rects, surface_damage=True)
        if i % 50 == 49:
            c.roundtrip()
    rss_after = rss_kib(parent.pid)
    numbers = ("300 buffers: sommelier fds %d -> %d; 1000 commits of 512 rectangles and a "
               "surface damage: RSS %d -> %d KiB" % (fds_before, fds_after, rss_before,
                                                     rss_after))
    # The emulated render node keeps each blob as an open memfd plus its
    # cached dma-buf, in sommelier's process: a kernel keeps them in itself.
    allowed = 30 + (2 * len(extra) if VIRTGPU else 0)
    check(fds_after - fds_before < allowed, "an fd per buffer: " + numbers)
    check(rss_after - rss_before < 2048, "memory grows with commits: " + numbers)
    del extra
    c.close()
    env.stop(parent)
    return numbers


def shadow_buffers(path):
    """A raw client gives its surface a KDE shadow made of two of its shm
    buffers (org_kde_kwin_shadow.attach_left and attach_top, then commit),
    shows a third buffer on the surface, destroys the shadow, then shows a
    shadow buffer: the status of the round trip after each step, and the
    releases each buffer got."""
    c = CopyClient(path, nbuf=3)
    try:
        check("org_kde_kwin_shadow_manager" in c.globals,
              "no org_kde_kwin_shadow_manager global")
        manager = c.bind(c.globals, "org_kde_kwin_shadow_manager", 2)
        shadow = c.new_id()
        c.c.send(manager, 0, struct.pack("=II", shadow, c.surface))  # create
        c.c.send(shadow, 1, struct.pack("=I", c.buffers[0]))  # attach_left
        c.c.send(shadow, 3, struct.pack("=I", c.buffers[1]))  # attach_top
        c.c.send(shadow, 9, struct.pack("=i", 8 * 256))  # set_left_offset 8.0
        c.c.send(shadow, 0)  # commit
        steps = [lambda: None, lambda: c.commit(c.buffers[2], [(0, 0, 64, 64)]),
                 lambda: c.c.send(shadow, 13),  # destroy
                 lambda: c.commit(c.buffers[0], [(0, 0, 64, 64)])]
        statuses, releases = [], collections.Counter()

        def on_event(obj, opcode, payload):
            if opcode == 0 and obj in c.buffers:
                releases[c.buffers.index(obj)] += 1
        for step in steps:
            step()
            st, detail = c.c.roundtrip(c.new_id(), on_event)
            statuses.append(st if st == "done" else "%s %s" % (st, detail))
            if st != "done":
                break
        time.sleep(0.3)
        c.c.roundtrip(c.new_id(), on_event)
        return statuses, dict(releases)
    finally:
        c.close()


# A request other than wl_surface.attach may name a client's shm buffer:
# KDE shadows (Qt applications set them on menus and tooltips under KWin).
# On the copy path client buffers have no host twin of their own; such a
# request used to end the client ("object argument is gone on the host").
# It must get a copy of the buffer in host memory, and go through.
def test_copy_buffer_named(env):
    procs, sock, kwin = start_kwin_host(env)
    try:
        direct, direct_releases = shadow_buffers(env.path(kwin))
        check(direct == ["done"] * 4, "straight to kwin: %s" % (direct,))
        argv = [GUEST_BIN, env.host_option(sock),
                "--shm-copy", "--log-level=info", "--parent", "--socket=sml-shadow"]
        parent = env.spawn(argv, "shadow", host_sock=sock)
        wait_for_socket(env.path("sml-shadow"), 10, parent, "sommelier --parent")
        proxied, releases = shadow_buffers(env.path("sml-shadow"))
        env.stop(parent)
    finally:
        for p in reversed(procs):
            env.stop(p)
    check(proxied == ["done"] * 4, "through --shm-copy: %s" % (proxied,))
    check(releases == direct_releases,
          "releases per buffer (index: count): %s through --shm-copy, %s straight to kwin" %
          (releases, direct_releases))
    stats = copy_stats(read_text(env.logs[parent]))
    # Two 64x64 shadow buffers copied whole (16 KiB each) and two commits.
    check(stats and stats[0] == 2 and stats[1] == 64,
          "copy statistics %s: want 2 commits and 64 KiB copied (two 16 KiB shadow "
          "buffers and two 16 KiB commits)" % (stats,))
    return ("a shadow of two shm buffers, commits, through --shm-copy to kwin: round trips "
            "%s; releases per buffer %s, as straight to kwin; 64 KiB copied" %
            ("/".join(proxied), releases))


def kwin_paint_pixels(env, kwin, argv_prefix, what, host_sock=None):
    """sml-paint, 307x200 in one colour, run with argv_prefix on kwin: how
    many pixels of its colour kwin shows."""
    argb = 0xff33cc66
    out = env.log_path("kwin-paint-out")
    p = env.spawn(argv_prefix + [PAINT_BIN, "--size", "307x200", "--color", "%08x" % argb,
                                 "--seconds", "5"], "kwin-paint", display=kwin,
                  stdout_path=out, host_sock=host_sock)
    try:
        check(wait_for_text(out, "painted", 15, p), lambda: "%s: sml-paint did not paint: %s" %
              (what, env.log_tail(p)))
        time.sleep(0.3)
        pixels, bbox = colour_on_screen(kwin_screenshot(env), argb)
    finally:
        env.stop(p)
    return pixels, bbox


# Copies reach the host in host memory laid out by the host. Rows padded
# past the pixels (sommelier-host used to round them to 256 bytes) are
# legal, but KWin 5.27 ignores the stride when it first uploads a buffer:
# a window 307 pixels wide showed skewed, with stripes of padding. Rows are
# now as long as the pixels; the window must show as it does directly.
def test_copy_kwin_pixels(env):
    procs, sock, kwin = start_kwin_host(env)
    try:
        want = 307 * 200
        direct, _ = kwin_paint_pixels(env, kwin, [], "straight to kwin")
        check(direct == want, "straight to kwin: %d pixels of the colour, want %d" %
              (direct, want))
        prefix = [GUEST_BIN, env.host_option(sock),
                  "--shm-copy"]
        copied, bbox = kwin_paint_pixels(env, kwin, prefix, "through --shm-copy", sock)
    finally:
        for p in reversed(procs):
            env.stop(p)
    check(copied == want, "through --shm-copy: %d pixels of the colour in %s, want %d "
          "(skewed rows?)" % (copied, bbox, want))
    return "a 307x200 window on kwin: %d pixels of its colour, as directly" % copied


DMABUF_SOCKET = "host-dmabuf"


def dmabuf_run(env, argv, what, host_sock=None, display=None):
    """sml-dmabuf by argv: its exit status and lines."""
    out = env.path("dmabuf-%d.txt" % (env.serial + 1))
    p = env.spawn(argv, "dmabuf", display=display, stdout_path=out, host_sock=host_sock)
    status = wait_exit(p, 20)
    if status is None:
        env.stop(p)
    lines = read_text(out).splitlines()
    check(status in (0, 3), "sml-dmabuf %s: %s: %s | %s" % (
        what, status_text(status), " | ".join(lines), env.log_tail(p)))
    return status, lines


def dmabuf_check(direct, proxied, compositor_lines):
    """The proxied run says what the direct one says (its file aside), and
    the compositor got the client's own file, not a copy: every add names
    it, and the pixel changed between add and commit shows at commit."""
    strip = [l for l in direct if not l.startswith("buffer file=")]
    check([l for l in proxied if not l.startswith("buffer file=")] == strip,
          "through sommelier: %s; directly: %s" % (" | ".join(proxied), " | ".join(direct)))
    mine = [l.split("=", 1)[1] for l in proxied if l.startswith("buffer file=")]
    adds = [l for l in compositor_lines if l.startswith("add ")]
    check(len(mine) == 1 and len(adds) == 3 and
          all(" file=%s " % mine[0] in l for l in adds),
          "the compositor's planes %s, want 3 of the client's file %s" % (adds, mine))
    check(adds[1].endswith(" first=ff336699"),
          "the second add read %s, want ff336699 (the change comes after it)" % adds[1])
    commits = [l for l in compositor_lines if l.startswith("commit ")]
    check(commits == ["commit first=ff336699", "commit first=ff00ff00"],
          "the compositor read %s at commit, want ff336699 then the in-place ff00ff00" % commits)


def dmabuf_fd_cycles(env, sock, procs, runs=30):
    """sml-dmabuf through sommelier `runs` more times: the compositor's and
    sommelier-host's fds must come back to where they were (each run passes
    three plane fds and a format table)."""
    def counts():
        return [fd_count(p.pid) for p in procs]

    before = counts()
    for i in range(runs):
        status, lines = dmabuf_run(env, [GUEST_BIN, env.host_option(sock), DMABUF_BIN],
                                   "through sommelier, run %d" % (i + 2), sock)
        check(status == 0, "run %d: %s" % (i + 2, " | ".join(lines)))
    deadline = time.monotonic() + 5
    while counts() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    after = counts()
    check(after == before, "fds of the compositor and sommelier-host %s before %d runs, %s "
          "after" % (before, runs, after))
    return "%d more runs: compositor and sommelier-host fds %s -> %s" % (runs, before, after)


def test_dmabuf_passthrough(env):
    procs, sock = start_other_host(env, [DMABUF_COMPOSITOR_BIN, DMABUF_SOCKET], DMABUF_SOCKET,
                                   "sml-dmabuf-compositor")
    log = env.logs[procs[0]]
    try:
        _, direct = dmabuf_run(env, [DMABUF_BIN], "directly", display=DMABUF_SOCKET)
        check(direct[:1] == ["offered version=4"] and "failed" in direct,
              "sml-dmabuf directly: %s" % " | ".join(direct))
        seen = len(read_text(log).splitlines())
        status, proxied = dmabuf_run(env, [GUEST_BIN, env.host_option(sock), DMABUF_BIN],
                                     "through sommelier", sock)
        if VIRTGPU:
            check(status == 3, "on virtgpu linux-dmabuf must be hidden, sml-dmabuf says %s" %
                  " | ".join(proxied))
        else:
            dmabuf_check(direct, proxied, read_text(log).splitlines()[seen:])
            fds = dmabuf_fd_cycles(env, sock, procs)
        copy_status, copied = dmabuf_run(env, [GUEST_BIN, env.host_option(sock), "--shm-copy",
                                               DMABUF_BIN], "with --shm-copy", sock)
        check(copy_status == 3, "with --shm-copy linux-dmabuf must be hidden, sml-dmabuf says "
              "%s" % " | ".join(copied))
    finally:
        for p in reversed(procs):
            env.stop(p)
    if VIRTGPU:
        return "hidden through the kernel backend and with --shm-copy (offered directly: v4)"
    return ("v4 through sommelier as directly: the compositor got the client's own file "
            "(%s) for 3 planes, read the pixel changed in place at commit, feedback's table "
            "of 3 formats arrived; %s; hidden with --shm-copy" %
            ([l for l in proxied if l.startswith("buffer file=")][0][len("buffer file="):], fds))


def wl_msg(obj, opcode, payload=b""):
    return struct.pack("=II", obj, ((8 + len(payload)) << 16) | opcode) + payload


def burst_releases(path):
    """Commits sent in one go (no round trip between them) by a raw client:
    twenty buffers of twenty sizes, six of one size, an unmap and a map, and
    a last buffer. Returns the buffers the compositor did not release
    exactly once after that last commit, or an error status."""
    c = CopyClient(path, nbuf=9)
    try:
        size = CopyClient.W * 4 * CopyClient.H
        same = c.buffers[:8]
        # (4+i)x4 pixels each, 384 bytes apart in the ninth buffer's room.
        sizes = [c.buffer(8 * size + 384 * i, 4 + i, 4) for i in range(20)]
        releases = collections.Counter()

        def commit(buf):
            return (wl_msg(c.surface, 1, struct.pack("=Iii", buf, 0, 0)) +
                    wl_msg(c.surface, 9, struct.pack("=iiii", 0, 0, 64, 64)) +
                    wl_msg(c.surface, 6))

        def on_event(obj, opcode, payload):
            if opcode == 0 and obj in sizes + same:
                releases[obj] += 1
        bursts = [("twenty sizes", b"".join(commit(b) for b in sizes)),
                  ("six buffers of one size", b"".join(commit(b) for b in same[:6])),
                  ("unmap and map", commit(0) + commit(same[6])),
                  ("a last buffer", commit(same[7]))]
        for what, data in bursts:
            c.c.sock.sendall(data)
            status, detail = c.c.roundtrip(c.new_id(), on_event)
            if status != "done":
                return "%s in one go: %s %s" % (what, status, detail)
        time.sleep(0.3)
        c.c.roundtrip(c.new_id(), on_event)
        return ["buffer %d released %d times" % (b, releases[b]) for b in sizes + same[:7]
                if releases[b] != 1]
    finally:
        c.close()


# A client may commit several buffers before sommelier has read the host's
# releases of the first ones (they are all dispatched in one go): every slot
# then looks held. That used to end the client with no_memory. The commits
# must all be taken and every buffer but the last one released once, as
# weston does directly, while sommelier keeps at most 16 slots for the
# surface (twenty sizes in flight: the oldest superseded slots make room).
def test_copy_bursts(env):
    direct = burst_releases(env.path(WESTON_SOCKET))
    check(direct == [], "straight to weston: %s" % (direct,))
    name = "sml-burst"
    parent = env.start_parent(name, "--shm-copy", "--log-level=info")
    proxied = burst_releases(env.path(name))
    check(parent.poll() is None, lambda: "sommelier died: %s" % env.log_tail(parent))
    env.stop(parent)
    check(proxied == [], "through --shm-copy: %s" % (proxied,))
    stats = copy_stats(read_text(env.logs[parent]))
    check(stats and stats[0] == 28 and stats[3] == 16,
          "copy statistics %s: want 28 commits and at most 16 slots" % (stats,))
    return ("28 copied commits in four bursts: every buffer but the last released once, as "
            "directly; 16 slots at most")


def spare_slot_run(env, host_sock, what, args):
    """sml-paint --burst through sommelier --shm-copy on the sommelier-host
    at host_sock: sommelier's copy statistics (commits, KiB at commit, KiB
    ahead, most slots, spare slots given back)."""
    argv = [GUEST_BIN, env.host_option(host_sock), "--shm-copy", "--log-level=info",
            PAINT_BIN, "--burst", *args]
    p = env.spawn(argv, "spare-" + what, host_sock=host_sock)
    status = wait_exit(p, 30)
    if status is None:
        env.stop(p)
    stats = copy_stats(read_text(env.logs[p]), spares=True)
    check(status == 0 and stats, lambda: "%s: sml-paint --burst %s: %s: %s" % (
        what, " ".join(args), status_text(status), env.log_tail(p)))
    return stats


def spare_slot_copies(env, host_sock, what):
    """Four 256x256 buffers committed in one write (four slots), then frames
    alternating two of them, 16 rows (16 KiB) each: 100 frames, and 200.
    Returns (KiB at commit, KiB ahead) of the second run's last 100 frames
    (the difference between the runs' statistics), the second run's (most
    slots, spare slots given back), and those of a third run that commits
    the four and then stops drawing for 6 s."""
    runs = [spare_slot_run(env, host_sock, what, [str(frames)]) for frames in (100, 200)]
    check([r[0] for r in runs] == [104, 204], "%s: %s commits, want 104 and 204" %
          (what, [r[0] for r in runs]))
    idle = spare_slot_run(env, host_sock, what, ["0", "--seconds", "6"])
    return (runs[1][1] - runs[0][1], runs[1][2] - runs[0][2], runs[1][3], runs[1][4],
            idle[3], idle[4])


# A burst of commits makes slots (up to four of a size) that a compositor
# needs only while the burst lasts; each held a full-size host image and a
# mapping in sommelier for the surface's life. Now a slot left unattached
# for 60 of its surface's commits, or for 5 s, is given back, and the
# copying stays as it was: the next commit goes to the free slot that lacks
# the least (the one on screen, if the host let go of it), and only that
# slot is brought up to date ahead, when the host gives back one that is
# not on screen.
def test_copy_spare_slots(env):
    got = on_weston_and_mutter(env, spare_slot_copies)
    # 100 frames of 16 KiB: weston holds the buffer on screen, so each band
    # is copied twice (at commit, and ahead into the slot it released);
    # mutter releases at once, so one slot takes every frame. The burst's
    # four slots come down to what each needs while drawing, 2 and 1, and
    # to the one on screen once the surface stops.
    want = {"weston": (1600, 1600, 4, 2, 4, 3), "mutter": (1600, 0, 4, 3, 4, 3)}
    text = "; ".join("%s: %d KiB at commit, %d ahead over 100 frames of 16 KiB after a burst, "
                     "%d slots at most, %d given back; a burst and 6 s idle: %d slots, %d "
                     "given back" % (k, *got[k]) for k in got)
    check(got == want, "%s; want %s" % (text, want))
    return text


def mutter_monitors_on(env, count):
    """Turns mutter's first `count` virtual monitors on, side by side, and
    the others off (org.gnome.Mutter.DisplayConfig.ApplyMonitorsConfig,
    temporary): what unplugging a screen and plugging it back does to the
    outputs clients see."""
    import dbus  # python3-dbus: only the tests on mutter and kwin need it
    bus = dbus.bus.BusConnection(read_text(env.path("mutter-bus")).strip())
    try:
        config = dbus.Interface(bus.get_object("org.gnome.Mutter.DisplayConfig",
                                               "/org/gnome/Mutter/DisplayConfig"),
                                "org.gnome.Mutter.DisplayConfig")
        serial, monitors, _, _ = config.GetCurrentState()
        logical = []
        for i, (spec, modes, _) in enumerate(monitors[:count]):
            mode = ([m for m in modes if m[6].get("is-current")] or modes[:1])[0][0]
            logical.append((dbus.Int32(320 * i), dbus.Int32(0), dbus.Double(1.0),
                            dbus.UInt32(0), dbus.Boolean(i == 0),
                            [(spec[0], mode, dbus.Dictionary({}, signature="sv"))]))
        config.ApplyMonitorsConfig(serial, dbus.UInt32(1), logical,
                                   dbus.Dictionary({}, signature="sv"))
    finally:
        bus.close()


OUTPUT_EVENT = re.compile(
    r'\] (?: -> )?(wl_registry@\d+\.global\(\d+, "wl_output", \d+\)|'
    r'wl_registry@\d+\.global_remove\(\d+\)|'
    r'wl_registry@\d+\.bind\(\d+, "wl_output", \d+, new id \S+\)|'
    r'wl_output@\d+\.release\(\)|zxdg_output_v1@\d+\.name\("[^"]*"\))')


def output_events(log):
    """What a WAYLAND_DEBUG=client log says of outputs, in order, object
    ids masked (a client through sommelier sees fewer globals, so its ids
    differ): outputs announced, bound, named (xdg-output), removed and
    released."""
    return [re.sub(r"@\d+", "@N", m.group(1)) for m in OUTPUT_EVENT.finditer(read_text(log))]


def settled_fd_counts(pids):
    """The processes' fd counts once unchanged for a while: on the copy path
    (virtgpu) a surface's spare host buffers go after 5 s unused."""
    quiet = 5.5 if VIRTGPU else 0.5
    counts, since = None, time.monotonic()
    deadline = since + 30
    while time.monotonic() < deadline:
        now = [fd_count(pid) for pid in pids]
        if now != counts:
            counts, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.1)
    return counts


def hotplug_cycles(env, feet, cycles):
    """Unplugs mutter's second monitor and plugs it back `cycles` times,
    each step once every foot has seen it."""
    def seen(needle, count):
        return all(read_text(env.logs[p]).count(needle) >= count for p in feet)

    for i in range(cycles):
        mutter_monitors_on(env, 1)
        check(wait_until(lambda: seen("global_remove(", i + 1), 10),
              lambda: "monitor off %d: not every foot saw its wl_output go" % (i + 1))
        mutter_monitors_on(env, 2)
        check(wait_until(lambda: seen('.name("Meta-1")', i + 2), 10),
              lambda: "monitor on %d: not every foot saw its wl_output back" % (i + 1))
        for p in feet:
            check(p.poll() is None, lambda: "foot gone: %s" % env.log_tail(p))


# Screens come and go (a laptop docked, a monitor switched off): a client
# sees wl_output globals removed and added while it runs, releases the
# removed output's object and binds the new one, often with the id it just
# gave back. headless mutter does this on DisplayConfig calls; foot runs
# straight on it and through sommelier side by side, both with
# WAYLAND_DEBUG=client.
def test_output_hotplug(env):
    cycles = 5
    procs, sock, name = start_mutter_host(env, monitors=2)
    try:
        foot = ["env", "WAYLAND_DEBUG=client", "foot", "--app-id=sml-e2e-hotplug", "sleep", "300"]
        direct = env.spawn(foot, "hotplug-direct", display=name)
        proxied = env.spawn([GUEST_BIN, env.host_option(sock), "--"] + foot,
                            "hotplug-proxied", host_sock=sock)
        feet = [direct, proxied]
        check(wait_until(lambda: all('.name("Meta-1")' in read_text(env.logs[p])
                                     for p in feet), 15),
              lambda: "foot did not see both outputs: %s" % env.log_tail(proxied))
        fds = settled_fd_counts([proxied.pid, procs[1].pid])
        hotplug_cycles(env, feet, cycles)
        want, got = (output_events(env.logs[p]) for p in feet)
        check(got == want, lambda: "output events through sommelier differ from foot's "
              "straight on mutter:\n  direct:  %s\n  proxied: %s" % (want, got))
        check(got.count("wl_output@N.release()") == cycles,
              "foot released %d outputs in %d cycles" % (got.count("wl_output@N.release()"),
                                                         cycles))
        after = settled_fd_counts([proxied.pid, procs[1].pid])
        check(after == fds, "fds of sommelier and sommelier-host: %s before, %s after" %
              (fds, after))
        for p in feet:
            env.stop(p)
    finally:
        for p in procs:
            env.stop(p)
    return ("%d times a monitor off and on: foot through sommelier saw the same %d output "
            "events as foot straight on mutter (globals, binds, xdg-output names, "
            "removals, releases); fds of sommelier and sommelier-host %s, unchanged" %
            (cycles, len(got), fds))


def frame_callback_cycles(path, n):
    """n times on one connection: a wl_surface (id 5), a frame callback on
    it (6), the surface destroyed, a round trip (7). A compositor destroys a
    surface's frame callbacks with it, and says so only with delete_id;
    only then may the client use the id again. Returns (cycles done, what
    stopped them)."""
    c = RawClient(path)
    try:
        globals_, status, detail = registry_of(c)
        check(status == "done", "registry round trip: %s %s" % (status, detail))
        c.send(2, 0, struct.pack("=I", globals_["wl_compositor"][0]) +
               wl_string("wl_compositor") + struct.pack("=II", 4, 4))
        deleted = set()

        def on_event(obj, opcode, payload):
            if obj == 1 and opcode == 1:
                deleted.add(struct.unpack_from("=I", payload)[0])

        for i in range(n):
            c.send(4, 0, struct.pack("=I", 5))  # create_surface
            c.send(5, 3, struct.pack("=I", 6))  # frame
            c.send(5, 0)  # destroy
            status, detail = c.roundtrip(7, on_event)
            if status != "done":
                return i, "%s %s" % (status, detail)
            if 6 not in deleted:
                return i, "no delete_id for the frame callback"
            deleted.clear()
        return n, "all done"
    finally:
        c.close()


# A surface destroyed with a frame callback pending (a popup or tooltip
# closing) takes the callback with it on the host, which tells the guest
# only with delete_id. sommelier kept both twins until the client went: the
# guest's ids were never reused, and memory grew with every such surface
# (37 MiB after 100,000, found by review).
def test_frame_callback_dies_with_surface(env):
    n = 500
    direct = frame_callback_cycles(env.path(WESTON_SOCKET), n)
    check(direct == (n, "all done"), "straight to weston: %s" % (direct,))
    name = "sml-frame"
    parent = env.start_parent(name)
    try:
        proxied = frame_callback_cycles(env.path(name), n)
        check(proxied == (n, "all done"), "through sommelier: after %d cycles: %s" % proxied)
        check(parent.poll() is None, lambda: "sommelier died: %s" % env.log_tail(parent))
    finally:
        env.stop(parent)
    return ("%d surfaces destroyed with a frame callback pending: each callback's id came back "
            "with delete_id and was used again, as straight to weston" % n)


# ---- object churn on one connection ------------------------------------------

XRGB8888 = 1
CHURN_POOL = 16384  # a 32x32 toplevel, a 16x16 popup and a 16x16 surface
CHURN_LATE = 2.0  # seconds a closed toplevel's frame callback may take
CHURN_WARMUP = 300
CHURN_CYCLES = 10000
# One leaked pair is a struct fwd_object (160 bytes with malloc's header), a
# wl_resource and a wl_proxy (about 130 each): some 420 bytes, 4 MiB over
# CHURN_CYCLES. Measured growth is 0 KiB in both modes; 512 KiB is 52
# bytes a cycle, less than any one leaked allocation a cycle.
CHURN_RSS_KIB = 512
# The host ids in use at once vary a little (measured: by at most 7):
# frame callbacks of closed toplevels live on in weston until it draws
# their fade-out. One host object kept per cycle would add CHURN_CYCLES.
CHURN_HOST_ID_SLACK = 100


class ChurnClient:
    """One raw connection that creates and destroys a realistic mix of
    objects, cycle after cycle (cycle()), with ids handed out as
    libwayland-client does: the id freed last if any, else the next one
    never used, an id being free only once the server's delete_id for it
    came. So ids stay few unless objects are kept, and each event is
    checked against the objects alive: one for an id that is not (never
    used, or deleted since) fails the run, as does a delete_id for one."""

    GLOBALS = (("wl_compositor", 4), ("wl_subcompositor", 1), ("wl_shm", 1),
               ("xdg_wm_base", 1), ("wl_data_device_manager", 3), ("wp_viewporter", 1),
               ("wp_presentation", 1), ("zxdg_output_manager_v1", 2))

    def __init__(self, path, memfd):
        self.c = RawClient(path)
        self.memfd = memfd
        self.top = 3  # registry_of's registry and callback
        self.free = []
        # id -> kind, from its creation until its delete_id
        self.objects = {1: "wl_display", 2: "wl_registry", 3: "wl_callback"}
        self.last_callback = 3
        self.configured = {}  # xdg_surface id -> serial of its last configure
        self.events = collections.Counter()  # (kind, opcode)
        self.deleted = collections.Counter()  # kind
        self.cycles = 0
        self.extra_roundtrips = 0
        self.late = {}  # id -> when its delete_id is overdue
        globals_, status, detail = registry_of(self.c)
        check(status == "done", "registry round trip: %s %s" % (status, detail))
        self.globals = globals_
        check("wl_output" in globals_ and globals_["wl_output"][1] >= 3,
              lambda: "no wl_output v3 global: %s" % sorted(globals_))
        self.g = {}
        for iface, version in self.GLOBALS:
            check(iface in globals_ and globals_[iface][1] >= version,
                  "no %s v%d global: %s" % (iface, version, sorted(globals_)))
            self.g[iface] = self.new(iface)
            self.c.send(2, 0, struct.pack("=I", globals_[iface][0]) + wl_string(iface) +
                        struct.pack("=II", version, self.g[iface]))
        self.baseline = {1, 2} | set(self.g.values())  # alive as long as the connection
        self.roundtrip()

    def close(self):
        self.c.close()

    def new(self, kind):
        if self.free:
            new = self.free.pop()
        else:
            self.top += 1
            new = self.top
        self.objects[new] = kind
        return new

    def on_event(self, obj, opcode, payload):
        kind = self.objects.get(obj)
        if kind is None:
            raise TestFailure("cycle %d: event %d for object %d, which is not alive (never "
                              "used, or deleted)" % (self.cycles, opcode, obj))
        self.events[(kind, opcode)] += 1
        if obj == 1 and opcode == 1:  # wl_display.delete_id
            (gone,) = struct.unpack_from("=I", payload)
            check(gone in self.objects and gone not in self.baseline,
                  lambda: "cycle %d: delete_id for %d, which is not alive" %
                  (self.cycles, gone))
            self.deleted[self.objects.pop(gone)] += 1
            self.free.append(gone)
        elif kind == "xdg_wm_base" and opcode == 0:  # ping
            self.c.send(obj, 3, payload[:4])  # pong
        elif kind == "xdg_surface" and opcode == 0:  # configure
            self.configured[obj] = struct.unpack_from("=I", payload)[0]

    def roundtrip(self):
        callback = self.last_callback = self.new("wl_callback")
        status, detail = self.c.roundtrip(callback, self.on_event)
        check(status == "done", lambda: "cycle %d: round trip: %s %s" %
              (self.cycles, status, detail))

    def surface(self):
        s = self.new("wl_surface")
        self.c.send(self.g["wl_compositor"], 0, struct.pack("=I", s))  # create_surface
        return s

    def commit_buffer(self, surface, buf, w, h):
        self.c.send(surface, 1, struct.pack("=Iii", buf, 0, 0))  # attach
        self.c.send(surface, 9, struct.pack("=iiii", 0, 0, w, h))  # damage_buffer
        self.c.send(surface, 6)  # commit

    def xdg_surface(self, surface):
        x = self.new("xdg_surface")
        self.c.send(self.g["xdg_wm_base"], 2, struct.pack("=II", x, surface))
        return x

    def ack(self, x):
        """ack_configure of x's last configure. weston sends configure from
        an idle callback: it may follow the done of the round trip that
        carried the commit, then one more round trip brings it."""
        for _ in range(10):
            if x in self.configured:
                break
            self.roundtrip()
            self.extra_roundtrips += 1
        check(x in self.configured, lambda: "cycle %d: no configure for xdg_surface %d" %
              (self.cycles, x))
        self.c.send(x, 4, struct.pack("=I", self.configured.pop(x)))  # ack_configure

    def destroy(self, obj, opcode=0):
        self.c.send(obj, opcode)

    def cycle(self):
        """One cycle, three round trips: a toplevel's initial commit and its
        configure; mapped with a buffer, a popup's initial commit and its
        configure; the popup mapped, then everything torn down with the
        other kinds made and destroyed on the way. Every id this cycle
        used has its delete_id by the end of the last round trip."""
        self.cycles += 1
        send = self.c.send
        comp, shm = self.g["wl_compositor"], self.g["wl_shm"]
        wm = self.g["xdg_wm_base"]
        # A toplevel, with a viewport, and its initial commit.
        top = self.surface()
        x = self.xdg_surface(top)
        toplevel = self.new("xdg_toplevel")
        send(x, 1, struct.pack("=I", toplevel))  # get_toplevel
        send(toplevel, 2, wl_string("churn"))  # set_title
        viewport = self.new("wp_viewport")
        send(self.g["wp_viewporter"], 1, struct.pack("=II", viewport, top))  # get_viewport
        send(viewport, 2, struct.pack("=ii", 32, 32))  # set_destination
        send(top, 6)  # commit
        # The output bound again (a pair made by the registry), and its
        # xdg-output.
        output = self.new("wl_output")
        send(2, 0, struct.pack("=I", self.globals["wl_output"][0]) + wl_string("wl_output") +
             struct.pack("=II", 3, output))  # wl_registry.bind
        xdg_output = self.new("zxdg_output_v1")
        send(self.g["zxdg_output_manager_v1"], 1, struct.pack("=II", xdg_output, output))
        # A surface destroyed with a frame callback pending.
        s = self.surface()
        frame = self.new("wl_callback")
        send(s, 3, struct.pack("=I", frame))  # frame
        self.destroy(s)
        # A region.
        region = self.new("wl_region")
        send(comp, 1, struct.pack("=I", region))  # create_region
        send(region, 1, struct.pack("=iiii", 0, 0, 16, 16))  # add
        send(region, 2, struct.pack("=iiii", 4, 4, 4, 4))  # subtract
        self.roundtrip()

        # A pool from the memfd, three buffers, the pool destroyed at once.
        pool = self.new("wl_shm_pool")
        send(shm, 0, struct.pack("=Ii", pool, CHURN_POOL), fds=[self.memfd])  # create_pool
        bufs = []
        for offset, w in ((0, 32), (4096, 16), (8192, 16)):
            b = self.new("wl_buffer")
            send(pool, 0, struct.pack("=IiiiiI", b, offset, w, w, w * 4, XRGB8888))
            bufs.append(b)
        self.destroy(pool, 1)
        # The toplevel mapped, a frame callback on it (fired or not when
        # the surface goes), the region as its opaque region.
        self.ack(x)
        send(top, 4, struct.pack("=I", region))  # set_opaque_region
        self.destroy(region)
        mapped_frame = self.new("wl_callback")
        send(top, 3, struct.pack("=I", mapped_frame))  # frame
        # weston fades a closed window out: its surface lives on, drawn,
        # and fires this callback a frame later (done, then delete_id).
        self.late[mapped_frame] = time.monotonic() + CHURN_LATE
        self.commit_buffer(top, bufs[0], 32, 32)
        # A popup on it, and the popup's initial commit.
        positioner = self.new("xdg_positioner")
        send(wm, 1, struct.pack("=I", positioner))  # create_positioner
        send(positioner, 1, struct.pack("=ii", 16, 16))  # set_size
        send(positioner, 2, struct.pack("=iiii", 0, 0, 32, 32))  # set_anchor_rect
        popup_surface = self.surface()
        px = self.xdg_surface(popup_surface)
        popup = self.new("xdg_popup")
        send(px, 2, struct.pack("=III", popup, x, positioner))  # get_popup
        self.destroy(positioner)
        send(popup_surface, 6)  # commit
        # A data source.
        source = self.new("wl_data_source")
        send(self.g["wl_data_device_manager"], 0, struct.pack("=I", source))
        send(source, 0, wl_string("text/plain;charset=utf-8"))  # offer
        send(source, 0, wl_string("text/plain"))
        self.roundtrip()

        # The popup mapped, then torn down in the order xdg-shell requires;
        # then the toplevel, its viewport after its surface (allowed).
        self.ack(px)
        self.commit_buffer(popup_surface, bufs[1], 16, 16)
        self.destroy(popup)
        self.destroy(px)
        self.destroy(popup_surface)
        self.destroy(toplevel)
        self.destroy(x)
        self.destroy(top)
        self.destroy(viewport)
        # A plain surface with a buffer and presentation feedback, destroyed
        # before it is presented: the feedback ends with discarded.
        s = self.surface()
        feedback = self.new("wp_presentation_feedback")
        send(self.g["wp_presentation"], 1, struct.pack("=II", s, feedback))  # feedback
        self.commit_buffer(s, bufs[2], 16, 16)
        self.destroy(s)
        for b in bufs:
            self.destroy(b)
        # A subsurface whose parent goes first (it becomes inert).
        parent, child = self.surface(), self.surface()
        sub = self.new("wl_subsurface")
        send(self.g["wl_subcompositor"], 1, struct.pack("=III", sub, child, parent))
        send(sub, 1, struct.pack("=ii", 4, 4))  # set_position
        send(child, 6)  # commit
        self.destroy(parent)
        self.destroy(sub)
        self.destroy(child)
        self.destroy(source, 1)
        self.destroy(xdg_output)
        self.destroy(output)  # release
        self.roundtrip()
        # Everything but the globals is gone, the last callback aside (its
        # delete_id follows its done).
        self.check_deleted()

    def check_deleted(self):
        """Fails unless every object made since the globals has had its
        delete_id, but the last round trip's callback (its delete_id
        follows its done) and frame callbacks allowed to be late."""
        now = time.monotonic()
        left = self.alive()
        left.pop(self.last_callback, None)
        for i, due in list(self.late.items()):
            if i not in left:
                del self.late[i]
            elif now < due:
                del left[i]
        check(not left, lambda: "cycle %d: no delete_id for %s" % (
            self.cycles, ", ".join("%s@%d" % (k, i) for i, k in sorted(left.items()))))

    def drain(self):
        """Round trips until every late frame callback has its delete_id
        (at most CHURN_LATE seconds): then every object made since the
        globals has had its delete_id but the last callback."""
        deadline = time.monotonic() + CHURN_LATE
        while True:
            self.roundtrip()
            left = self.alive()
            left.pop(self.last_callback, None)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        check(not left, lambda: "after %d cycles and %.0f s, no delete_id for %s" % (
            self.cycles, CHURN_LATE,
            ", ".join("%s@%d" % (k, i) for i, k in sorted(left.items()))))

    def alive(self):
        """{id: kind} of the objects alive but the globals and the registry."""
        return {i: k for i, k in self.objects.items() if i not in self.baseline}


def churn_cycles(path, n, memfd):
    """n cycles of ChurnClient on a new connection to PATH; the client,
    still connected."""
    c = ChurnClient(path, memfd)
    try:
        for _ in range(n):
            c.cycle()
        c.drain()
    except BaseException:
        c.close()
        raise
    return c


def host_ids_in_use(env, c, cycles=20):
    """The highest object id that sommelier's connection to weston names
    over `cycles` cycles of ChurnClient c, from weston's own protocol log
    (weston-debug proto, weston runs with --debug); None without
    weston-debug. The connection is the client whose toplevel is titled
    "churn". libwayland-client reuses the ids of objects the host has
    deleted: ids that climb are host objects sommelier never destroys."""
    if not shutil.which("weston-debug"):
        return None
    title = re.compile(r"client (0x[0-9a-f]+) rq xdg_toplevel@\d+\.set_title\(\"churn\"\)")
    log = env.path("churn-proto-%d.txt" % c.cycles)
    tap = env.spawn(["weston-debug", "-o", log, "proto"], "weston-debug",
                    display=WESTON_SOCKET)
    try:
        # Subscribed once our own requests show in it.
        for _ in range(200):
            c.cycle()
            if title.search(read_text(log)):
                break
        for _ in range(cycles):
            c.cycle()
    finally:
        env.stop(tap)
    text = read_text(log)
    m = title.search(text)
    check(m, "weston-debug proto logged no toplevel of ours: %s" % env.log_tail(tap))
    ours = " client %s " % m.group(1)
    ids = set()
    for line in text.splitlines():
        if ours in line:
            for named, deleted in re.findall(r"@(\d+)|delete_id\((\d+)\)", line):
                ids.add(int(named or deleted))
    return max(i for i in ids if i < 0xff000000)  # client-made ids only


def churn_run(env, name, options, memfd):
    """ChurnClient through a sommelier --parent with OPTIONS, on one
    connection: CHURN_WARMUP cycles, then CHURN_CYCLES between two
    measures of sommelier's and sommelier-host's fds, threads and RSS.
    Returns the result's text."""
    parent = env.start_parent(name, *options)
    pids = {"sommelier": parent.pid, "sommelier-host": env.host.pid}
    c = None
    try:
        c = churn_cycles(env.path(name), CHURN_WARMUP, memfd)
        host_ids0 = host_ids_in_use(env, c)
        c.drain()
        time.sleep(0.3)
        state0 = {pid: fds_threads(pid) for pid in pids.values()}
        rss0 = {pid: rss_kib(pid) for pid in pids.values()}
        weston0, top0 = rss_kib(env.weston.pid), c.top
        deleted0 = sum(c.deleted.values())
        discarded0 = c.events[("wp_presentation_feedback", 2)]
        extra0 = c.extra_roundtrips
        start = time.monotonic()
        for _ in range(CHURN_CYCLES):
            c.cycle()
        took = time.monotonic() - start
        deleted = sum(c.deleted.values()) - deleted0
        discarded = c.events[("wp_presentation_feedback", 2)] - discarded0
        roundtrips = 3 * CHURN_CYCLES + c.extra_roundtrips - extra0
        host_ids1 = host_ids_in_use(env, c)
        c.drain()  # also the last round trip: the connection still works
        state1 = settle(pids.values(), state0, 3.0)
        rss1 = {pid: rss_kib(pid) for pid in pids.values()}
        weston1 = rss_kib(env.weston.pid)
        check(parent.poll() is None, lambda: "sommelier --parent died: %s" %
              env.log_tail(parent))
        died = host_death(env)
        check(not died, lambda: died)
        text = ("%s: %d cycles of %.1f objects in %.1f s (%.2f ms each, %d round trips), "
                "every client object's delete_id came (%d), ids reused (highest %d->%d; "
                "on the host %s), %d feedbacks discarded; %s; weston rss %d->%d KiB" % (
                    name, CHURN_CYCLES, deleted / CHURN_CYCLES, took,
                    took * 1000 / CHURN_CYCLES, roundtrips,
                    deleted, top0, c.top, "not seen: no weston-debug" if host_ids0 is None
                    else "%d->%d" % (host_ids0, host_ids1), discarded,
                    "; ".join("%s fds %d->%d threads %d->%d rss %d->%d KiB" % (
                        n, state0[pid][0], state1[pid][0], state0[pid][1], state1[pid][1],
                        rss0[pid], rss1[pid]) for n, pid in pids.items()),
                    weston0, weston1))
        problems = []
        if state1 != state0:
            problems.append("fds or threads changed")
        if host_ids0 is not None and host_ids1 > host_ids0 + CHURN_HOST_ID_SLACK:
            problems.append("sommelier's host ids climb (host objects it never destroys)")
        fat = [n for n, pid in pids.items() if rss1[pid] - rss0[pid] > CHURN_RSS_KIB]
        if fat:
            problems.append("RSS of %s grew by more than %d KiB" % (" and ".join(fat),
                                                                  CHURN_RSS_KIB))
        # weston's own RSS is only reported: it keeps closed windows a
        # while to fade them out, so its high-water mark depends on speed.
        check(not problems, lambda: "%s: %s" % ("; ".join(problems), text))
        return text
    finally:
        if c:
            c.close()
        env.stop(parent)


def test_object_churn_no_growth(env):
    """One client on one connection creates and destroys a mix of objects
    over and over (ChurnClient.cycle: a mapped toplevel with a popup, a
    viewport and frame callbacks; an shm pool from a memfd and buffers on
    three surfaces; a region, an inert subsurface, a data source,
    presentation feedback discarded with its surface, the output bound
    again with its xdg-output), through a --parent on the default path
    and one with --shm-copy (on virtgpu both copy). Straight to weston
    first, so that the cycles are known to be right. A pair sommelier
    keeps shows: the client waits for every delete_id and reuses ids as
    libwayland does; the host ids sommelier uses, in weston's protocol
    log, must not climb (host objects it never destroys); sommelier's and
    sommelier-host's fds and threads must come back to where they were and
    their RSS grow by less than CHURN_RSS_KIB."""
    memfd = os.memfd_create("sml-e2e-churn", os.MFD_CLOEXEC)
    try:
        os.ftruncate(memfd, CHURN_POOL)
        direct = churn_cycles(env.path(WESTON_SOCKET), 20, memfd)
        direct.close()
        return " | ".join(churn_run(env, name, options, memfd) for name, options in (
            ("default path", ()), ("--shm-copy", ("--shm-copy",))))
    finally:
        os.close(memfd)


def lingering_socket(seconds):
    """A TCP socket whose last close waits `seconds` (SO_LINGER, a full send
    buffer, a peer that does not read), and that peer."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.connect(lst.getsockname())
    peer, _ = lst.accept()
    lst.close()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, seconds))
    s.setblocking(False)
    try:
        while True:
            s.send(b"x" * 65536)
    except BlockingIOError:
        pass
    return s, peer


# A client's fd whose last close blocks (a socket that lingers) is closed off
# sommelier's loop: the other clients are served meanwhile.
def test_lingering_client_fd(env):
    name = "sml-linger"
    parent = env.start_parent(name)
    bystander = RawClient(env.path(name))
    _, status, _ = registry_of(bystander)
    check(status == "done", "bystander's registry: %s" % status)
    c = RawClient(env.path(name))
    globals_, status, _ = registry_of(c)
    check(status == "done" and "wl_shm" in globals_, "registry: %s" % status)
    c.send(2, 0, struct.pack("=I", globals_["wl_shm"][0]) + wl_string("wl_shm") +
           struct.pack("=II", 1, 4))
    s, peer = lingering_socket(10)
    # wl_shm.create_pool with the socket as its memory: the fd and the first
    # bytes, our copy closed, then the rest (sommelier's is the last copy).
    msg = struct.pack("=II", 4, (16 << 16) | 0) + struct.pack("=Ii", 5, 4096)
    socket.send_fds(c.sock, [msg[:8]], [s.fileno()])
    s.close()
    time.sleep(0.1)
    c.sock.sendall(msg[8:])
    time.sleep(0.3)
    start = time.monotonic()
    status, _ = bystander.roundtrip(4)
    took = time.monotonic() - start
    peer.close()
    numbers = "a bystander's round trip while a client's socket lingers: %.1f ms" % (took * 1000)
    check(status == "done" and took < 2.0, numbers)
    check(parent.poll() is None, "sommelier died: %s" % env.log_tail(parent))
    c.close()
    bystander.close()
    env.stop(parent)
    return numbers

def bind_shm(c, shm_id):
    """Binds wl_shm as SHM_ID on a fresh RawClient after its registry round
    trip (registry 2, callback 3)."""
    globals_, status, detail = registry_of(c)
    check(status == "done" and "wl_shm" in globals_, "registry: %s %s" % (status, detail))
    c.send(2, 0, struct.pack("=I", globals_["wl_shm"][0]) + wl_string("wl_shm") +
           struct.pack("=II", 1, shm_id))  # wl_registry.bind


def unoffered_format(path):
    """wl_shm_pool.create_buffer in RGB888 (weston 10 does not offer it):
    the error, as (object, code, message), or a status."""
    c = RawClient(path)
    memfd = os.memfd_create("sml-e2e-format", os.MFD_CLOEXEC)
    try:
        os.ftruncate(memfd, 65536)
        bind_shm(c, 4)
        c.roundtrip(5)  # the formats, as a client would wait for them
        c.send(4, 0, struct.pack("=Ii", 6, 65536), fds=[memfd])  # create_pool
        c.send(6, 0, struct.pack("=IiiiiI", 7, 0, 16, 16, 64, 0x34324752))  # create_buffer
        status, detail = c.roundtrip(8)
        return detail if status == "error" else status
    finally:
        os.close(memfd)
        c.close()


def test_copy_unoffered_format(env):
    """A format the copy path could carry but the host compositor does not
    offer: the client gets weston's error (invalid format, on its pool), not
    an error about an object it never destroyed (the host's error would
    come on the host pool sommelier made and dropped for the copy)."""
    direct = unoffered_format(env.path(WESTON_SOCKET))
    check(isinstance(direct, tuple) and direct[:2] == (6, 0),
          "straight to weston: %s, want invalid_format on the pool" % (direct,))
    name = "sml-format"
    parent = env.start_parent(name, "--shm-copy")
    got = unoffered_format(env.path(name))
    env.stop(parent)
    check(isinstance(got, tuple) and got[:2] == (6, 0) and "not offered" in got[2],
          "through --shm-copy: %s, want invalid_format on the pool as weston says %s" %
          (got, direct))
    return "weston: %s; through --shm-copy: %s" % (direct[2], got[2])


def test_refused_fd_named(env):
    """A client fd that cannot cross (a socket, as a wl_shm pool) ends that
    client with an error that says so, not with a lost host connection.
    On virtgpu the copy path maps the pool itself and refuses it there."""
    name = "sml-bad-fd"
    parent = env.start_parent(name)
    c = RawClient(env.path(name))
    a, b = socket.socketpair()
    try:
        bind_shm(c, 4)
        c.send(4, 0, struct.pack("=Ii", 5, 4096), fds=[a.fileno()])  # create_pool
        status, detail = c.roundtrip(6)
    finally:
        a.close()
        b.close()
        c.close()
    want = "cannot map the pool" if VIRTGPU else \
        "the client sent an fd that is neither memory nor a pipe's write end"
    check(status == "error" and want in detail[2], "a socket as a pool: %s %s, want an error "
          "saying %r" % (status, detail, want))
    check(parent.poll() is None, "sommelier died: %s" % env.log_tail(parent))
    env.stop(parent)
    return "error %d on object %d: %s" % (detail[1], detail[0], detail[2])


# Globals sml-chaos leaves alone: weston 10 crashes on their random requests,
# with or without a proxy in between. libweston-desktop: a wl_surface
# destroyed under its xdg_surface, then xdg_surface.ack_configure (found with
# sml-chaos --seed=2 straight against weston). libweston: a wl_subsurface
# whose parent wl_surface was destroyed, then place_below (five requests
# straight against weston reproduce it).
CHAOS_SKIP = "xdg_wm_base,zxdg_shell_v6,wl_subcompositor"
CHAOS_SEEDS = (1, 2, 3, 4, 5, 6)


def run_chaos(env, name, seed):
    """sml-chaos's summary counts, after 300 sessions on --parent NAME."""
    argv = [CHAOS_BIN, "--seed=%d" % seed, "--sessions=300", "--requests=1000",
            "--skip=" + CHAOS_SKIP]
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env.env(WAYLAND_DISPLAY=name),
                         timeout=120, start_new_session=True)
    text = out.stdout.decode(errors="replace")
    check(out.returncode == 0, "sml-chaos --seed=%d through %s: status %d: %s %s" % (
        seed, name, out.returncode, text.strip(), out.stderr.decode(errors="replace")[-300:]))
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def test_random_requests(env):
    """sml-chaos (tests/guest/chaos_client.c) sends random requests of every
    global's objects, with arguments at the edges and fds of every kind, 300
    sessions per seed, through a --parent on each buffer path (virtgpu: the
    copy path only). Most sessions
    end in a protocol error from sommelier or from weston; none may end
    sommelier, sommelier-host or another client: afterwards both parents
    still serve wayland-info, and their fds and sommelier-host's are back to
    where they were."""
    # On virtgpu the copy path is the only one.
    parents = {"sml-chaos-copy": env.start_parent("sml-chaos-copy", "--shm-copy")}
    if not VIRTGPU:
        parents["sml-chaos"] = env.start_parent("sml-chaos")
    pids = [p.pid for p in parents.values()] + [env.host.pid]
    time.sleep(0.2)
    state0 = settle(pids, {pid: fds_threads(pid) for pid in pids}, 0.5)
    totals = {}
    for seed in CHAOS_SEEDS:
        for name, p in parents.items():
            counts = run_chaos(env, name, seed)
            check(p.poll() is None, "sommelier --parent %s died on sml-chaos --seed=%d: %s" %
                  (name, seed, env.log_tail(p)))
            check(env.weston.poll() is None, "weston died on sml-chaos --seed=%d through %s "
                  "(if weston's own bug, it takes the same requests straight: replay them "
                  "with WAYLAND_DEBUG=client through a sommelier --parent; straight to weston "
                  "the client sees other globals and sends others)" % (seed, name))
            for k, v in counts.items():
                totals.setdefault(name, {}).setdefault(k, 0)
                totals[name][k] += v
    for name, t in totals.items():
        check(t.get("sessions") == 300 * len(CHAOS_SEEDS) and t.get("requests", 0) > 5000,
              "%s: sml-chaos ran too little: %s" % (name, t))
        check(t.get("starts", 0) > 300 and t.get("attaches", 0) > 100 and
              t.get("commits", 0) > 100,
              "%s: too few buffers committed to test the buffer paths: %s" % (name, t))
        check(t.get("hangups", 1) == 0, "%s: sessions ended without a protocol error: %s" %
              (name, t))
        run_wayland_info(env, ["wayland-info"], env.env(WAYLAND_DISPLAY=name))
    state1 = settle(pids, state0, 5.0)
    check(state1 == state0, "fds/threads (sommelier(s), sommelier-host) "
          "%s -> %s" % ([state0[p] for p in pids], [state1[p] for p in pids]))
    for p in parents.values():
        env.stop(p)
    return "; ".join("%s: %d sessions (%d from a drawn surface), %d requests, %d protocol "
                     "errors, %d random attaches of a buffer, %d random commits" % (
                         n, t["sessions"], t["starts"], t["requests"], t["protocol_errors"],
                         t["attaches"], t["commits"]) for n, t in totals.items()) + \
        "; fds (sommelier(s), sommelier-host) %s after" % [state1[p][0] for p in pids]


TESTS = [
    test_globals_match,
    test_direct_and_default_peer,
    test_simple_shm_runs,
    test_pixels_passthrough,
    test_pixels_copy,
    test_pixels_copy_repaint,
    test_pixels_copy_history,
    test_pixels_copy_catch_up,
    test_copy_damage_outside_buffer,
    test_copy_no_growth,
    test_copy_slots,
    test_copy_bursts,
    test_copy_spare_slots,
    test_frame_callback_dies_with_surface,
    test_copy_buffer_named,
    test_copy_kwin_pixels,
    test_output_hotplug,
    test_lingering_client_fd,
    test_fifty_clients_isolation,
    test_no_growth_500_cycles,
    test_out_of_fds,
    test_host_protocol_error,
    test_ring_destroyed_under_context,
    test_copy_unoffered_format,
    test_refused_fd_named,
    test_random_requests,
    test_dmabuf_passthrough,
    test_object_churn_no_growth,
    test_compositor_gone,  # last: it kills weston
]


def main():
    for path, what in ((HOST_BIN, "SML_HOST_BIN"), (GUEST_BIN, "SML_GUEST_BIN"),
                       (PAINT_BIN, "SML_PAINT_BIN"), (CHAOS_BIN, "SML_CHAOS_BIN")):
        if not os.access(path, os.X_OK):
            print("FAIL setup: %s is not executable (set %s or build first)" % (path, what))
            print("0 passed, 1 failed")
            return 1
    if VIRTGPU and not os.access(VGPU_LIB, os.R_OK):
        print("FAIL setup: %s is not readable (set SML_VGPU_EMUL_LIB or build first)" % VGPU_LIB)
        print("0 passed, 1 failed")
        return 1
    print("mode: %s" % ("virtgpu: sommelier --virtgpu-channel, LD_PRELOAD=%s "
                        "(the emulated /dev/dri/renderD128)" % VGPU_LIB if VIRTGPU else
                        "socket device: sommelier --peer=unix:PATH"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # meson's timeout: clean up
    env = Env()
    passed = failed = skipped = 0
    began = time.monotonic()
    try:
        try:
            env.start_weston()
            env.start_host()
        except Exception as e:  # noqa: BLE001 -- report, then clean up
            print("FAIL setup: %s" % e)
            failed += 1
            return 1
        only = [n for n in os.environ.get("SML_E2E_ONLY", "").split(",") if n]
        for test in [t for t in TESTS if not only or t.__name__ in only]:
            name = test.__name__[len("test_"):]
            t0 = time.monotonic()
            try:
                result = test(env)
                # sommelier-host is the boundary every guest shares: whatever
                # a guest does, it must outlive it.
                died = host_death(env)
                check(not died, lambda: "%s; but %s" % (result, died))
                passed += 1
                print("PASS %s (%.1f s, %s): %s" % (name, time.monotonic() - t0, MODE, result))
            except TestSkipped as e:
                skipped += 1
                print("SKIP %s (%s): %s" % (name, MODE, e))
            except TestFailure as e:
                failed += 1
                died = host_death(env)
                print("FAIL %s (%.1f s, %s): %s%s" % (name, time.monotonic() - t0, MODE, e,
                                                      "; " + died if died and died not in str(e)
                                                      else ""))
            except Exception:  # noqa: BLE001 -- one broken test must not hide the others
                failed += 1
                print("FAIL %s (%.1f s, %s): %s" % (name, time.monotonic() - t0, MODE,
                                                    traceback.format_exc().strip().replace("\n", " | ")))
            sys.stdout.flush()
            if env.host.poll() is not None and test is not TESTS[-1]:
                # The next tests need one: a new sommelier-host on the same socket.
                try:
                    env.start_host()
                except TestFailure as e:
                    print("FAIL setup: sommelier-host cannot be restarted: %s" % e)
                    failed += 1
                    break
            if env.weston.poll() is not None and test is not TESTS[-1]:
                print("FAIL setup: weston died during %s (status %s): %s" %
                      (name, env.weston.returncode, env.log_tail(env.weston)))
                failed += 1
                break
    finally:
        env.cleanup()
        print("%d passed, %d failed%s (%.1f s, %s)" % (
            passed, failed, ", %d skipped" % skipped if skipped else "",
            time.monotonic() - began, MODE))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
