#!/usr/bin/env python3
"""Time one npcae contractive-autoencoder training epoch in the shared peer's setting.

Setting (identical to ``shared/bench/peers_torch.py``): 60,000 x 784 synthetic
MNIST-shaped data from the same recipe and random seed, float32, batch 100, sigmoid
encoder and decoder, tied weights, BCE summed over pixels + lam * ||J_f||_F^2
(lam 0.1), mean over the batch, Adam lr 1e-3, 2 BLAS threads.

Single mode prints ONE JSON line per ``--hidden`` value::

    python benchmarks/bench_cae.py --hidden 64
    python benchmarks/bench_cae.py --hidden 512 --epochs 3 --tracemalloc

Compare mode runs this script and the torch peer in subprocesses, alternately
(A B A B ...) for ``--rounds`` rounds, and prints one JSON line per hidden size
with the median ratio npcae_samples_per_s / torch_samples_per_s::

    python benchmarks/bench_cae.py --compare --hidden 64,512

The peer needs its own environment (see shared/bench/README.md):
``python3 -m venv /tmp/peers && /tmp/peers/bin/pip install -q torch==2.13.0 numpy threadpoolctl``.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_PEER = os.path.normpath(os.path.join(REPO, "..", "shared", "bench", "peers_torch.py"))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", default="64",
                    help="hidden size, or a comma-separated list (one JSON line each)")
    ap.add_argument("--epochs", type=int, default=1,
                    help="measured epochs (each a fresh fit(X) with epochs=1, timed by the "
                         "training loop's own epoch timer); median reported")
    ap.add_argument("--threads", type=int, default=2, help="BLAS threads (set before numpy import)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=784)
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--random-state", "--seed", dest="random_state", type=int, default=0,
                    help="seed of the data and of the model (the peer's --seed; default 0)")
    ap.add_argument("--warmup", type=int, default=3,
                    help="batches in the untimed warm-up fit on a throwaway model (0: none)")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="after timing, run one more (untimed) identical epoch under tracemalloc "
                         "and report its peak traced allocation")
    ap.add_argument("--compare", action="store_true",
                    help="run npcae and the torch peer alternately in subprocesses")
    ap.add_argument("--rounds", type=int, default=3, help="A/B rounds in --compare")
    ap.add_argument("--peer-python", default="/tmp/peers/bin/python",
                    help="interpreter with torch==2.13.0 for the peer")
    ap.add_argument("--peer-script", default=DEFAULT_PEER, help="path to peers_torch.py")
    ap.add_argument("--peer-impl", default="torch_closed", choices=["torch_closed", "torch_autograd"])
    ap.add_argument("--max-busy", type=float, default=0.10,
                    help="--compare: a run during which other processes used more than this "
                         "share of the cores is discarded and redone (default 0.10)")
    ap.add_argument("--idle-wait", type=float, default=120,
                    help="--compare: before each run wait up to this many seconds for the "
                         "machine to be quiet (other processes < --max-busy); 0: don't wait")
    ap.add_argument("--retries", type=int, default=3,
                    help="--compare: redo a noisy round at most this many times")
    args = ap.parse_args(argv)
    try:
        args.hidden_list = [int(h) for h in str(args.hidden).split(",") if h.strip()]
    except ValueError:
        ap.error("--hidden must be an int or a comma-separated list of ints")
    if not args.hidden_list or min(args.hidden_list) < 1:
        ap.error("--hidden must be positive")
    for name in ("epochs", "threads", "batch", "n", "dim", "rounds"):
        if getattr(args, name) < 1:
            ap.error("--%s must be >= 1" % name)
    if args.warmup < 0 or args.retries < 0 or args.idle_wait < 0:
        ap.error("--warmup, --retries and --idle-wait must be >= 0")
    return args


# ----------------------------------------------------------------- helpers
def make_data(n, d, random_state):
    """Same recipe as shared/bench/peers_torch.py (same seed -> same array):
    binarised + blurred pixels in [0, 1], quantised to /255, float32."""
    import numpy as np
    rng = np.random.default_rng(random_state)
    x = (rng.random((n, d), dtype=np.float32) > 0.75).astype(np.float32)
    x = (x + np.roll(x, 1, axis=1) + np.roll(x, -1, axis=1)) / np.float32(3)
    return np.round(x * 255) / np.float32(255)


def blas_info():
    """threadpoolctl if importable, else numpy's build config (no hard dependency)."""
    try:
        from threadpoolctl import threadpool_info
        return [{k: i.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for i in threadpool_info()]
    except ImportError:
        pass
    try:
        import numpy as np
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        return [{"internal_api": blas.get("name"), "version": blas.get("version"),
                 "config": blas.get("openblas configuration"), "source": "numpy.show_config"}]
    except Exception:                       # very old numpy: no dict mode
        return None


def minflt():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: KiB


def reset_hwm():
    """Reset the kernel's peak-RSS mark (Linux clear_refs 5); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def proc_status_mb(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def cpu_busy_s():
    """Seconds of CPU time the whole machine has been busy (all cores, /proc/stat), or None.

    Compared with this process's own CPU time it shows how much *other* work ran
    during a measurement, including processes invisible in this PID namespace."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")   # minus idle, iowait
    except (OSError, ValueError, IndexError):
        return None


