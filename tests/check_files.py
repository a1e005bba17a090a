#!/usr/bin/env python3
"""Checks the files dlab-gpu writes, with the standard library only.

  check_files.py png FILE [--size WxH] [--colors RRGGBB,...]
      a PNG of that size whose pixels are not all background: at least 2% of
      them differ from white, and each listed colour covers at least 30
      pixels (within a small tolerance, for anti-aliasing)
  check_files.py svg FILE
      well-formed XML whose root element is <svg>
Exit status 0 when every check holds; otherwise one line per failure.
"""
import struct
import sys
import xml.etree.ElementTree as ET
import zlib


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("no PNG signature")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    if ihdr is None:
        raise ValueError("no IHDR chunk")
    if pos == 8 or kind != b"IEND":
        raise ValueError("no IEND chunk: truncated file")
    w, h, depth, ctype, _, _, interlace = ihdr
    channels = {2: 3, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unexpected PNG format: depth {depth}, colour type {ctype}, interlace {interlace}")
    raw = zlib.decompress(idat)
    stride = w * channels
    rows, prev, at = [], bytearray(stride), 0
    for _ in range(h):
        ftype, line = raw[at], bytearray(raw[at + 1:at + 1 + stride])
        at += 1 + stride
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            x = line[i]
            if ftype == 1:
                x += a
            elif ftype == 2:
                x += b
            elif ftype == 3:
                x += (a + b) // 2
            elif ftype == 4:
                x += paeth(a, b, c)
            line[i] = x & 0xFF
        rows.append(line)
        prev = line
    return w, h, channels, rows


def check_png(path, args):
    errors = []
    w, h, ch, rows = read_png(path)
    if "--size" in args:
        want = args[args.index("--size") + 1]
        if f"{w}x{h}" != want:
            errors.append(f"{path}: {w}x{h}, expected {want}")
    colors = []
    if "--colors" in args:
        colors = [tuple(int(c[i:i + 2], 16) for i in (0, 2, 4))
                  for c in args[args.index("--colors") + 1].split(",")]
    counts = [0] * len(colors)
    non_bg = 0
    for line in rows:
        for x in range(0, w * ch, ch):
            r, g, b = line[x], line[x + 1], line[x + 2]
            if ch == 4 and line[x + 3] < 128:
                continue  # transparent: shows the background
            if r < 245 or g < 245 or b < 245:
                non_bg += 1
            for k, (cr, cg, cb) in enumerate(colors):
                if abs(r - cr) <= 12 and abs(g - cg) <= 12 and abs(b - cb) <= 12:
                    counts[k] += 1
    if non_bg < 0.02 * w * h:
        errors.append(f"{path}: only {non_bg} of {w * h} pixels differ from the background")
    for (cr, cg, cb), n in zip(colors, counts):
        if n < 30:
            errors.append(f"{path}: colour #{cr:02x}{cg:02x}{cb:02x} covers {n} pixels")
    return errors


def check_svg(path):
    root = ET.parse(path).getroot()
    if not root.tag.endswith("svg"):
        return [f"{path}: root element is {root.tag}"]
    return []


def main(argv):
    kind, path, args = argv[1], argv[2], argv[3:]
    try:
        errors = check_png(path, args) if kind == "png" else check_svg(path)
    except (ValueError, OSError, zlib.error, ET.ParseError) as e:
        errors = [f"{path}: {e}"]
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
