#!/usr/bin/env python3
"""The lab's workloads in PyTorch, for `dlab-bench --peer pytorch`.

Usage: peer_pytorch.py --data IRIS_DATA [--repeats N] [--runs-timed K]
                       [--only factorise-iris,mlp-iris,mlp-seeds] [--no-variants]

Runs, on the CPU with one intra-op and one inter-op thread, the work of
three dlab-bench cases with the same shapes, algorithm and epochs, and
prints one JSON object on stdout:

  factorise-iris  iris (150 x 4, columns centred, scaled by the power of two
                  that puts ||A||_F in [0.5, 1) as dlab does), rank 2,
                  U, V ~ U[0, 1), lr 0.01, 1000 epochs of full-batch gradient
                  descent on ||U V^T - A||_F^2: E = U V^T - A, the loss
                  sum(E^2) kept per epoch, dU = 2 E V, dV = 2 E^T U, both
                  steps in place. Tensors and matmul, no autograd.
  mlp-iris        4-12-3, ReLU, softmax cross-entropy, N(0, 1) weights, zero
                  biases, SGD lr 0.01, full batch on 100 shuffled training
                  rows (50 validation rows), inputs (x - mean) / variance over
                  the whole data, 100 epochs. Each epoch as dlab's: the step
                  from the logit gradient of the last training evaluation,
                  then the validation and the training split evaluated (loss
                  and accuracy, kept per epoch), the latter also giving the
                  next step's gradient. Gradients written out by hand.
  mlp-seeds       1000 lab MLPs as 1000 separate runs of mlp-iris, each with
                  its own shuffle and initial weights (the time of
                  --runs-timed K runs, scaled to 1000 when K < 1000).

The seconds that `dlab-bench` divides by are those of the variants above
("variant" in each workload). Two more are timed and reported beside them
in "variants" (unless --no-variants), never used for the ratio:
  autograd  the factorisation with loss.backward() and the MLP with
            torch.nn layers, F.cross_entropy and torch.optim.SGD (three
            forward passes per epoch, as such a loop is usually written);
  batched   the 1000 MLPs as one model batch through torch.bmm.

Timing: the training loop only (data preparation and initial values
outside it), after one untimed warm-up run, the best of --repeats runs, on
time.perf_counter(). The data's shuffles use torch's generator, not dlab's,
so the figures are those of the same work, not the same numbers.

With --check it times nothing: it runs the hand-written loops, the
autograd loops and the batched loop from the same starts and checks that
they give the same loss histories within float32 rounding (the ctest
`peer_pytorch_check`).

Exit status: 0 ok; 1 --check found a difference; 2 bad usage or data; 3
PyTorch cannot be imported (the caller reports the peer as not installed).
"""
import argparse
import json
import platform
import sys
import time

try:
    import torch
except ImportError as e:
    print(f"peer_pytorch: PyTorch is not installed for {sys.executable} ({e})", file=sys.stderr)
    sys.exit(3)

FACTORISE_EPOCHS = 1000
MLP_EPOCHS = 100
MLP_MODELS = 1000
RANK = 2
LR = 0.01
HIDDEN = 12
N_TRAIN = 100


def load_iris(path):
    """Rows of four numbers and a class name; classes numbered in order of
    first appearance, as dlab's loader does."""
    rows, labels, names = [], [], {}
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            if len(parts) != 5:
                raise ValueError(f"{path}:{line_no}: expected 4 numbers and a class name")
            rows.append([float(v) for v in parts[:4]])
            labels.append(names.setdefault(parts[4], len(names)))
    x = torch.tensor(rows, dtype=torch.float32)
    if x.shape != (150, 4) or len(names) != 3:
        raise ValueError(f"{path}: {tuple(x.shape)} with {len(names)} classes, not iris's 150 x 4, 3")
    return x, torch.tensor(labels, dtype=torch.int64)


def best_of(repeats, fn):
    """One untimed warm-up call, then the least of `repeats` timed calls;
    fn returns (seconds, result)."""
    fn()
    best, result = None, None
    for _ in range(repeats):
        s, r = fn()
        if best is None or s < best:
            best, result = s, r
    return best, result


# --- the factorisation ------------------------------------------------------


def iris_matrix(x):
    a = x - x.mean(dim=0)
    _, e = torch.frexp(torch.linalg.norm(a.double()))  # ||A|| = f 2^e, f in [0.5, 1)
    return a * 2.0 ** -int(e)  # exact: a power of two