def own_cpu_s(who=resource.RUSAGE_SELF):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def other_busy_frac(busy0, busy1, own_cpu, wall):
    """Fraction of the machine's cores used by other processes over ``wall`` seconds."""
    if busy0 is None or busy1 is None or wall <= 0:
        return None
    ncpu = os.cpu_count() or 1
    return round(min(1.0, max(0.0, (busy1 - busy0) - own_cpu) / (wall * ncpu)), 3)


def machine_busy_frac(window=1.0):
    b0 = cpu_busy_s()
    time.sleep(window)
    b1 = cpu_busy_s()
    return other_busy_frac(b0, b1, 0.0, window)


def loadavg():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def model_params(model):
    """(W (H, D), b (H,), c (D,)) of a fitted tied CAE, or None if not found."""
    import numpy as np
    cands = []
    for name in ("get_params_arrays", "weights"):
        f = getattr(model, name, None)
        if callable(f):
            try:
                cands.append(f())
            except Exception:
                pass
    pd = getattr(model, "params", None)
    if isinstance(pd, dict) and all(k in pd for k in ("W", "b", "c")):
        cands.append((pd["W"], pd["b"], pd["c"]))
    for attrs in (("W_", "b_", "c_"), ("W", "b", "c"), ("W_", "bh_", "bv_")):
        if all(hasattr(model, a) for a in attrs):
            cands.append(tuple(getattr(model, a) for a in attrs))
    for c in cands:
        try:
            W, b, c_ = (np.asarray(t) for t in c)
        except Exception:
            continue
        if W.ndim == 2 and b.ndim == 1 and c_.ndim == 1:
            if W.shape == (b.size, c_.size):
                return W, b, c_
            if W.shape == (c_.size, b.size):
                return W.T, b, c_
    return None


def eval_loss(W, b, c, X, lam):
    """The peer's common reference loss (float64, stable); W: (H, D)."""
    import numpy as np
    W, b, c, X = (np.asarray(t, np.float64) for t in (W, b, c, X))
    h = 1 / (1 + np.exp(-(X @ W.T + b)))
    a = h @ W + c
    bce = (np.maximum(a, 0) + np.log1p(np.exp(-np.abs(a))) - X * a).sum(1)
    pen = ((h * (1 - h)) ** 2) @ (W * W).sum(1)
    return float(np.mean(bce + lam * pen))


