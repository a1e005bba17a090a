#!/usr/bin/env python3
"""Checks the result files dlab-gpu writes under --out, with numpy and html5lib.

  check_results.py factors DIR DATA [--no-center] [--seed-index I]
      U, V and column_means reproduce the run's sse_gd on DATA (A - 1 mu^T
      ~ U V^T, in the data's units); the CSVs equal the .npy files; the
      SVD files give the optimal rank-k error and orthonormal columns.
      --seed-index I: the factors are those of model I of summary's seeds.
  check_results.py model DIR DATA
      a numpy forward pass from model.json reproduces predictions.csv, whose
      validation rows give summary.json's confusion matrix and accuracies,
      and whose training rows give the input transform of the preset.
  check_results.py predicted MLP_DIR PREDICT_JSON PREDICT_DIR
      --task predict on the training file agrees with the run: its correct
      count is the run's training and validation counts together, and its
      predictions.csv is the run's without the split column.
  check_results.py html FILE [--svgs N] [--confusion] [--seeds] [--text S]
      strict HTML5 (html5lib fails on any parse error), N inline <svg>
      figures with no id shared between them, nothing fetched, and the
      named sections or text present.
Exit status 0 when every check holds; otherwise the failed assertion.
"""
import csv
import json
import os
import sys

import numpy as np


def load_data(path):
    """The numeric columns as float32, as dlab-gpu's loader reads them, and
    the labels (None without a label column) and header names."""
    rows = [r for r in csv.reader(open(path)) if r and any(f.strip() for f in r)]

    def numeric(f):
        try:
            float(f)
            return True
        except ValueError:
            return False

    header = None
    if not any(numeric(f.strip()) for f in rows[0]):
        header, rows = rows[0], rows[1:]
    labelled = not numeric(rows[0][-1].strip())
    cols = len(rows[0]) - (1 if labelled else 0)
    x = np.array([[float(f) for f in r[:cols]] for r in rows], dtype=np.float32)
    labels = [r[-1].strip() for r in rows] if labelled else None
    return x, labels, header


def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-30)


def check_factors(d, data, args):
    s = json.load(open(f"{d}/summary.json"))
    k, m, n = s["rank"], s["rows"], s["cols"]
    U, V, mu = np.load(f"{d}/U.npy"), np.load(f"{d}/V.npy"), np.load(f"{d}/column_means.npy")
    assert U.dtype == V.dtype == mu.dtype == np.float32, (U.dtype, V.dtype, mu.dtype)
    assert U.shape == (m, k) and V.shape == (n, k) and mu.shape == (n,), (U.shape, V.shape, mu.shape)
    for name, arr in (("U", U), ("V", V)):
        text = np.loadtxt(f"{d}/{name}.csv", delimiter=",", skiprows=1, dtype=np.float32, ndmin=2)
        assert np.array_equal(text, arr), f"{name}.csv differs from {name}.npy"
        head = open(f"{d}/{name}.csv").readline().strip()
        assert head == ",".join(f"{name.lower()}{j + 1}" for j in range(k)), head
    a, _, _ = load_data(data)
    if "--no-center" in args:
        assert not mu.any(), f"column_means with --no-center: {mu}"
    else:
        # The loader subtracts each column's float64 mean rounded to float32.
        assert np.array_equal(mu, a.astype(np.float64).mean(axis=0).astype(np.float32)), mu
    centred = (a - mu).astype(np.float64)  # float32 subtraction, as the program does it
    sse = float(((centred - U.astype(np.float64) @ V.astype(np.float64).T) ** 2).sum())
    i = int(args[args.index("--seed-index") + 1]) if "--seed-index" in args else 0
    seeds = [e["sse_gd"] for e in s["seeds"]]
    assert close(sse, seeds[i], 2e-6), (sse, seeds[i])
    assert i != 0 or close(sse, s["sse_gd"], 2e-6), (sse, s["sse_gd"])
    for j, other in enumerate(seeds):  # the factors are that model's, not another's
        if j != i and not close(other, seeds[i], 2e-5):
            assert not close(sse, other, 2e-6), (j, sse, other)
    if s["sse_svd"] is None:
        assert not os.path.exists(f"{d}/svd_S.npy")
        return
    Uk, S, Vk = np.load(f"{d}/svd_U.npy"), np.load(f"{d}/svd_S.npy"), np.load(f"{d}/svd_V.npy")
    assert Uk.shape == (m, k) and Vk.shape == (n, k) and S.shape == (min(m, n),), (Uk.shape, S.shape, Vk.shape)
    assert np.array_equal(S, np.array(s["singular_values"], dtype=np.float32)), S
    assert np.abs(Uk.T.astype(np.float64) @ Uk - np.eye(k)).max() < 1e-4, "svd_U columns not orthonormal"
    assert np.abs(Vk.T.astype(np.float64) @ Vk - np.eye(k)).max() < 1e-4, "svd_V columns not orthonormal"
    rec = float(((centred - (Uk * S[:k]).astype(np.float64) @ Vk.T) ** 2).sum())
    assert close(rec, s["sse_svd"], 1e-4), (rec, s["sse_svd"])
    assert np.allclose(np.linalg.svd(centred, compute_uv=False), S, rtol=1e-5, atol=1e-5 * S[0])


