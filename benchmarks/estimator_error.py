#!/usr/bin/env python3
"""Relative standard error of the stochastic contractive penalty on a minibatch mean.

The deep CAE's ``penalty="stochastic"`` estimates the batch mean of ||J(x_n)||_F^2 by
(1/m) sum_p mean_n ||J(x_n) v_p||^2 with m vectors v_p shared by the batch
(docs/derivations.md#stochastic-estimate). With C = (1/n) sum_n J_n^T J_n (d x d) the estimate
is (1/m) sum_p v_p^T C v_p, so for one vector

    Gaussian:    Var = 2 ||C||_F^2
    Rademacher:  Var = 2 (||C||_F^2 - sum_i C_ii^2)

and the relative standard error is sqrt(Var / m) / trace(C). This script measures it on
minibatches of 100 (MNIST if found, else the built-in digits) for a 784-256-64 sigmoid deep CAE,
at its initial weights and after training, for m = 1, 4, 16: the formula from the exact C, and
the empirical spread over repeated draws (the two must agree).

    python benchmarks/estimator_error.py [--epochs 1] [--n-train 10000] [--batches 10] [--draws 400]

Prints one JSON line per (state, projection, m).
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

import npcae  # noqa: E402


def batch_stats(model, X, projection, m, draws, rng):
    """Formula and empirical relative standard error of the estimate on the batch ``X``."""
    J = model.jacobian(X).astype(np.float64)                 # (n, k, d)
    C = np.einsum("nkd,nke->de", J, J) / len(X)
    exact = np.trace(C)
    var1 = 2 * np.sum(C * C)
    if projection == "rademacher":
        var1 -= 2 * np.sum(np.diag(C) ** 2)
    formula = np.sqrt(var1 / m) / exact
    model.set_params(penalty="stochastic", projection=projection, n_projections=m)
    values = np.array([model.loss_terms(X, projections=model._draw_projections(
        rng, X.shape[1], X.dtype))["contractive"] for _ in range(draws)])
    return exact, formula, values.std(ddof=1) / exact, values.mean() / exact


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--batches", type=int, default=10)
    ap.add_argument("--draws", type=int, default=400)
    ap.add_argument("--random-state", type=int, default=0)
    args = ap.parse_args()
    X, _, X_test, _, name = npcae.datasets.load_train_test("auto", args.n_train, 2000,
                                                           random_state=args.random_state)
    model = npcae.DeepContractiveAutoencoder(layers=(256, 64), lam=0.1, init="torch_linear",
                                             epochs=args.epochs, dtype=np.float64,
                                             random_state=args.random_state)
    model.initialize(X.shape[1])
    rng = np.random.default_rng(args.random_state + 1)
    for state in ("initial", f"trained {args.epochs} epoch(s)"):
        if state != "initial":
            t0 = time.perf_counter()
            model.set_params(penalty="exact").fit(X)
            print(f"# trained in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for projection in ("rademacher", "gaussian"):
            for m in (1, 4, 16):
                rows = [batch_stats(model, X_test[100 * b:100 * (b + 1)], projection, m,
                                    args.draws, rng) for b in range(args.batches)]
                exact, formula, empirical, ratio = map(np.array, zip(*rows))
                print(json.dumps({"data": name, "state": state, "projection": projection,
                                  "m": m, "batch": 100, "batches": args.batches,
                                  "draws": args.draws,
                                  "mean_exact_penalty": round(float(exact.mean()), 4),
                                  "rel_se_formula": round(float(formula.mean()), 4),
                                  "rel_se_empirical": round(float(empirical.mean()), 4),
                                  "mean_estimate_over_exact": round(float(ratio.mean()), 4)}),
                      flush=True)


if __name__ == "__main__":
    main()