# ------------------------------------------------------------- single mode
def run_single(args, H, X):
    import numpy as np
    import npcae
    from npcae import ContractiveAutoencoder
    from npcae.optim import Adam

    def mk():
        return ContractiveAutoencoder(
            n_hidden=H, lam=args.lam, activation="sigmoid", output_activation="sigmoid",
            loss="bce", tied=True, optimizer=Adam(lr=args.lr), batch_size=args.batch,
            epochs=1, random_state=args.random_state, dtype=np.float32, verbose=0)

    if args.warmup:
        k = min(X.shape[0], args.warmup * args.batch)
        mk().fit(X[:k])

    n_used = (X.shape[0] // args.batch) * args.batch
    load0 = loadavg()
    rss0 = proc_status_mb("VmRSS")
    hwm_ok = reset_hwm()
    f0 = minflt()
    busy0, cpu0, w0 = cpu_busy_s(), own_cpu_s(), time.perf_counter()
    times, fit_times, losses, model = [], [], [], None
    for _ in range(args.epochs):
        model = mk()
        t0 = time.perf_counter()
        model.fit(X)
        fit_times.append(time.perf_counter() - t0)
        hist = model.history_
        # The epoch as the training loop times it: from drawing the permutation to the
        # last optimiser step -- the same region the peer's timer covers. fit() adds
        # input validation and initialisation on top (reported as fit_times).
        times.append(hist["epoch_time_s"][-1])
        key = next((k for k in ("loss", "total") if hist.get(k)), None)
        losses.append(hist[key][-1] if key else None)
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

    p = model_params(model)
    ep = statistics.median(times)
    last = losses[-1]
    return {
        "impl": "npcae", "hidden": H, "epoch_s": round(ep, 4),
        "samples_per_s": round(n_used / ep, 1),
        "threads": args.threads, "dtype": "float32", "batch": args.batch, "n": n_used,
        "dim": args.dim, "epochs": args.epochs, "lam": args.lam,
        "epoch_times": [round(t, 4) for t in times],
        "fit_times": [round(t, 4) for t in fit_times],    # whole fit(X) calls, for reference
        "train_loss_last_epoch": None if last is None else round(float(last), 4),
        # the peer's common float64 eval on the first 5000 rows (if params are reachable)
        "final_loss": None if p is None else round(eval_loss(*p, X[:5000], args.lam), 4),
        "minflt_timed": faults,
        "peak_rss_mb": round(maxrss_mb(), 1),            # whole process (includes data creation)
        "rss_before_timed_mb": None if rss0 is None else round(rss0, 1),
        "peak_rss_timed_mb": None if hwm is None else round(hwm, 1),   # VmHWM reset before timing
        "tracemalloc_peak_mb": tm_peak,                  # extra untimed epoch, if --tracemalloc
        "loadavg_1min": [load0, load1],
        # share of the cores other processes used while timing (0 = quiet machine)
        "other_busy_frac": other_busy_frac(busy0, busy1, cpu1 - cpu0, w1 - w0),
        "own_cpu_s": round(cpu1 - cpu0, 3),
        "optimizer": "adam lr=%g" % args.lr,
        "numpy": np.__version__,
        "npcae": getattr(npcae, "__version__", None),
        "npcae_path": os.path.dirname(getattr(npcae, "__file__", "") or ""),
        "blas": blas_info(),
        "env": {k: os.environ.get(k) for k in
                ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "GLIBC_TUNABLES", "MALLOC_ARENA_MAX")},
    }


# ------------------------------------------------------------ compare mode
def _run_json(cmd, env):
    """Run ``cmd``; return (its last JSON line, share of the cores others used meanwhile)."""
    busy0, ch0, w0 = cpu_busy_s(), own_cpu_s(resource.RUSAGE_CHILDREN), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    busy1, ch1, w1 = cpu_busy_s(), own_cpu_s(resource.RUSAGE_CHILDREN), time.perf_counter()
    if p.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr[-3000:]))
    lines = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise RuntimeError("no JSON from: %s\n%s" % (" ".join(cmd), p.stdout[-2000:]))
    return json.loads(lines[-1]), other_busy_frac(busy0, busy1, ch1 - ch0, w1 - w0)


def _wait_quiet(max_busy, max_wait):
    """Wait (at most ``max_wait`` s) until others use < ``max_busy`` of the cores; return it."""
    t_end = time.time() + max_wait
    while True:
        f = machine_busy_frac(1.0)
        if f is None or f < max_busy or time.time() >= t_end:
            return f
        time.sleep(4)