def read_predictions(path):
    rows = list(csv.reader(open(path)))
    return rows[0], rows[1:]


def forward(model, x):
    """The network in float64 from model.json: x' = (x - mean) / scale,
    h = relu(x' W1 + b1), logits = h W2 + b2, softmax."""
    xs = (x.astype(np.float64) - np.array(model["input_mean"])) / np.array(model["input_scale"])
    (l1, l2) = model["layers"]
    h = np.maximum(xs @ np.array(l1["W"]) + np.array(l1["b"]), 0.0)
    z = h @ np.array(l2["W"]) + np.array(l2["b"])
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return z, p / p.sum(axis=1, keepdims=True)


def check_model(d, data):
    s = json.load(open(f"{d}/summary.json"))
    model = json.load(open(f"{d}/model.json"))
    x, labels, header = load_data(data)
    assert model["format"] == "dlab-gpu-mlp" and model["version"] == 1, model["format"]
    assert model["classes"] == s["class_names"], (model["classes"], s["class_names"])
    assert model["activation"] == "relu"
    F, H, C = s["config"]["features"], s["config"]["hidden"], s["config"]["classes"]
    if header:
        assert model["feature_names"] == header[:F] and model["feature_names_from"] == "header"
    else:
        assert model["feature_names"] == [f"column {j + 1}" for j in range(F)]
    l1, l2 = model["layers"]
    assert np.array(l1["W"]).shape == (F, H) and np.array(l1["b"]).shape == (H,)
    assert np.array(l2["W"]).shape == (H, C) and np.array(l2["b"]).shape == (C,)
    head, rows = read_predictions(f"{d}/predictions.csv")
    assert head == ["row", "split", "label", "predicted"] + [f"p_{c}" for c in model["classes"]], head
    assert [int(r[0]) for r in rows] == list(range(1, len(x) + 1))
    assert [r[2] for r in rows] == labels
    prob = np.array([[float(v) for v in r[4:]] for r in rows])
    z, p = forward(model, x)
    assert np.abs(p - prob).max() < 2e-5, np.abs(p - prob).max()
    # The predicted class is the first largest logit; where numpy's float64
    # logits are too close to tell, the program's float32 choice stands.
    top2 = np.sort(z, axis=1)[:, -2:]
    sure = top2[:, 1] - top2[:, 0] > 1e-4
    pred = [model["classes"].index(r[3]) for r in rows]
    assert (np.array(pred)[sure] == z.argmax(axis=1)[sure]).all(), "predicted class differs"
    split = [r[1] for r in rows]
    n_train, n_val = s["config"]["train"], s["config"]["validation"]
    assert split.count("train") == n_train and split.count("validation") == n_val
    cm = np.zeros((C, C), dtype=int)
    train_ok = 0
    for r, q in zip(rows, pred):
        y = model["classes"].index(r[2])
        if r[1] == "validation":
            cm[y, q] += 1
        else:
            train_ok += y == q
    assert cm.tolist() == s["confusion_matrix"], (cm.tolist(), s["confusion_matrix"])
    assert close(np.trace(cm) / n_val, s["val_accuracy"], 1e-6), (np.trace(cm), s["val_accuracy"])
    assert close(train_ok / n_train, s["train_accuracy"], 1e-6), (train_ok, s["train_accuracy"])
    # The input transform the preset promises: lab, every row's mean and
    # variance; careful, the training rows' mean and standard deviation.
    mean, scale = np.array(model["input_mean"]), np.array(model["input_scale"])
    rows_used = x if s["config"]["preset"] == "lab" else x[[t == "train" for t in split]]
    xd = rows_used.astype(np.float64)
    want = xd.var(axis=0) if s["config"]["preset"] == "lab" else xd.std(axis=0)
    assert np.allclose(mean, xd.mean(axis=0), rtol=1e-12, atol=0), (mean, xd.mean(axis=0))
    assert np.allclose(scale, want, rtol=1e-9, atol=0), (scale, want)


def check_predicted(mlp_dir, predict_json, predict_dir):
    s = json.load(open(f"{mlp_dir}/summary.json"))
    p = json.load(open(predict_json))
    n_train, n_val = s["config"]["train"], s["config"]["validation"]
    want = round(s["train_accuracy"] * n_train) + round(s["val_accuracy"] * n_val)
    assert p["labelled"] and p["rows"] == n_train + n_val, p
    assert p["correct"] == want, (p["correct"], want)
    assert close(p["accuracy"], want / (n_train + n_val), 1e-9), p["accuracy"]
    cm = np.array(p["confusion_matrix"])
    assert cm.sum() == p["rows"] and np.trace(cm) == p["correct"], cm
    assert cm.sum(axis=0).tolist() == p["predicted_counts"], (cm, p["predicted_counts"])
    assert p["class_names"] == s["class_names"]
    head_m, rows_m = read_predictions(f"{mlp_dir}/predictions.csv")
    head_p, rows_p = read_predictions(f"{predict_dir}/predictions.csv")
    assert head_p == head_m[:1] + head_m[2:], (head_p, head_m)
    assert [r[:1] + r[2:] for r in rows_m] == rows_p, "predictions differ from the run's"


