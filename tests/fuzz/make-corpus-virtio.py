#!/usr/bin/env python3
"""Writes the seed corpus of fuzz-virtio.c (tests/fuzz/corpus-virtio): for each
device, a driver that negotiates VERSION_1, sets up queues in the RAM window,
puts a small descriptor chain (readable then writable) on every queue and
kicks it, plus a register sweep; and for the block, network and entropy
devices, well-formed requests of each kind (for the gpu: the commands
Linux sends to bring up a console and draw on it). Usage: make-corpus-virtio.py OUTDIR"""
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


def chains(kind, q, requests):
    """One queue with a chain per request: (readable bytes, writable length) pairs."""
    p = bytes([kind])
    p += bytes([4]) + struct.pack("<Q", (1 << 32) | 0xffffffff) + b"\x00"
    p += queue(q, 16, 0, 0x1000, 0x1800)
    descs, heads, data_off, i = b"", [], 0x2000, 0
    for parts in requests:
        heads.append(i)
        for n, (readable, wlen) in enumerate(parts):
            length = len(readable) if readable is not None else wlen
            if readable is not None:
                p += ram(data_off, readable)
            flags = (1 if n + 1 < len(parts) else 0) | (2 if readable is None else 0)
            descs += struct.pack("<QIHH", WINDOW + data_off, length, flags, i + 1)
            data_off += max(length, 16)
            i += 1
    p += ram(0, descs)
    p += ram(0x1000, struct.pack("<HH", 0, len(heads)) + b"".join(struct.pack("<H", h) for h in heads))
    p += bytes([5, q]) + bytes([6, 0, 0, 0, 0, 0])
    return p


def blk_requests():
    def hdr(t, sector):
        return struct.pack("<IIQ", t, 0, sector)
    return [
        [(hdr(0, 0), 0), (None, 512), (None, 1)],                              # IN
        [(hdr(1, 1), 0), (bytes(range(256)) * 2, 0), (None, 1)],                # OUT
        [(hdr(4, 0), 0), (None, 1)],                                            # FLUSH
        [(hdr(8, 0), 0), (None, 20), (None, 1)],                                # GET_ID
        [(hdr(11, 0), 0), (struct.pack("<QII", 2, 4, 0), 0), (None, 1)],        # DISCARD
        [(hdr(13, 0), 0), (struct.pack("<QII", 8, 1, 1), 0), (None, 1)],        # WRITE_ZEROES, unmap
    ]


def net_requests():
    frame = bytes(12) + bytes([0xff] * 6) + bytes([0x52, 0x54, 0, 0x12, 0x34, 0x56]) + b"\x08\x06" + bytes(28)
    return [[(frame, 0)], [(bytes(12), 0), (frame[12:], 0)]]


def gpu_requests():
    def hdr(t, flags=0):
        return struct.pack("<IIQIB3x", t, flags, 7 if flags else 0, 0, 0)
    backing = WINDOW + 0x8000
    return [
        [(hdr(0x100), 0), (None, 408)],                                                 # GET_DISPLAY_INFO
        [(hdr(0x101) + struct.pack("<IIII", 1, 2, 16, 16), 0), (None, 24)],             # RESOURCE_CREATE_2D
        [(hdr(0x106) + struct.pack("<IIQII", 1, 1, backing, 1024, 0), 0), (None, 24)],  # ATTACH_BACKING
        [(hdr(0x103) + struct.pack("<IIIIII", 0, 0, 16, 16, 0, 1), 0), (None, 24)],     # SET_SCANOUT
        [(hdr(0x105, 1) + struct.pack("<IIIIQII", 0, 0, 16, 16, 0, 1, 0), 0), (None, 24)],  # TRANSFER, fenced
        [(hdr(0x104) + struct.pack("<IIIIII", 2, 2, 8, 8, 1, 0), 0), (None, 24)],       # RESOURCE_FLUSH
        [(hdr(0x107) + struct.pack("<II", 1, 0), 0), (None, 24)],                       # DETACH_BACKING
        [(hdr(0x102) + struct.pack("<II", 1, 0), 0), (None, 24)],                       # RESOURCE_UNREF
    ]


def sweep(kind):
    p = bytes([kind])
    for r in range(40):
        p += bytes([1, r, 0]) + bytes([0, r, 0]) + struct.pack("<I", 0xffffffff)
    return p + bytes([0x87])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for kind, name, queues in [(0, "empty", 0), (1, "echo", 2), (2, "keyboard", 2), (3, "tablet", 2),
                               (4, "console", 6), (5, "blk", 1), (6, "net", 2), (7, "rng", 1), (8, "gpu", 2)]:
        with open(os.path.join(out, f"{name}-driver"), "wb") as f:
            f.write(driver(kind, queues))
        with open(os.path.join(out, f"{name}-sweep"), "wb") as f:
            f.write(sweep(kind))
    with open(os.path.join(out, "blk-requests"), "wb") as f:
        f.write(chains(5, 0, blk_requests()))
    with open(os.path.join(out, "net-transmit"), "wb") as f:
        f.write(chains(6, 1, net_requests()))
    with open(os.path.join(out, "net-receive"), "wb") as f:
        # Receive buffers on queue 0, then a frame from the host (host call 0, length 60).
        f.write(chains(6, 0, [[(None, 1526)], [(None, 64), (None, 64)]]) + bytes([6, 0]) + struct.pack("<I", 60))
    with open(os.path.join(out, "rng-requests"), "wb") as f:
        f.write(chains(7, 0, [[(None, 64)], [(None, 16), (None, 4096)], [(bytes(8), 0)]]))
    with open(os.path.join(out, "gpu-requests"), "wb") as f:
        f.write(chains(8, 0, gpu_requests()))


if __name__ == "__main__":
    main()
