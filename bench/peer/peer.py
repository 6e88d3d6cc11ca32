#!/usr/bin/env python3
"""PyTorch reference of `harness bench peer`: the same work as the harness, done by a plain PyTorch script.

The harness exports the data and initial weights of a run (float32 .npy files: x.npy N x 784 standardised inputs,
y.npy int64 labels, w<l>.npy / b<l>.npy per layer); this script trains the same tanh network with full-batch GD
on the same MSE loss ((1/N) sum_i 1/2 |f(x_i) - onehot(y_i)|^2) and measures lambda_1 of the Hessian with scipy's
eigsh (which='LA') on a LinearOperator of torch Hessian-vector products. Each command prints one JSON object on
stdout (after a line "first-step" flushed at the end of the first training step, which the harness times from
process start). Needs Debian's python3-torch, python3-scipy and python3-numpy (scripts/install-peer.sh).
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import scipy
from scipy.sparse.linalg import LinearOperator, eigsh


def load(folder, name):
    return torch.from_numpy(np.load(os.path.join(folder, name)))


class Problem:
    def __init__(self, folder):
        self.x = load(folder, "x.npy")
        y = load(folder, "y.npy")
        self.layers = []
        l = 0
        while os.path.exists(os.path.join(folder, f"w{l}.npy")):
            self.layers.append((load(folder, f"w{l}.npy").requires_grad_(True), load(folder, f"b{l}.npy").requires_grad_(True)))
            l += 1
        self.classes = self.layers[-1][0].shape[0]
        self.target = torch.nn.functional.one_hot(y, self.classes).to(self.x.dtype)
        self.params = [t for wb in self.layers for t in wb]
        self.dim = sum(p.numel() for p in self.params)

    def set_params(self, folder):
        with torch.no_grad():
            for l, (w, b) in enumerate(self.layers):
                w.copy_(load(folder, f"w{l}.npy"))
                b.copy_(load(folder, f"b{l}.npy"))

    def loss(self):
        return (self.forward(self.x) - self.target).square().sum(1).mean() * 0.5

    def forward(self, x):
        h = x
        for l, (w, b) in enumerate(self.layers):
            h = torch.nn.functional.linear(h, w, b)
            if l < len(self.layers) - 1:
                h = torch.tanh(h)
        return h

    def accuracy(self, xt, yt):
        """Training accuracy, test loss and test accuracy (forward passes only)."""
        with torch.no_grad():
            train_acc = (self.forward(self.x).argmax(1) == self.target.argmax(1)).double().mean().item()
            out = self.forward(xt)
            target = torch.nn.functional.one_hot(yt, self.classes).to(out.dtype)
            test_loss = ((out - target).square().sum(1).mean() * 0.5).item()
            test_acc = (out.argmax(1) == yt).double().mean().item()
        return train_acc, test_loss, test_acc

    def step(self, lr):
        loss = self.loss()
        grads = torch.autograd.grad(loss, self.params)
        with torch.no_grad():
            for p, g in zip(self.params, grads):
                p.add_(g, alpha=-lr)
        return loss.item()

    def sharpness(self, tol, v0=None):
        """lambda_1 by eigsh(which='LA') on torch HVPs (double backward on one retained gradient graph)."""
        loss = self.loss()
        grads = torch.autograd.grad(loss, self.params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        count = [0]

        def matvec(v):
            count[0] += 1
            vt = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32).reshape(-1))
            hv = torch.autograd.grad(flat @ vt, self.params, retain_graph=True)
            return torch.cat([h.reshape(-1) for h in hv]).numpy().astype(np.float64)

        op = LinearOperator((self.dim, self.dim), matvec=matvec, dtype=np.float64)
        vals, vecs = eigsh(op, k=1, which="LA", tol=tol, v0=v0)
        return float(vals[0]), count[0], vecs[:, 0]


def usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_bytes": r.ru_maxrss * 1024, "minor_faults": r.ru_minflt, "major_faults": r.ru_majflt}


FIRST = {}


def first_step_mark():
    if not FIRST:
        FIRST.update({"first_step_" + k: v for k, v in usage().items()})
    print("first-step", flush=True)


def cmd_steps(a, p):
    """Plain GD loop without probes: time per step after the first (warm-up) step."""
    losses = [p.step(a.lr)]
    first_step_mark()
    t0 = time.perf_counter()
    for _ in range(a.steps - 1):
        losses.append(p.step(a.lr))
    dt = time.perf_counter() - t0
    return {"step_seconds": dt / max(1, a.steps - 1), "first_loss": losses[0], "last_loss": losses[-1]}


def cmd_sharpness(a, p):
    """lambda_1 at the exported parameters: a timed measurement at --tol (repeated --reps times) and one at --check-tol."""
    times, hvps, lam = [], [], None
    for _ in range(a.reps):
        t0 = time.perf_counter()
        lam, n, _ = p.sharpness(a.tol)
        times.append(time.perf_counter() - t0)
        hvps.append(n)
    exact, n_exact, _ = p.sharpness(a.check_tol)
    return {"seconds": sorted(times)[len(times) // 2], "hvps": hvps[0], "lambda1": lam, "lambda1_tight": exact, "hvps_tight": n_exact}


def cmd_demo(a, p):
    """The demo's work, one run per learning rate: GD for --steps; lambda_1 every --every steps and at the end (eigsh
    at --tol; with --warm the previous eigenvector is its v0); every 250 steps the loss and accuracy on the training
    set and on the test set (xt.npy, yt.npy) as the harness's accuracy probe does."""
    xt, yt = load(a.data, "xt.npy"), load(a.data, "yt.npy")
    out = []
    for lr in a.lrs:
        p.set_params(a.data)
        t0 = time.perf_counter()
        hv_total, measures, v0, lam, sharp_s, loss = 0, 0, None, None, 0.0, None
        for t in range(a.steps + 1):
            if t % a.every == 0 or t == a.steps:
                s0 = time.perf_counter()
                lam, n, v0 = p.sharpness(a.tol, v0=v0 if a.warm else None)
                sharp_s += time.perf_counter() - s0
                hv_total += n
                measures += 1
            if t % 250 == 0 or t == a.steps:
                p.accuracy(xt, yt)
            if t == a.steps:
                break
            loss = p.step(lr)
            if t == 0:
                first_step_mark()
        out.append({"lr": lr, "seconds": time.perf_counter() - t0, "measurements": measures, "hvps": hv_total,
                    "sharpness_seconds": sharp_s, "last_lambda1": lam, "last_loss": loss})
    return {"runs": out}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["steps", "sharpness", "demo", "matrix", "gemm", "info"])
    ap.add_argument("--data", required=False, help="folder of x.npy, y.npy, w<l>.npy, b<l>.npy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--lrs", type=float, nargs="*", default=[0.03, 0.05, 0.08])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--check-tol", type=float, default=1e-9)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warm", action="store_true", help="pass the previous eigenvector as v0")
    ap.add_argument("--runs", type=int, default=8, help="matrix: number of runs (each rebuilds the problem from the files)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    info = {"torch": torch.__version__, "scipy": scipy.__version__, "threads": torch.get_num_threads(),
            "blas": torch.__config__.show().split("BLAS_INFO=")[1].split(",")[0] if "BLAS_INFO=" in torch.__config__.show() else "?"}
    if a.command == "info":
        result = {}
    elif a.command == "gemm":
        # the largest product of a width-1000 step (float32 2000x784 . 784x1000), best of --reps, as the harness times it
        g = torch.Generator().manual_seed(1)
        x, w = torch.randn(2000, 784, generator=g), torch.randn(784, 1000, generator=g)
        best = float("inf")
        for _ in range(a.reps):
            t0 = time.perf_counter()
            x.matmul(w)
            best = min(best, time.perf_counter() - t0)
        result = {"gemm_flops": 2.0 * 2000 * 784 * 1000 / best}
    elif a.command == "matrix":
        # a matrix of short runs, each from the files (the work a harness run does: build data and model, train)
        t0 = time.perf_counter()
        for r in range(a.runs):
            p = Problem(a.data)
            for t in range(a.steps):
                p.step(a.lrs[r % len(a.lrs)])
                if r == 0 and t == 0:
                    first_step_mark()
        result = {"seconds": time.perf_counter() - t0}
    else:
        p = Problem(a.data)
        result = {"steps": cmd_steps, "sharpness": cmd_sharpness, "demo": cmd_demo}[a.command](a, p)
    result.update(info)
    result.update(usage())
    result.update(FIRST)
    clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in result.items()}
    print(json.dumps(clean), flush=True)


if __name__ == "__main__":
    main()