def check_undefined(summary_path):
    """A model whose loss is not finite has no accuracy: null for that seed,
    left out of the statistics (counted as non-finite); with the first model
    so, null top-level accuracies and no confusion matrix."""
    s = json.load(open(summary_path))
    seeds = s["seeds"]
    diverged = [t for t in seeds if t["val_loss"] is None or t["train_loss"] is None]
    assert diverged, "no diverged seed: the check would prove nothing"
    for t in seeds:
        if t["train_loss"] is None:
            assert t["train_accuracy"] is None, t
        if t["val_loss"] is None:
            assert t["val_accuracy"] is None, t
        for k in ("train_accuracy", "val_accuracy"):
            assert t[k] is None or 0.0 <= t[k] <= 1.0, t
    for k in ("train_accuracy", "val_accuracy"):
        st, vals = s["summary"][k], [t[k] for t in seeds if t[k] is not None]
        assert st["n"] == len(vals) and st["non_finite"] == len(seeds) - len(vals), (k, st)
        if vals:
            assert close(st["min"], min(vals), 1e-6) and close(st["max"], max(vals), 1e-6), (k, st)
        else:
            assert st["min"] is None and st["mean"] is None, (k, st)
    first = seeds[0]
    for k in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
        assert s[k] == first[k], (k, s[k], first[k])
    if first["val_loss"] is None or first["train_loss"] is None:
        assert s["confusion_matrix"] is None, s["confusion_matrix"]


def check_html(path, args):
    import html5lib
    import xml.etree.ElementTree as ET

    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    with open(path, "rb") as f:
        doc = parser.parse(f)  # raises on the first parse error
    svg_ns = "{http://www.w3.org/2000/svg}"
    svgs = doc.findall(f".//{svg_ns}svg")
    want = int(args[args.index("--svgs") + 1]) if "--svgs" in args else None
    assert want is None or len(svgs) == want, f"{len(svgs)} inline figures, expected {want}"
    ids = [e.get("id") for e in doc.iter() if e.get("id")]
    assert len(ids) == len(set(ids)), "ids shared between figures"
    xlink = "{http://www.w3.org/1999/xlink}href"
    for e in doc.iter():
        assert e.get("src") is None, f"<{e.tag}> fetches {e.get('src')}"
        for attr in ("href", xlink):
            ref = e.get(attr)
            if ref is None:
                continue
            inside = e.tag.startswith(svg_ns)
            assert (ref.startswith("#") and inside and ref[1:] in ids) or (
                not inside and ":" not in ref and "/" not in ref), f"reference {ref}"
    for link in doc.iter("link"):
        raise AssertionError(f"<link> to {link.get('href')}")
    title = doc.find(".//title")
    assert title is not None and title.text, "no title"
    assert doc.find(".//meta[@charset]") is not None, "no charset"
    ids_html = {e.get("id") for e in doc.iter() if e.get("id")}
    assert {"configuration", "results", "files"} <= ids_html, ids_html
    if "--confusion" in args:
        assert "confusion" in ids_html and doc.find(".//table[@class='cm']") is not None
        s = json.load(open(os.path.join(os.path.dirname(path), "summary.json")))
        table = doc.find(".//table[@class='cm']")
        counts = [[int(td.text) for td in tr.findall("td")[:-2]] for tr in table.find("tbody")]
        assert counts == s["confusion_matrix"], (counts, s["confusion_matrix"])
    if "--seeds" in args:
        assert "seeds" in ids_html, "no distribution over seeds"
    text = "".join(doc.itertext())
    i = 0
    while "--text" in args[i:]:
        i = args.index("--text", i) + 1
        assert args[i] in text, f"text {args[i]!r} missing"
    i = 0
    while "--absent" in args[i:]:
        i = args.index("--absent", i) + 1
        assert args[i] not in text, f"text {args[i]!r} present"


def main(argv):
    kind, rest = argv[1], argv[2:]
    if kind == "factors":
        check_factors(rest[0], rest[1], rest[2:])
    elif kind == "model":
        check_model(rest[0], rest[1])
    elif kind == "predicted":
        check_predicted(rest[0], rest[1], rest[2])
    elif kind == "undefined":
        check_undefined(rest[0])
    elif kind == "html":
        check_html(rest[0], rest[1:])
    else:
        raise SystemExit(f"unknown check {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
