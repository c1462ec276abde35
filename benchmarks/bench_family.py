#!/usr/bin/env python3
"""Time one npcae deep-autoencoder training epoch in the setting of the PyTorch family peer.

The two source-text networks of ``shared/bench/peers_torch_family.py`` (``--config``):

  deep_sigmoid  784-256-128-100, mirrored untied decoder, sigmoid after every layer (the code
                and the output too), 0.5 * mse_loss (mean over all elements), PyTorch's
                nn.Linear init, Adam lr 0.01, batch 256.
  deep_leaky    784-256-128-64, mirrored untied decoder, leaky_relu (slope 0.2) on every hidden
                layer and the code, sigmoid output, mse_loss (mean over all elements),
                PyTorch's nn.Linear init (as the peer), Adam lr 1e-3, batch 128.

and three of issue 10 (each exactly as the peer's docstring defines it):

  denoising     DenoisingAutoencoder: 784-500 sigmoid encoder, tied decoder (W^T), sigmoid
                output, masking noise 0.25 (fresh per step, from the training generator), BCE of
                the clean input summed over pixels, mean over the batch; Adam 1e-3, batch 100.
  sparse_kl     SparseAutoencoder: 784-196 sigmoid, untied 196-784 sigmoid decoder, MSE summed
                over pixels (mean over the batch) + 3 * sum_j KL(0.05 || rho_hat_j), rho_hat
                the batch mean; Adam 1e-3, batch 256.
  vae           VariationalAutoencoder: 784-400 relu -> (mu, logvar) 20 each, 20-400 relu ->
                784 Bernoulli logits, negative ELBO per sample (BCE-with-logits summed + the
                analytic KL), mean over the batch; Adam 1e-3, batch 128.

and two of issue 11, against the peer's deep_cae:

  deep_cae      DeepContractiveAutoencoder: 784-256-64 sigmoid encoder, untied mirrored decoder,
                sigmoid output, BCE summed over pixels + 0.1 * the exact ||J_f(x)||_F^2 of the
                whole encoder (Gram form), mean over the batch; Adam 1e-3, batch 100.
  deep_cae_stochastic  the same with penalty="stochastic", n_projections=4 (Rademacher vectors
                shared by the batch); timed against the peer's exact deep_cae.

All use PyTorch's nn.Linear init (init="torch_linear").

Data: 60,000 x 784 float32 from the peers' recipe with the same seed, 2 BLAS threads. npcae
keeps the last partial batch (the peer drops it), so compare samples per second.

    python benchmarks/bench_family.py --config deep_sigmoid             # one JSON line
    python benchmarks/bench_family.py --config deep_sigmoid,deep_leaky --epochs 3
    python benchmarks/bench_family.py --config deep_leaky --compare --rounds 5
    python benchmarks/bench_family.py --config deep_sigmoid,deep_leaky --floor

``--compare`` runs this script and the peer in subprocesses, A B A B, and prints the median
ratio npcae_samples_per_s / torch_samples_per_s (> 1: npcae is faster). ``--floor`` times
each configuration's matmuls alone at their shapes (the epoch's matmul floor).
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
# Shared measurement helpers (none of them imports numpy at module level, so the thread
# limits set in main() still apply).
from bench_cae import (_run_json, _wait_quiet, blas_info, cpu_busy_s, loadavg,  # noqa: E402
                       summarize_rounds, make_data, maxrss_mb, minflt, other_busy_frac, own_cpu_s,
                       proc_status_mb, reset_hwm)

DEFAULT_PEER = os.path.normpath(os.path.join(REPO, "..", "shared", "bench", "peers_torch_family.py"))
PEER_PYTHONS = ("/tmp/peers/bin/python", "/tmp/torchenv/bin/python")
D = 784

# Each configuration as the peer defines it. The npcae keyword arguments are the contract's.
CONFIGS = {
    "deep_sigmoid": dict(layers=(256, 128, 100), batch=256, lr=1e-2,
                         kwargs=dict(activation="sigmoid", output_activation="sigmoid",
                                     loss="mse", reduction="mean", loss_weight=0.5,
                                     init="torch_linear")),
    "deep_leaky": dict(layers=(256, 128, 64), batch=128, lr=1e-3,
                       kwargs=dict(activation={"name": "leaky_relu", "alpha": 0.2},
                                   output_activation="sigmoid", loss="mse", reduction="mean",
                                   loss_weight=1.0, init="torch_linear")),
    # issue 10: "model" names the npcae class (default Autoencoder); "floor" lists the Dense
    # layers for --floor when they are not the mirrored untied stack of "layers"
    "denoising": dict(model="DenoisingAutoencoder", layers=(500,), batch=100, lr=1e-3,
                      kwargs=dict(noise="masking", noise_level=0.25, tied=True,
                                  activation="sigmoid", output_activation="sigmoid",
                                  loss="bce", init="torch_linear"),
                      # the decoder is TiedDense: y = x W^T with the encoder's W (784, 500)
                      floor=[(784, 500, "dense"), (500, 784, "tied")]),
    "sparse_kl": dict(model="SparseAutoencoder", layers=(196,), batch=256, lr=1e-3,
                      kwargs=dict(sparsity="kl", beta=3.0, rho=0.05, activation="sigmoid",
                                  output_activation="sigmoid", loss="mse",
                                  init="torch_linear")),
    "vae": dict(model="VariationalAutoencoder", layers=(400,), batch=128, lr=1e-3,
                kwargs=dict(n_latent=20, activation="relu", decoder="bernoulli",
                            init="torch_linear"),
                # encoder 784-400, the two heads mu and logvar 400-20 (separate Dense
                # layers, as in the peer), decoder 20-400 and 400-784
                floor=[(784, 400, "dense"), (400, 20, "dense"), (400, 20, "dense"),
                       (20, 400, "dense"), (400, 784, "dense")]),
    # issue 11: the peer's deep_cae (BCE summed + 0.1 * exact ||J||_F^2 of the 784-256-64
    # encoder, untied mirrored decoder); the stochastic estimate is timed against the same peer
    "deep_cae": dict(model="DeepContractiveAutoencoder", layers=(256, 64), batch=100, lr=1e-3,
                     kwargs=dict(lam=0.1, penalty="exact", activation="sigmoid",
                                 output_activation="sigmoid", loss="bce", init="torch_linear")),
    "deep_cae_stochastic": dict(model="DeepContractiveAutoencoder", layers=(256, 64), batch=100,
                                lr=1e-3, peer="deep_cae",
                                kwargs=dict(lam=0.1, penalty="stochastic", n_projections=4,
                                            activation="sigmoid", output_activation="sigmoid",
                                            loss="bce", init="torch_linear")),
}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="deep_sigmoid",
                    help="one of %s, or a comma-separated list (one JSON line each)"
                         % ", ".join(CONFIGS))
    ap.add_argument("--epochs", type=int, default=1,
                    help="measured epochs (each a fresh fit(X) with epochs=1, timed by the "
                         "training loop's own epoch timer); median reported. --compare passes "
                         "it to the peer too")
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads (set before numpy import)")
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--random-state", "--seed", dest="random_state", type=int, default=0,
                    help="seed of the data and of the model (the peer's --seed; default 0)")
    ap.add_argument("--warmup", type=int, default=3,
                    help="batches in the untimed warm-up fit on a throwaway model (0: none)")
    ap.add_argument("--drop-last", action="store_true",
                    help="drop the last partial batch as the peer does (default: keep it, as "
                         "the configuration's source text does)")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="after timing, run one more (untimed) epoch under tracemalloc and "
                         "report its peak traced allocation")
    ap.add_argument("--floor", action="store_true",
                    help="instead of training, time each configuration's forward and backward "
                         "matmuls alone at their shapes and report the epoch's matmul floor")
    ap.add_argument("--reps", type=int, default=7, help="--floor: timing repeats (median)")
    ap.add_argument("--compare", action="store_true",
                    help="run npcae and the torch peer alternately in subprocesses")
    ap.add_argument("--rounds", type=int, default=3, help="A/B rounds in --compare")
    ap.add_argument("--peer-python", default=None,
                    help="interpreter with torch==2.13.0 for the peer (default: the first of "
                         "%s that exists)" % ", ".join(PEER_PYTHONS))
    ap.add_argument("--peer-script", default=DEFAULT_PEER, help="path to peers_torch_family.py")
    ap.add_argument("--max-busy", type=float, default=0.10,
                    help="--compare: a run during which other processes used more than this "
                         "share of the cores is discarded and redone (default 0.10)")
    ap.add_argument("--idle-wait", type=float, default=120,
                    help="--compare: before each run wait up to this many seconds for the "
                         "machine to be quiet (other processes < --max-busy); 0: don't wait")
    ap.add_argument("--retries", type=int, default=3,
                    help="--compare: redo a noisy round at most this many times")
    args = ap.parse_args(argv)
    args.configs = [c.strip() for c in str(args.config).split(",") if c.strip()]
    bad = [c for c in args.configs if c not in CONFIGS]
    if bad or not args.configs:
        ap.error("--config: unknown %s; choose from %s (comma-separated for several)"
                 % (", ".join(bad) or "(empty)", ", ".join(CONFIGS)))
    for name in ("epochs", "threads", "n", "rounds", "reps"):
        if getattr(args, name) < 1:
            ap.error("--%s must be >= 1" % name)
    if args.warmup < 0 or args.retries < 0 or args.idle_wait < 0:
        ap.error("--warmup, --retries and --idle-wait must be >= 0")
    if args.compare and args.floor:
        ap.error("--compare and --floor are separate modes; give one of them")
    if args.peer_python is None:
        args.peer_python = next((p for p in PEER_PYTHONS if os.path.exists(p)), PEER_PYTHONS[0])
    return args


def layer_dims(cfg):
    """(n_in, n_out) of every Dense layer: encoder, then the mirrored decoder."""
    return [(a, b) for a, b, _ in layer_specs(cfg)]


def layer_specs(cfg):
    """(n_in, n_out, kind) of every Dense layer, kind "dense" (``x @ W``, W (n_in, n_out))
    or "tied" (``x @ W.T`` with the encoder's W (n_out, n_in))."""
    c = CONFIGS[cfg]
    if "floor" in c:
        return [tuple(x) for x in c["floor"]]
    widths = [D] + list(c["layers"])
    widths = widths + widths[-2::-1]
    return [(a, b, "dense") for a, b in zip(widths[:-1], widths[1:])]


def steps(n, batch, drop_last):
    """Batch sizes of one epoch."""
    full, rest = divmod(n, batch)
    return [batch] * full + ([] if drop_last or not rest else [rest])


# ------------------------------------------------------------- single mode
def run_single(args, cfg, X):
    import numpy as np
    import npcae
    from npcae.optim import Adam

    c = CONFIGS[cfg]

    cls = getattr(npcae, c.get("model", "Autoencoder"))

    def mk():
        return cls(layers=c["layers"], optimizer=Adam(lr=c["lr"]),
                   batch_size=c["batch"], epochs=1, shuffle=True,
                   drop_last=args.drop_last, random_state=args.random_state,
                   dtype=np.float32, verbose=0, **c["kwargs"])

    if args.warmup:
        mk().fit(X[:min(X.shape[0], args.warmup * c["batch"])])

    n_used = sum(steps(X.shape[0], c["batch"], args.drop_last))
    load0 = loadavg()
    rss0 = proc_status_mb("VmRSS")
    hwm_ok = reset_hwm()
    f0 = minflt()
    busy0, cpu0, w0 = cpu_busy_s(), own_cpu_s(), time.perf_counter()
    times, fit_times, losses = [], [], []
    for _ in range(args.epochs):
        model = mk()
        t0 = time.perf_counter()
        model.fit(X)
        fit_times.append(time.perf_counter() - t0)
        hist = model.history_
        # the loop's own timer: permutation to last optimiser step, the region the peer times
        times.append(hist["epoch_time_s"][-1] if hist.get("epoch_time_s") else fit_times[-1])
        losses.append(hist["total"][-1])
    faults = minflt() - f0
    busy1, cpu1, w1 = cpu_busy_s(), own_cpu_s(), time.perf_counter()
    hwm = proc_status_mb("VmHWM") if hwm_ok else None
    load1 = loadavg()

    tm_peak = None
    if args.tracemalloc:
        import gc
        import tracemalloc
        m = mk()
        gc.collect()
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        m.fit(X)
        tm_peak = round((tracemalloc.get_traced_memory()[1] - base) / 2**20, 2)
        tracemalloc.stop()

    ep = statistics.median(times)
    return {
        "impl": "npcae", "config": cfg, "model": cls.__name__, "epoch_s": round(ep, 4),
        "samples_per_s": round(n_used / ep, 1),
        "threads": args.threads, "dtype": "float32", "batch": c["batch"], "n": n_used,
        "drop_last": args.drop_last, "epochs": args.epochs,
        "layers": list(c["layers"]), "optimizer": "adam lr=%g" % c["lr"],
        "epoch_times": [round(t, 4) for t in times],
        "fit_times": [round(t, 4) for t in fit_times],
        # history_["total"]: samples-weighted mean of the per-batch objective over the epoch
        "train_loss_last_epoch": round(float(losses[-1]), 5),
        "minflt_timed": faults,
        "peak_rss_mb": round(maxrss_mb(), 1),
        "rss_before_timed_mb": None if rss0 is None else round(rss0, 1),
        "peak_rss_timed_mb": None if hwm is None else round(hwm, 1),
        "tracemalloc_peak_mb": tm_peak,
        "loadavg_1min": [load0, load1],
        "other_busy_frac": other_busy_frac(busy0, busy1, cpu1 - cpu0, w1 - w0),
        "own_cpu_s": round(cpu1 - cpu0, 3),
        "numpy": np.__version__,
        "npcae": getattr(npcae, "__version__", None),
        "npcae_path": os.path.dirname(getattr(npcae, "__file__", "") or ""),
        "blas": blas_info(),
        "env": {k: os.environ.get(k) for k in
                ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "GLIBC_TUNABLES", "MALLOC_ARENA_MAX")},
    }


