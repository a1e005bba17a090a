#!/usr/bin/env python3
"""Writes the .npy test files: iris (read from the UCI file) in every layout
the loader accepts, and broken or unsupported arrays.

The bytes are written with the struct module by the format's specification
(numpy.lib.format: magic, version, header length, a dict literal padded with
spaces to a multiple of 64 bytes and a newline, then the data), so the test
needs no numpy. Where numpy is installed, it also writes two files with
numpy.save, and checks that its own files are byte for byte what numpy
writes.

usage: make_npy.py IRIS_DATA OUT_DIR
"""
import struct
import sys
from pathlib import Path


def header(descr, fortran, shape, major=1):
    shape_text = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    d = "{'descr': %r, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape_text)
    if isinstance(descr, str):
        d = d.replace('"', "'")
    prefix = 10 if major == 1 else 12
    pad = -(prefix + len(d) + 1) % 64
    text = (d + " " * pad + "\n").encode("latin-1")
    size = struct.pack("<H", len(text)) if major == 1 else struct.pack("<I", len(text))
    return b"\x93NUMPY" + bytes([major, 0]) + size + text


def data(rows, fmt, fortran):
    order = [[r[j] for r in rows] for j in range(len(rows[0]))] if fortran else rows
    flat = [v for line in order for v in line]
    return struct.pack(fmt[0] + fmt[1] * len(flat), *flat)


def main():
    iris_path, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    iris = [[float(v) for v in line.split(",")[:4]]
            for line in open(iris_path) if line.strip()]
    shape = (len(iris), 4)
    files = {
        "iris_f4_c.npy": header("<f4", False, shape) + data(iris, "<f", False),
        "iris_f8_fortran.npy": header("<f8", True, shape) + data(iris, "<d", True),
        "iris_f8_big_endian_v2.npy": header(">f8", False, shape, 2) + data(iris, ">d", False),
        "iris_f4_fortran_v3.npy": header("<f4", True, shape, 3) + data(iris, "<f", True),
        "bad_int64.npy": header("<i8", False, (3, 2)) + struct.pack("<6q", *range(6)),
        "bad_1d.npy": header("<f8", False, (6,)) + struct.pack("<6d", *range(6)),
        "bad_3d.npy": header("<f4", False, (2, 3, 4)) + struct.pack("<24f", *range(24)),
        "bad_truncated.npy": (header("<f8", False, (4, 3)) + struct.pack("<12d", *range(12)))[:-5],
        "bad_truncated_header.npy": header("<f4", False, (4, 3))[:40],
        "bad_records.npy": header([("x", "<f4"), ("y", "<f4")], False, (3,))
        + struct.pack("<6f", *range(6)),
        "bad_nan.npy": header("<f8", False, (3, 2))
        + struct.pack("<6d", 1, 2, 3, float("nan"), 5, 6),
        "bad_huge.npy": header("<f8", False, (2, 2)) + struct.pack("<4d", 1, 2, 1e39, 4),
        "bad_extra.npy": header("<f4", False, (2, 2)) + struct.pack("<4f", 1, 2, 3, 4) + b"\0" * 8,
        # fewer extra bytes than one float64: still extra, not missing
        "bad_extra_f8.npy": header("<f8", False, (2, 2)) + struct.pack("<4d", 1, 2, 3, 4) + b"\0" * 4,
        "bad_version.npy": b"\x93NUMPY\x09\x00" + header("<f4", False, (2, 2))[8:]
        + struct.pack("<4f", 1, 2, 3, 4),
    }
    for name, blob in files.items():
        (out / name).write_bytes(blob)
    try:
        import numpy as np
    except ImportError:
        print("make_npy: numpy not installed; wrote %d files with struct" % len(files))
        return
    a = np.array(iris)
    np.save(out / "numpy_iris_f4.npy", a.astype(np.float32))
    np.save(out / "numpy_iris_f8_fortran.npy", np.asfortranarray(a))
    same = (out / "numpy_iris_f4.npy").read_bytes() == files["iris_f4_c.npy"]
    same &= (out / "numpy_iris_f8_fortran.npy").read_bytes() == files["iris_f8_fortran.npy"]
    if not same:
        sys.exit("make_npy: the struct-written files differ from numpy.save's")
    print("make_npy: wrote %d files; numpy %s agrees byte for byte" % (len(files) + 2, np.__version__))


if __name__ == "__main__":
    main()
