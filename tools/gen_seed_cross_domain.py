#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the cross-domain fuzz seed corpus (fuzz/corpus/cross_domain/).

Layouts follow doc/cross-domain.md. Run from anywhere; files are rewritten.
"""
import os
import struct
import sys

MAX_IDS = 28
WL_SYNC = struct.pack("<IHH", 1, 0, 12) + struct.pack("<I", 2)  # wl_display.sync


def hdr(cmd, size):
    return struct.pack("<BBHI", cmd, 0, size, 0)


def init(query=1, channel=2, kind=1):
    return hdr(1, 20) + struct.pack("<III", query, channel, kind)


def init_legacy():
    return hdr(1, 16) + struct.pack("<II", 1, 1)


def init_long(size):
    return hdr(1, size) + struct.pack("<III", 1, 2, 1) + bytes(size - 20)


def gir():
    return hdr(2, 24) + struct.pack("<IIII", 640, 480, 0x34325258, 0x11)


def poll():
    return hdr(3, 16) + bytes(8)


def send_receive(cmd, ids, data, in_ring=False):
    def column(i):
        return [entry[i] for entry in ids] + [0] * (MAX_IDS - len(ids))

    size = 0 if in_ring else 352 + len(data)
    body = struct.pack("<II", len(ids), len(data))
    for i in range(3):
        body += struct.pack("<28I", *column(i))
    return hdr(cmd, size) + body + data


def read_write(cmd, ident, hang_up, data, in_ring=False):
    size = 0 if in_ring else 24 + len(data)
    return (hdr(cmd, size) + struct.pack("<IIII", ident, hang_up, len(data), 0)
            + data)


SEEDS = {
    "init": init(),
    "init_legacy": init_legacy(),
    "init_libkrun24": init_long(24),
    "init_rutabaga36": init_long(36),
    "gir": gir(),
    "poll": poll(),
    "send_empty": send_receive(4, [], b""),
    "send_blob": send_receive(4, [(7, 1, 8192)], WL_SYNC),
    "send_max_ids": send_receive(4, [(i, 1 + i % 4, 4096) for i in range(28)],
                                 WL_SYNC * 3),
    "write_hang_up": read_write(7, 0x80000001, 1, b""),
    "receive_ring": send_receive(5, [(9, 4, 0)], WL_SYNC, in_ring=True),
    "read_ring": read_write(6, 0x80000001, 0, b"text/plain", in_ring=True),
    "sequence": init() + gir() + send_receive(4, [], WL_SYNC)
    + read_write(7, 0x80000002, 0, b"abcd") + poll(),
    "bad_cmd_size_zero": hdr(3, 0) + bytes(8),
    "bad_fork_cmd": hdr(8, 16) + bytes(8),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "fuzz", "corpus", "cross_domain")
    os.makedirs(out, exist_ok=True)
    for name, blob in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
    print(f"{len(SEEDS)} seeds in {os.path.normpath(out)}", file=sys.stderr)


if __name__ == "__main__":
    main()