# --------------------------------------------------------------- floor mode
def _timeit(f, reps, min_s=0.02):
    """Median seconds per call of ``f`` (inner loop calibrated to ~``min_s`` per repeat)."""
    f()
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < min_s / 5:
        f()
        k += 1
    inner = max(1, k * 5)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            f()
        ts.append((time.perf_counter() - t0) / inner)
    return statistics.median(ts)


def _step_matmuls(dims, B, rng, reps):
    """Seconds of each matmul of one training step at batch size ``B``.

    Per Dense layer (n_in -> n_out), in npcae's (n_in, n_out) weight layout:
    forward ``X @ W`` (B, n_in)(n_in, n_out); backward ``G @ W.T`` (B, n_out)(n_out, n_in),
    the gradient to the layer's input, and ``X.T @ G`` (n_in, B)(B, n_out), the weight
    gradient. The first layer's input gradient is not needed (nothing is trained below it;
    the peer's autograd skips it) and is reported separately, outside the floor.
    """
    import numpy as np
    out = []
    for i, spec in enumerate(dims):
        a, b, kind = spec if len(spec) == 3 else (*spec, "dense")
        X = rng.random((B, a), dtype=np.float32)
        G = rng.random((B, b), dtype=np.float32)
        Y, dX = np.empty((B, b), np.float32), np.empty((B, a), np.float32)
        if kind == "tied":
            # TiedDense: the weight is the encoder's W, stored (b, a); forward x @ W.T,
            # input gradient G @ W, weight gradient G.T @ x (into the (b, a) array)
            W = rng.random((b, a), dtype=np.float32)
            dW = np.empty((b, a), np.float32)
            row = {"layer": i, "shape": [a, b], "kind": "tied",
                   "fwd X@W": _timeit(lambda: np.matmul(X, W.T, out=Y), reps),
                   "bwd G@W.T": _timeit(lambda: np.matmul(G, W, out=dX), reps),
                   "bwd X.T@G": _timeit(lambda: np.matmul(G.T, X, out=dW), reps)}
        else:
            W = rng.random((a, b), dtype=np.float32)
            dW = np.empty((a, b), np.float32)
            row = {"layer": i, "shape": [a, b],
                   "fwd X@W": _timeit(lambda: np.matmul(X, W, out=Y), reps),
                   "bwd G@W.T": _timeit(lambda: np.matmul(G, W.T, out=dX), reps),
                   "bwd X.T@G": _timeit(lambda: np.matmul(X.T, G, out=dW), reps)}
        out.append(row)
    return out


