#!/usr/bin/env python3
"""Compares two files written by cuda_op_dump, op by op.

Each line is an op: its name, the relative tolerance two backends must agree
to (0: bit for bit) and its output values in hex-float notation. For each op
the relative error ||other - ref|| / ||ref|| (absolute when ref is all zero)
must be within the tolerance; a NaN in one and not the other fails, as do
missing ops and differing lengths. Prints one row per op and exits 1 if any
disagree.

usage: compare_ops.py REF_FILE OTHER_FILE
"""
import math
import sys


def load(path):
    ops, header = {}, ""
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                header = line[1:].strip()
                continue
            parts = line.split()
            if len(parts) < 2:
                continue
            ops[parts[0]] = (float(parts[1]), [float.fromhex(v) for v in parts[2:]])
    return header, ops


def rel_err(ref, other):
    num = den = 0.0
    for r, o in zip(ref, other):
        if math.isnan(r) or math.isnan(o):
            if not (math.isnan(r) and math.isnan(o)):
                return math.inf
            continue
        num += (o - r) ** 2
        den += r * r
    return math.sqrt(num / den) if den > 0 else math.sqrt(num)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    ref_head, ref = load(sys.argv[1])
    oth_head, oth = load(sys.argv[2])
    print(f"reference: {ref_head}\nother:     {oth_head}")
    bad = 0
    for name, (tol, rv) in ref.items():
        if name not in oth:
            print(f"FAIL {name}: missing from {sys.argv[2]}")
            bad += 1
            continue
        ov = oth[name][1]
        if len(ov) != len(rv):
            print(f"FAIL {name}: {len(ov)} values, expected {len(rv)}")
            bad += 1
            continue
        if tol == 0:
            same = all(r == o or (math.isnan(r) and math.isnan(o)) for r, o in zip(rv, ov))
            ok, shown = same, "bit for bit" if same else "values differ"
        else:
            err = rel_err(rv, ov)
            ok, shown = err <= tol, f"rel err {err:.3g} (tolerance {tol:.3g})"
        print(f"{'ok  ' if ok else 'FAIL'} {name} [{len(rv)}]: {shown}")
        bad += not ok
    for name in oth:
        if name not in ref:
            print(f"FAIL {name}: not in {sys.argv[1]}")
            bad += 1
    print(f"compare_ops: {len(ref) - bad if bad <= len(ref) else 0} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
