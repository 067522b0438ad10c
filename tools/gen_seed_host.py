#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz/fuzz_host.c: guest sessions as streams of
socket device messages after the HELLO that the harness sends itself. The
harness attaches a memfd to every GUEST blob request and plays a compositor
that sends a memfd (item 1) and a write pipe (item 2) to each connection.

usage: tools/gen_seed_host.py [OUTDIR]  (default fuzz/corpus/host)
"""
import os
import struct
import sys

CONTEXT_INIT, CONTEXT_DESTROY, CREATE_BLOB, RESOURCE_DESTROY = 3, 4, 5, 6
EXECBUFFER, WAIT, RESOURCE_INFO = 7, 8, 9
FLAG_REPLY, RING_IDX = 1, 4
GUEST, HOST3D = 1, 2
INIT, GIR, POLL, SEND, WRITE = 1, 2, 3, 4, 7
BLOB, READ_PIPE = 1, 3


def msg(mtype, body=b"", seq=1, ctx=1, flags=0, fds=0):
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<HBBIII", mtype, flags, fds, 16 + len(body), seq, ctx) + body


def cd(cmd, rest):
    return struct.pack("<BBHI", cmd, 0, 8 + len(rest), 0) + rest


def send(data, ids=()):
    idents = [i for i, _ in ids] + [0] * (28 - len(ids))
    types = [t for _, t in ids] + [0] * (28 - len(ids))
    rest = struct.pack("<II", len(ids), len(data))
    rest += struct.pack("<28I", *idents) + struct.pack("<28I", *types)
    rest += struct.pack("<28I", *([0] * 28)) + data
    return cd(SEND, rest)


def write(ident, data, hang_up):
    return cd(WRITE, struct.pack("<IIII", ident, int(hang_up), len(data), 0) + data)


def execbuffer(seq, cmd, handles=(), ring=None, ctx=1):
    flags, idx = (RING_IDX, ring) if ring is not None else (0, 0)
    body = struct.pack("<IIII", flags, idx, len(handles), len(cmd))
    body += struct.pack("<%dI" % len(handles), *handles) + cmd
    return msg(EXECBUFFER, body, seq=seq, ctx=ctx, flags=FLAG_REPLY)


def blob(seq, mem, size, blob_id=0, ctx=1):
    body = struct.pack("<IIQQII", mem, 3, size, blob_id, 0, 0)
    return msg(CREATE_BLOB, body, seq=seq, ctx=ctx, fds=1 if mem == GUEST else 0)


def context_init(seq, ctx=1):
    params = [(1, 5), (2, 2), (3, 1 << 1)]
    body = struct.pack("<II", len(params), 0)
    body += b"".join(struct.pack("<QQ", p, v) for p, v in params)
    return msg(CONTEXT_INIT, body, seq=seq, ctx=ctx, flags=FLAG_REPLY)


def wl(obj, opcode, *words):
    return struct.pack("<II", obj, (8 + 4 * len(words)) << 16 | opcode) + \
        struct.pack("<%dI" % len(words), *words)


def setup(ctx=1, seq=10, rings=(1, 2)):
    return (context_init(seq, ctx) + blob(seq + 1, GUEST, 4096, ctx=ctx) +
            blob(seq + 2, GUEST, 4096, ctx=ctx) +
            execbuffer(seq + 3, cd(INIT, struct.pack("<III", *rings, 1)), ctx=ctx))


poll = execbuffer(30, cd(POLL, struct.pack("<Q", 0)), ring=1)
poll2 = execbuffer(36, cd(POLL, struct.pack("<Q", 0)), (1,), ring=1)
gir = execbuffer(31, cd(GIR, struct.pack("<IIII", 64, 64, 0x34325241, 0x11)), (1,), ring=0)
registry = execbuffer(32, send(wl(1, 1, 2) + wl(1, 0, 3)))

seeds = {
    "setup": setup(),
    "setup_poll": setup() + poll,
    "image": setup() + gir + msg(WAIT, struct.pack("<II", 1, 0), seq=33) +
    blob(34, HOST3D, 4096, blob_id=1) + msg(RESOURCE_INFO, struct.pack("<II", 4, 0), seq=35),
    "registry": setup() + registry + poll,
    "claim_and_write": setup() + poll + blob(40, HOST3D, 4096, blob_id=1) +
    execbuffer(41, write(2, b"clipboard", False)) + execbuffer(42, write(2, b"", True)),
    "read_pipe": setup() + execbuffer(43, send(wl(5, 1, 1), [(0x80000001, READ_PIPE)])) + poll,
    "shm_pool": setup() + blob(44, GUEST, 8192) +
    execbuffer(45, send(wl(4, 0, 5, 8192), [(3, BLOB)])),
    "two_contexts": setup() + setup(ctx=2, seq=50, rings=(3, 4)) + poll +
    execbuffer(60, cd(POLL, struct.pack("<Q", 0)), ring=1, ctx=2),
    "ring_destroyed": setup() + poll + msg(RESOURCE_DESTROY, struct.pack("<II", 2, 0), seq=72,
                                           flags=FLAG_REPLY) + registry,
    "teardown": setup() + msg(RESOURCE_DESTROY, struct.pack("<II", 1, 0), seq=70,
                              flags=FLAG_REPLY) + msg(CONTEXT_DESTROY, seq=71, flags=FLAG_REPLY),
    # A second POLL after a read pipe was made: the pipe is read.
    "two_polls_read_pipe": setup() + execbuffer(43, send(wl(5, 1, 1), [(0x80000001, READ_PIPE)])) +
    poll + poll2,
    # Three bytes more (fuzz_host.c: a quiet compositor, the guest hanging
    # up before teardown): the second POLL stays pending, so ring 1 is busy
    # and the WAIT queues; teardown's reply to it once ended the connection
    # a second time, after it was freed.
    "wait_busy_hangup": setup() + poll + poll2 + msg(WAIT, struct.pack("<II", 1, 0), seq=37) +
    b"\0\0\0",
}

out = sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/host"
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(seeds), out))