def run_floor(args, cfg):
    import numpy as np
    c = CONFIGS[cfg]
    specs = layer_specs(cfg)
    dims = [(a, b) for a, b, _ in specs]
    rng = np.random.default_rng(0)
    sizes = steps(args.n, c["batch"], False)
    busy0, cpu0, w0 = cpu_busy_s(), own_cpu_s(), time.perf_counter()
    per_size = {B: _step_matmuls(specs, B, rng, args.reps) for B in sorted(set(sizes))}
    busy1, cpu1, w1 = cpu_busy_s(), own_cpu_s(), time.perf_counter()

    def step_s(rows, with_first_dx=False):
        return sum(r["fwd X@W"] + r["bwd X.T@G"] + (r["bwd G@W.T"] if (r["layer"] or with_first_dx)
                                                     else 0.0) for r in rows)

    full = per_size[c["batch"]]
    floor = sum(step_s(per_size[B]) for B in sizes)
    floor_drop = step_s(full) * (args.n // c["batch"])
    flops = 2 * sum(a * b for a, b in dims) * 3 - 2 * dims[0][0] * dims[0][1]   # per sample
    return {
        "floor": cfg, "batch": c["batch"], "threads": args.threads, "dtype": "float32",
        "layers": [list(d) for d in dims], "kinds": [k for _, _, k in specs],
        "n": args.n, "steps": len(sizes),
        "matmuls_per_step": 3 * len(dims) - 1,
        "floor_epoch_s": round(floor, 4),                    # all n rows, last partial batch kept
        "floor_samples_per_s": round(args.n / floor, 1),
        "floor_epoch_s_drop_last": round(floor_drop, 4),     # the peer's n // batch steps
        "first_layer_dx_epoch_s": round(sum(per_size[B][0]["bwd G@W.T"] for B in sizes), 4),
        "step_matmul_s": round(step_s(full), 7),
        "flops_per_sample": flops,
        "step_gflops": round(flops * c["batch"] / step_s(full) / 1e9, 1),
        "per_matmul_us": [{k: (round(v * 1e6, 1) if isinstance(v, float) else v)
                           for k, v in r.items()} for r in full],
        "other_busy_frac": other_busy_frac(busy0, busy1, cpu1 - cpu0, w1 - w0),
        "numpy": np.__version__, "blas": blas_info(),
    }


# ------------------------------------------------------------ compare mode
def run_compare(args):
    if not os.path.exists(args.peer_script):
        sys.exit("--peer-script: %s does not exist; pass the path of peers_torch_family.py"
                 % args.peer_script)
    if not os.path.exists(args.peer_python):
        sys.exit("--peer-python: %s does not exist; create the peer environment "
                 "(python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch==2.13.0 numpy) "
                 "or pass its interpreter" % args.peer_python)
    common = ["--epochs", str(args.epochs), "--threads", str(args.threads), "--n", str(args.n),
              "--seed", str(args.random_state), "--warmup", str(args.warmup)]
    env = dict(os.environ)
    for cfg in args.configs:
        rows, discarded = [], []
        for r in range(args.rounds):
            for attempt in range(args.retries + 1):
                q0 = _wait_quiet(args.max_busy, args.idle_wait) if args.idle_wait else None
                a, oa = _run_json([sys.executable, os.path.abspath(__file__), "--config", cfg]
                                  + (["--drop-last"] if args.drop_last else []) + common, env)
                q1 = _wait_quiet(args.max_busy, args.idle_wait) if args.idle_wait else None
                peer_cfg = CONFIGS[cfg].get("peer", cfg)
                b, ob = _run_json([args.peer_python, args.peer_script, "--config", peer_cfg]
                                  + common, env)
                oa_timed = a.get("other_busy_frac", oa)
                row = {"round": r, "attempt": attempt,
                       "npcae_samples_per_s": a["samples_per_s"],
                       "torch_samples_per_s": b["samples_per_s"],
                       "npcae_epoch_s": a["epoch_s"], "torch_epoch_s": b["epoch_s"],
                       "npcae_n": a["n"], "torch_n": b["n"],
                       "ratio": round(a["samples_per_s"] / b["samples_per_s"], 4),
                       "npcae_minflt": a.get("minflt_timed"), "torch_minflt": b.get("minflt_timed"),
                       "npcae_train_loss": a.get("train_loss_last_epoch"),
                       "torch_train_loss": b.get("train_loss_last_epoch"),
                       "other_busy_frac": [oa_timed, ob], "quiet_before": [q0, q1]}
                noisy = any(f is not None and f > args.max_busy for f in (oa_timed, ob))
                print(json.dumps(dict(row, config=cfg, noisy=noisy, progress=True)),
                      file=sys.stderr, flush=True)
                if not noisy or attempt == args.retries:
                    row["noisy"] = noisy
                    rows.append(row)
                    break
                discarded.append(row)
        print(json.dumps(summarize_rounds(rows, discarded, args, compare="npcae/torch",
                                          config=cfg)), flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.compare:
        run_compare(args)
        return
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(args.threads)
    if "numpy" in sys.modules:
        print("warning: numpy imported before thread limits were set", file=sys.stderr)
    if args.floor:
        for cfg in args.configs:
            print(json.dumps(run_floor(args, cfg)), flush=True)
        return
    if REPO not in sys.path:
        sys.path.insert(0, REPO)          # benchmark the working tree, not an installed copy
    X = make_data(args.n, D, args.random_state)
    for cfg in args.configs:
        print(json.dumps(run_single(args, cfg, X)), flush=True)


if __name__ == "__main__":
    main()