def factorise_manual(a, seed):
    m, n = a.shape
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(m, RANK, generator=gen)
    v = torch.rand(n, RANK, generator=gen)
    hist = torch.empty(FACTORISE_EPOCHS)
    t0 = time.perf_counter()
    with torch.no_grad():
        for e in range(FACTORISE_EPOCHS):
            err = u @ v.T - a
            hist[e] = (err * err).sum()
            du = 2.0 * err @ v
            dv = 2.0 * err.T @ u
            u.sub_(du, alpha=LR)
            v.sub_(dv, alpha=LR)
    return time.perf_counter() - t0, hist


def factorise_autograd(a, seed):
    m, n = a.shape
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(m, RANK, generator=gen).requires_grad_()
    v = torch.rand(n, RANK, generator=gen).requires_grad_()
    hist = torch.empty(FACTORISE_EPOCHS)
    t0 = time.perf_counter()
    for e in range(FACTORISE_EPOCHS):
        loss = ((u @ v.T - a) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            hist[e] = loss
            u.sub_(u.grad, alpha=LR)
            v.sub_(v.grad, alpha=LR)
            u.grad = None
            v.grad = None
    return time.perf_counter() - t0, hist


# --- the MLP ----------------------------------------------------------------


def mlp_split(x, y, gen):
    """The lab's inputs: (x - mean) / variance over all rows, then a shuffle
    into 100 training and 50 validation rows."""
    xs = (x - x.mean(dim=0)) / x.var(dim=0, unbiased=False)
    perm = torch.randperm(x.shape[0], generator=gen)
    tr, va = perm[:N_TRAIN], perm[N_TRAIN:]
    return xs[tr].contiguous(), y[tr].contiguous(), xs[va].contiguous(), y[va].contiguous()


def mlp_init(d, c, gen):
    return (torch.randn(d, HIDDEN, generator=gen), torch.zeros(HIDDEN),
            torch.randn(HIDDEN, c, generator=gen), torch.zeros(c))


def mlp_manual(split, params):
    """One lab run, gradients by hand; returns (seconds, final training loss)."""
    xtr, ytr, xva, yva = split
    w1, b1, w2, b2 = (p.clone() for p in params)
    onehot = torch.nn.functional.one_hot(ytr, w2.shape[1]).to(torch.float32)
    hist = torch.empty(MLP_EPOCHS, 4)

    def evaluate(xs, ys):
        h = torch.relu(xs @ w1 + b1)
        z = h @ w2 + b2
        logp = torch.log_softmax(z, dim=1)
        loss = -logp.gather(1, ys.unsqueeze(1)).mean()
        acc = (z.argmax(dim=1) == ys).to(torch.float32).mean()
        return h, logp, loss, acc

    t0 = time.perf_counter()
    with torch.no_grad():
        h, logp, _, _ = evaluate(xtr, ytr)
        g = (logp.exp() - onehot) / N_TRAIN
        for e in range(MLP_EPOCHS):
            dw2 = h.T @ g
            db2 = g.sum(dim=0)
            dh = (g @ w2.T) * (h > 0)
            dw1 = xtr.T @ dh
            db1 = dh.sum(dim=0)
            w1.sub_(dw1, alpha=LR)
            b1.sub_(db1, alpha=LR)
            w2.sub_(dw2, alpha=LR)
            b2.sub_(db2, alpha=LR)
            _, _, hist[e, 2], hist[e, 3] = evaluate(xva, yva)
            h, logp, hist[e, 0], hist[e, 1] = evaluate(xtr, ytr)
            g = (logp.exp() - onehot) / N_TRAIN
    return time.perf_counter() - t0, hist


def mlp_autograd(split, params):
    """The same run as a PyTorch user usually writes it: nn layers, autograd,
    torch.optim.SGD, and a no_grad evaluation of both splits per epoch."""
    xtr, ytr, xva, yva = split
    w1, b1, w2, b2 = params
    model = torch.nn.Sequential(torch.nn.Linear(w1.shape[0], HIDDEN), torch.nn.ReLU(),
                                torch.nn.Linear(HIDDEN, w2.shape[1]))
    with torch.no_grad():
        model[0].weight.copy_(w1.T), model[0].bias.copy_(b1)
        model[2].weight.copy_(w2.T), model[2].bias.copy_(b2)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    f = torch.nn.functional
    hist = torch.empty(MLP_EPOCHS, 4)
    t0 = time.perf_counter()
    for e in range(MLP_EPOCHS):
        opt.zero_grad()
        f.cross_entropy(model(xtr), ytr).backward()
        opt.step()
        with torch.no_grad():
            for col, (xs, ys) in ((0, (xtr, ytr)), (2, (xva, yva))):
                z = model(xs)
                hist[e, col] = f.cross_entropy(z, ys)
                hist[e, col + 1] = (z.argmax(dim=1) == ys).to(torch.float32).mean()
    return time.perf_counter() - t0, hist


def mlp_batched(splits, params):
    """S models at once: every tensor gains a leading model axis, every
    matmul becomes torch.bmm; the same epoch as mlp_manual."""
    xtr = torch.stack([s[0] for s in splits])
    ytr = torch.stack([s[1] for s in splits])
    xva = torch.stack([s[2] for s in splits])
    yva = torch.stack([s[3] for s in splits])
    w1, b1, w2, b2 = (torch.stack([p[i] for p in params]) for i in range(4))
    b1, b2 = b1.unsqueeze(1), b2.unsqueeze(1)
    onehot = torch.nn.functional.one_hot(ytr, w2.shape[2]).to(torch.float32)
    models = len(splits)
    hist = torch.empty(MLP_EPOCHS, 4, models)

    def evaluate(xs, ys):
        h = torch.relu(torch.bmm(xs, w1) + b1)
        z = torch.bmm(h, w2) + b2
        logp = torch.log_softmax(z, dim=2)
        loss = -logp.gather(2, ys.unsqueeze(2)).mean(dim=(1, 2))
        acc = (z.argmax(dim=2) == ys).to(torch.float32).mean(dim=1)
        return h, logp, loss, acc

    t0 = time.perf_counter()
    with torch.no_grad():
        h, logp, _, _ = evaluate(xtr, ytr)
        g = (logp.exp() - onehot) / N_TRAIN
        for e in range(MLP_EPOCHS):
            dw2 = torch.bmm(h.transpose(1, 2), g)
            db2 = g.sum(dim=1, keepdim=True)
            dh = torch.bmm(g, w2.transpose(1, 2)) * (h > 0)
            dw1 = torch.bmm(xtr.transpose(1, 2), dh)
            db1 = dh.sum(dim=1, keepdim=True)
            w1.sub_(dw1, alpha=LR)
            b1.sub_(db1, alpha=LR)
            w2.sub_(dw2, alpha=LR)
            b2.sub_(db2, alpha=LR)
            _, _, hist[e, 2], hist[e, 3] = evaluate(xva, yva)
            h, logp, hist[e, 0], hist[e, 1] = evaluate(xtr, ytr)
            g = (logp.exp() - onehot) / N_TRAIN
    return time.perf_counter() - t0, hist


# --- the workloads ----------------------------------------------------------


def run_factorise(x, repeats, variants):
    a = iris_matrix(x)
    s, hist = best_of(repeats, lambda: factorise_manual(a, 1))
    loss = float(hist[-1])
    out = {"seconds": s, "epochs": FACTORISE_EPOCHS, "models": 1, "repeats": repeats,
           "variant": "manual", "final_loss": loss, "shape": list(a.shape), "rank": RANK,
           "lr": LR, "variants": {}}
    if variants:
        sa, _ = best_of(repeats, lambda: factorise_autograd(a, 1))
        out["variants"]["autograd"] = {"seconds": sa}
    return out


def run_mlp(x, y, repeats, variants):
    gen = torch.Generator().manual_seed(1)
    split = mlp_split(x, y, gen)
    params = mlp_init(x.shape[1], int(y.max()) + 1, gen)
    s, hist = best_of(repeats, lambda: mlp_manual(split, params))
    loss = float(hist[-1, 0])
    out = {"seconds": s, "epochs": MLP_EPOCHS, "models": 1, "repeats": repeats,
           "variant": "manual", "final_loss": loss, "hidden": HIDDEN, "train": N_TRAIN,
           "lr": LR, "variants": {}}
    if variants:
        sa, _ = best_of(repeats, lambda: mlp_autograd(split, params))
        out["variants"]["autograd"] = {"seconds": sa}
    return out


def run_seeds(x, y, repeats, runs_timed, variants):
    """Each of the 1000 runs has its own shuffle and initial weights (seed
    1 to 1000); the first runs_timed of them are timed."""
    classes = int(y.max()) + 1
    count = MLP_MODELS if variants else runs_timed
    splits, params = [], []
    for seed in range(1, count + 1):
        gen = torch.Generator().manual_seed(seed)
        splits.append(mlp_split(x, y, gen))
        params.append(mlp_init(x.shape[1], classes, gen))

    def separate():
        t, loss = 0.0, 0.0
        for i in range(runs_timed):
            s, hist = mlp_manual(splits[i], params[i])
            t, loss = t + s, loss + float(hist[-1, 0])
        return t, loss / runs_timed

    s, loss = best_of(repeats, separate)
    out = {"seconds": s * MLP_MODELS / runs_timed, "epochs": MLP_EPOCHS, "models": MLP_MODELS,
           "repeats": repeats, "runs_timed": runs_timed, "variant": "separate-runs",
           "mean_final_loss": loss, "variants": {}}
    if variants:
        sb, hist_b = best_of(repeats, lambda: mlp_batched(splits, params))
        loss_b = float(hist_b[-1, 0].mean())
        out["variants"]["batched"] = {"seconds": sb, "mean_final_loss": loss_b}
    return out


def self_check(x, y):
    """The hand-written loops against autograd and against the batched
    loop, from the same start on the same data: the same loss and accuracy
    histories within float32 rounding, and losses that fall. Returns the
    failures and the largest differences seen."""
    fails, worst = [], {}

    def compare(name, got, want, rel):
        d = float(((got - want).abs() / want.abs().clamp(min=1e-3)).max())
        worst[name] = d
        if not d <= rel:
            fails.append(f"{name}: relative difference {d:.3g} > {rel}")

    a = iris_matrix(x)
    _, fm = factorise_manual(a, 1)
    _, fa = factorise_autograd(a, 1)
    compare("factorise manual vs autograd, loss", fm, fa, 1e-4)
    if not float(fm[-1]) < 0.5 * float(fm[0]):
        fails.append(f"factorise: the loss went from {float(fm[0]):.4g} to {float(fm[-1]):.4g}")
    classes = int(y.max()) + 1
    splits, params, manual = [], [], []
    for seed in (1, 2, 3):
        gen = torch.Generator().manual_seed(seed)
        splits.append(mlp_split(x, y, gen))
        params.append(mlp_init(x.shape[1], classes, gen))
        manual.append(mlp_manual(splits[-1], params[-1])[1])
    _, ma = mlp_autograd(splits[0], params[0])
    compare("mlp manual vs autograd, losses", manual[0][:, 0::2], ma[:, 0::2], 1e-4)
    compare("mlp manual vs autograd, accuracies", manual[0][:, 1::2], ma[:, 1::2], 0.03)
    _, mb = mlp_batched(splits, params)
    for b in range(3):
        compare(f"mlp batched model {b} vs separate, losses", mb[:, 0::2, b], manual[b][:, 0::2], 1e-4)
    h = manual[0]
    if not float(h[-1, 0]) < float(h[0, 0]):
        fails.append(f"mlp: the training loss went from {float(h[0, 0]):.4g} to {float(h[-1, 0]):.4g}")
    return fails, worst


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="iris.data (150 rows, 4 numbers and a class)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per workload (best kept)")
    p.add_argument("--runs-timed", type=int, default=MLP_MODELS,
                   help=f"separate MLP runs timed of the {MLP_MODELS} (1 to {MLP_MODELS})")
    p.add_argument("--no-variants", action="store_true",
                   help="time only the variants the ratio uses (no autograd, no batched)")
    p.add_argument("--check", action="store_true",
                   help="check the loops against autograd and each other instead of timing")
    p.add_argument("--only", default="factorise-iris,mlp-iris,mlp-seeds",
                   help="comma-separated workloads")
    a = p.parse_args()
    only = set(a.only.split(","))
    unknown = only - {"factorise-iris", "mlp-iris", "mlp-seeds"}
    if unknown or a.repeats < 1 or not 1 <= a.runs_timed <= MLP_MODELS:
        print("peer_pytorch: bad --only, --repeats or --runs-timed", file=sys.stderr)
        return 2
    try:
        x, y = load_iris(a.data)
    except (OSError, ValueError) as e:
        print(f"peer_pytorch: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    if a.check:
        fails, worst = self_check(x, y)
        json.dump({"check": "failed" if fails else "ok", "failures": fails,
                   "max_relative_difference": worst}, sys.stdout, indent=1)
        print()
        return 1 if fails else 0
    out = {"peer": "pytorch", "torch_version": torch.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
           "workloads": {}}
    w = out["workloads"]
    if "factorise-iris" in only:
        w["factorise-iris"] = run_factorise(x, a.repeats, not a.no_variants)
    if "mlp-iris" in only:
        w["mlp-iris"] = run_mlp(x, y, a.repeats, not a.no_variants)
    if "mlp-seeds" in only:
        w["mlp-seeds"] = run_seeds(x, y, a.repeats, a.runs_timed, not a.no_variants)
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
