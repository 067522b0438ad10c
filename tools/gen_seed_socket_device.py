#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz/fuzz_socket_device.c: valid socket device
messages (protocol/socket_device.h), one direction per file.

usage: tools/gen_seed_socket_device.py [OUTDIR]  (default fuzz/corpus/socket_device)
"""
import os
import struct
import sys

MAGIC, VERSION, FD_PASSING = 0x76645373, 1, 1
HELLO, GET_CAPS, CONTEXT_INIT, CONTEXT_DESTROY = 1, 2, 3, 4
CREATE_BLOB, RESOURCE_DESTROY, EXECBUFFER, WAIT, RESOURCE_INFO = 5, 6, 7, 8, 9
REPLY_HELLO, REPLY_CAPS, REPLY_OK, REPLY_RESOURCE = 0x81, 0x82, 0x83, 0x85
REPLY_ERROR, EVENT_FENCE, EVENT_CONTEXT_LOST = 0x8F, 0x90, 0x91
FLAG_REPLY, RING_IDX = 1, 4
GUEST, HOST3D = 1, 2
CD_INIT, CD_GIR, CD_POLL = 1, 2, 3


def msg(mtype, body=b"", seq=1, ctx=0, flags=0, fds=0):
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<HBBIII", mtype, flags, fds, 16 + len(body), seq, ctx) + body


def cd(cmd, rest):
    return struct.pack("<BBHI", cmd, 0, 8 + len(rest), 0) + rest


def execbuffer(seq, cmd, handles=(), ring=None):
    flags, idx = (RING_IDX, ring) if ring is not None else (0, 0)
    body = struct.pack("<IIII", flags, idx, len(handles), len(cmd))
    body += struct.pack("<%dI" % len(handles), *handles) + cmd
    return msg(EXECBUFFER, body, seq=seq, ctx=1)


def blob(seq, mem, size, blob_id=0, cmd=b"", fds=0):
    body = struct.pack("<IIQQII", mem, 3, size, blob_id, len(cmd), 0) + cmd
    return msg(CREATE_BLOB, body, seq=seq, ctx=1, fds=fds)


def error_body(err, req, text):
    return struct.pack("<iHH", err, req, len(text)) + text


hello = msg(HELLO, struct.pack("<IIQ", MAGIC, VERSION, FD_PASSING))
get_caps = msg(GET_CAPS, struct.pack("<II", 5, 0), seq=2)
params = [(1, 5), (2, 2), (3, 1 << 1)]
context_init = msg(CONTEXT_INIT, struct.pack("<II", len(params), 0) + b"".join(
    struct.pack("<QQ", p, v) for p, v in params), seq=3, ctx=1, flags=FLAG_REPLY)
cd_init = cd(CD_INIT, struct.pack("<III", 1, 2, 1))
cd_poll = cd(CD_POLL, struct.pack("<Q", 0))
cd_gir = cd(CD_GIR, struct.pack("<IIII", 64, 64, 0x34325241, 0x11))

seeds = {
    "hello": hello,
    "get_caps": get_caps,
    "context_init": context_init,
    "blob_guest": blob(4, GUEST, 4096, fds=1),
    "blob_host3d": blob(9, HOST3D, 16384, blob_id=1, cmd=cd_gir),
    "execbuffer_init": execbuffer(6, cd_init, handles=(1, 2)),
    "execbuffer_poll": execbuffer(7, cd_poll, ring=1),
    "wait": msg(WAIT, struct.pack("<II", 1, 0), seq=8, ctx=1),
    "resource_info_destroy": msg(RESOURCE_INFO, struct.pack("<II", 3, 0), seq=10, ctx=1)
    + msg(RESOURCE_DESTROY, struct.pack("<II", 3, 0), seq=11, ctx=1)
    + msg(CONTEXT_DESTROY, seq=12, ctx=1),
    "reply_hello": msg(REPLY_HELLO, struct.pack("<IIQ", MAGIC, VERSION, FD_PASSING)),
    "reply_caps": msg(REPLY_CAPS, struct.pack("<II", 5, 16)
                      + struct.pack("<IIII", 1, 1 << 1, 0, 0), seq=2),
    "reply_resource": msg(REPLY_RESOURCE, struct.pack("<IIQ", 3, HOST3D, 16384),
                          seq=9, ctx=1, fds=1),
    "reply_error": msg(REPLY_ERROR, error_body(-2, EXECBUFFER,
                                               b"context init must come first"), seq=4, ctx=9),
    "events": msg(REPLY_OK, seq=3, ctx=1) + msg(EVENT_FENCE, struct.pack("<II", 1, 0), seq=7, ctx=1)
    + msg(EVENT_CONTEXT_LOST, error_body(-71, 0, b"bad cross-domain command"), ctx=1),
    # The start of a session, as the guest sends it (see doc/socket-device.md).
    "session": hello + get_caps + context_init + blob(4, GUEST, 4096, fds=1)
    + blob(5, GUEST, 4096, fds=1) + execbuffer(6, cd_init, handles=(1, 2)) + execbuffer(7, cd_poll, ring=1),
}

outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "fuzz", "corpus", "socket_device")
os.makedirs(outdir, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(outdir, name + ".bin"), "wb") as f:
        f.write(data)