def summarize_rounds(rows, discarded, args, **ident):
    """The one-line summary of an A/B comparison: medians over the quiet rounds (all rounds
    when none was quiet), the per-round ratios, and every kept run. ``ident`` names it."""
    clean = [x for x in rows if not x["noisy"]]
    use = clean or rows                      # medians over quiet rounds when there are any

    def med(key):
        return statistics.median(x[key] for x in use)
    return {**ident, "rounds": args.rounds,
            "ratio_median": round(med("ratio"), 4),
            "ratios": [x["ratio"] for x in use],
            "clean_rounds": len(clean),
            "npcae_samples_per_s_median": round(med("npcae_samples_per_s"), 1),
            "torch_samples_per_s_median": round(med("torch_samples_per_s"), 1),
            "npcae_epoch_s_median": round(med("npcae_epoch_s"), 4),
            "torch_epoch_s_median": round(med("torch_epoch_s"), 4),
            "noisy_rounds_kept": len(rows) - len(clean),
            "rounds_discarded_as_noisy": len(discarded),
            "threads": args.threads, "epochs_per_run": args.epochs, "runs": rows}


def run_compare(args):
    if not os.path.exists(args.peer_script):
        sys.exit("peer script not found: %s (use --peer-script)" % args.peer_script)
    if not os.path.exists(args.peer_python):
        sys.exit("peer interpreter not found: %s (see shared/bench/README.md; --peer-python)"
                 % args.peer_python)
    common = ["--epochs", str(args.epochs), "--threads", str(args.threads),
              "--batch", str(args.batch), "--n", str(args.n), "--dim", str(args.dim),
              "--seed", str(args.random_state), "--warmup", str(args.warmup)]
    env = dict(os.environ)
    for H in args.hidden_list:
        rows, discarded = [], []
        for r in range(args.rounds):
            for attempt in range(args.retries + 1):
                q0 = _wait_quiet(args.max_busy, args.idle_wait) if args.idle_wait else None
                a, oa = _run_json([sys.executable, os.path.abspath(__file__), "--hidden", str(H),
                                   "--lam", repr(args.lam), "--lr", repr(args.lr)] + common, env)
                q1 = _wait_quiet(args.max_busy, args.idle_wait) if args.idle_wait else None
                b, ob = _run_json([args.peer_python, args.peer_script, "--impl", args.peer_impl,
                                   "--hidden", str(H)] + common, env)
                # the npcae child measures its own timed region; the peer only its whole life
                oa_timed = a.get("other_busy_frac", oa)
                row = {"round": r, "attempt": attempt,
                       "npcae_samples_per_s": a["samples_per_s"],
                       "torch_samples_per_s": b["samples_per_s"],
                       "npcae_epoch_s": a["epoch_s"], "torch_epoch_s": b["epoch_s"],
                       "ratio": round(a["samples_per_s"] / b["samples_per_s"], 4),
                       "npcae_minflt": a.get("minflt_timed"), "torch_minflt": b.get("minflt_timed"),
                       "npcae_final_loss": a.get("final_loss"),
                       "torch_final_loss": b.get("final_loss"),
                       "npcae_peak_rss_timed_mb": a.get("peak_rss_timed_mb"),
                       "other_busy_frac": [oa_timed, ob], "quiet_before": [q0, q1]}
                noisy = any(f is not None and f > args.max_busy for f in (oa_timed, ob))
                print(json.dumps(dict(row, hidden=H, noisy=noisy, progress=True)),
                      file=sys.stderr, flush=True)
                if not noisy or attempt == args.retries:
                    row["noisy"] = noisy
                    rows.append(row)
                    break
                discarded.append(row)
        print(json.dumps(summarize_rounds(rows, discarded, args, compare="npcae/%s" % args.peer_impl,
                                          hidden=H)), flush=True)


def main(argv=None):
    args = parse_args(argv)
    if args.compare:
        run_compare(args)
        return
    # Thread control must happen before numpy is imported.
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[v] = str(args.threads)
    if "numpy" in sys.modules:
        print("warning: numpy imported before thread limits were set", file=sys.stderr)
    if REPO not in sys.path:
        sys.path.insert(0, REPO)          # benchmark the working tree, not an installed copy
    X = make_data(args.n, args.dim, args.random_state)
    for H in args.hidden_list:
        print(json.dumps(run_single(args, H, X)), flush=True)


if __name__ == "__main__":
    main()
