#!/usr/bin/env python3
"""Why the journal preallocates by zero-filling: one 700 B pwrite + fdatasync at a time, for 2 s,
into (a) a file that grows (every sync also writes the size), (b) a 16 MiB zero-filled file
overwritten in place, (c) a 16 MiB posix_fallocate'd file (unwritten extents: the first write to
each block is a metadata change). Three rounds, alternated, so the ratios hold on a loaded machine.
It writes only under --dir (default /tmp/journal-probe) and removes what it made.
Usage: python3 benches/journal_probe.py [--dir DIR]
"""
import argparse
import os
import time

REC = b"x" * 700
SIZE = 16 << 20


def run(dir_, mode, secs=2.0):
    p = os.path.join(dir_, f"f_{mode}")
    if os.path.exists(p):
        os.unlink(p)
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    if mode == "zero":
        os.write(fd, b"\0" * SIZE)
        os.fsync(fd)
    elif mode == "falloc":
        os.posix_fallocate(fd, 0, SIZE)
        os.fsync(fd)
    off = n = 0
    t0 = time.perf_counter()
    while time.perf_counter() < t0 + secs:
        os.pwrite(fd, REC, off)
        off += len(REC)
        os.fdatasync(fd)
        n += 1
    rate = n / (time.perf_counter() - t0)
    os.close(fd)
    os.unlink(p)
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/journal-probe")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    for _ in range(3):
        print("  ".join(f"{m} {run(args.dir, m):.0f}/s" for m in ("append", "zero", "falloc")),
              flush=True)
    os.rmdir(args.dir)


if __name__ == "__main__":
    main()
