#!/usr/bin/env python3
"""Writes the seed corpus of fuzz-virtio.c (tests/fuzz/corpus-virtio): for each
device, a driver that negotiates VERSION_1, sets up queues in the RAM window,
puts a small descriptor chain (readable then writable) on every queue and
kicks it, plus a register sweep. Usage: make-corpus-virtio.py OUTDIR"""
import os
import struct
import sys

WINDOW = 0x80010000


def ram(off, data):
    out = b""
    while data:
        chunk, data = data[:255], data[255:]
        out += bytes([2]) + struct.pack("<HB", off, len(chunk)) + chunk
        off += len(chunk)
    return out


def queue(q, num, desc, avail, used):
    return bytes([3, q]) + struct.pack("<HHHH", num, desc, avail, used)


def driver(kind, queues):
    p = bytes([kind])
    p += bytes([4]) + struct.pack("<Q", (1 << 32) | 0xffffffff) + b"\x00"
    for q in range(queues):
        base = 0x2000 * q
        p += queue(q, 8, base, base + 0x1000, base + 0x1800)
        # desc 0: 16 readable bytes at +0xe000, next 1; desc 1: 64 writable bytes at +0xf000.
        descs = struct.pack("<QIHH", WINDOW + 0xe000 + 0x100 * q, 16, 1, 1)
        descs += struct.pack("<QIHH", WINDOW + 0xf000 + 0x100 * q, 64, 2, 0)
        p += ram(base, descs)
        p += ram(base + 0x1000, struct.pack("<HHH", 0, 1, 0))
        p += ram(0xe000 + 0x100 * q, bytes(range(16)))
        p += bytes([5, q])
    p += bytes([6, 0]) + struct.pack("<I", 30) + bytes([6, 5, 0, 0, 0, 0]) + bytes([7])
    return p


def sweep(kind):
    p = bytes([kind])
    for r in range(40):
        p += bytes([1, r, 0]) + bytes([0, r, 0]) + struct.pack("<I", 0xffffffff)
    return p + bytes([0x87])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for kind, name, queues in [(0, "empty", 0), (1, "echo", 2), (2, "keyboard", 2), (3, "tablet", 2),
                               (4, "console", 6)]:
        with open(os.path.join(out, f"{name}-driver"), "wb") as f:
            f.write(driver(kind, queues))
        with open(os.path.join(out, f"{name}-sweep"), "wb") as f:
            f.write(sweep(kind))


if __name__ == "__main__":
    main()
