"""The ``npcae`` command line: ``demo``, ``train``, ``gradcheck``, ``inspect``.

``npcae demo`` is the main job: it trains a contractive autoencoder on MNIST
when the files are available (``--data-dir``, ``$NPCAE_DATA_DIR`` or
``~/.cache/npcae``; it never waits on a network it does not have), otherwise
on the built-in procedural digits, and writes the figures and a summary into
one folder.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


# --------------------------------------------------------------------------- helpers
def _load_data(name, n_train, n_test, seed, data_dir, download):
    """Return (X_train, y_train, X_test, y_test, description)."""
    from .datasets import DatasetNotFoundError, load_dataset
    if name == "auto":
        try:
            return _load_data("mnist", n_train, n_test, seed, data_dir, download=False)
        except DatasetNotFoundError:
            print("MNIST files not found locally (looked in --data-dir, $NPCAE_DATA_DIR and "
                  "~/.cache/npcae/mnist); using the built-in procedural digits instead.",
                  flush=True)
            return _load_data("digits", n_train, n_test, seed, data_dir, download=False)
    X, y = load_dataset(name, "train", n_samples=n_train, seed=seed, data_dir=data_dir,
                        download=download)
    X_test, y_test = load_dataset(name, "test", n_samples=n_test, seed=seed,
                                  data_dir=data_dir, download=download)
    desc = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST",
            "digits": "built-in procedural digits (npcae.datasets.make_digits)"}[name]
    return X, y, X_test, y_test, desc


def _build_model(args):
    from .models import ContractiveAutoencoder
    from .optim import Adam
    if args.model != "cae":
        raise SystemExit(f"npcae: unknown --model {args.model!r}; available: cae")
    out_act = "sigmoid" if args.loss == "bce" else "identity"
    return ContractiveAutoencoder(n_hidden=args.hidden, lam=args.lam,
                                  activation=args.activation, output_activation=out_act,
                                  loss=args.loss, tied=not args.untied,
                                  optimizer=Adam(lr=args.lr), batch_size=args.batch_size,
                                  epochs=args.epochs, seed=args.seed,
                                  verbose=0 if args.quiet else 1)


def _write_json(path, obj):
    from .io import atomic_write
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2).encode()))


def _evaluate(model, X_test, n_analysis):
    """Numbers that describe a trained CAE on held-out data."""
    from .analysis import jacobian_spectrum, summarize_spectrum
    terms = model.loss_terms(X_test)
    R = model.reconstruct(X_test)
    d = X_test.shape[1]
    svals = jacobian_spectrum(model, X_test[:n_analysis])
    spec = summarize_spectrum(svals)
    return {
        "test_reconstruction_per_sample": terms["reconstruction"],
        "test_reconstruction_per_pixel": terms["reconstruction"] / d,
        "test_mse_per_pixel": float(np.mean((R - X_test) ** 2)),
        "test_contractive_mean_sq_frobenius": terms["contractive"],
        "test_jacobian_frobenius_mean": float(model.jacobian_norm(X_test).mean()),
        "fraction_singular_values_below_1": float(np.mean(svals < 1.0)),
        "mean_top5_singular_values": [float(v) for v in svals[:, :5].mean(axis=0)],
        "effective_rank": spec["effective_rank"],
    }, svals


def _figures(model, X_test, svals, out, n_analysis):
    """Write the teaching figures; returns the list of files, or [] without matplotlib."""
    try:
        from . import plotting
    except ImportError:
        return []
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: skipping figures (pip install 'npcae[demo]').")
        return []
    from .analysis import tangent_directions
    files = []
    side = int(round(np.sqrt(X_test.shape[1])))
    shape = (side, side) if side * side == X_test.shape[1] else None
    if shape is not None:
        plotting.plot_reconstructions(X_test[:10], model.reconstruct(X_test[:10]),
                                      image_shape=shape, path=out / "reconstructions.png")
        plotting.plot_filters(model.params["W"], image_shape=shape, n=64,
                              path=out / "filters.png")
        idx = np.arange(min(4, len(X_test)))
        tangents, tsv = tangent_directions(model, X_test[idx], n_directions=5)
        plotting.plot_tangents(X_test[idx], tangents, tsv, image_shape=shape, n_points=len(idx),
                               path=out / "tangents.png")
        files += ["reconstructions.png", "filters.png", "tangents.png"]
    plotting.plot_spectrum(svals, path=out / "spectrum.png",
                           title=f"Encoder Jacobian singular values ({n_analysis} test points)")
    plotting.plot_history(model.history_, path=out / "history.png")
    return files + ["spectrum.png", "history.png"]


def _train_and_report(args, out, header):
    out.mkdir(parents=True, exist_ok=True)
    X, _, X_test, _, desc = _load_data(args.data, args.n_train, args.n_test, args.seed,
                                       args.data_dir, download=getattr(args, "download", False))
    print(f"{header}: {desc}, {X.shape[0]} training / {X_test.shape[0]} test images, "
          f"{X.shape[1]} pixels", flush=True)
    model = _build_model(args)
    print(f"model: {model!r}", flush=True)
    t0 = time.perf_counter()
    model.fit(X, validation_data=X_test[:2000])
    train_s = time.perf_counter() - t0
    summary, svals = _evaluate(model, X_test, args.n_analysis)
    summary.update({"data": desc, "n_train": int(X.shape[0]), "n_test": int(X_test.shape[0]),
                    "train_seconds": train_s, "hyperparameters": {
                        k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
                        for k, v in model.get_params().items()}})
    model.save(out / "model.npz")
    _write_json(out / "history.json", model.history_)
    files = _figures(model, X_test, svals, out, args.n_analysis)
    _write_json(out / "summary.json", summary)
    print(f"\ntrained in {train_s:.1f} s")
    print(f"test reconstruction loss ({args.loss}): {summary['test_reconstruction_per_sample']:.3f} "
          f"per image, {summary['test_reconstruction_per_pixel']:.4f} per pixel; "
          f"MSE per pixel {summary['test_mse_per_pixel']:.4f}")
    print(f"mean ||J_f(x)||_F on test points: {summary['test_jacobian_frobenius_mean']:.3f}; "
          f"{100 * summary['fraction_singular_values_below_1']:.1f}% of the Jacobian's "
          f"singular values are < 1; the top five average "
          + ", ".join(f"{v:.2f}" for v in summary["mean_top5_singular_values"]))
    print(f"\nwrote to {out}/: model.npz, history.json, summary.json"
          + ("".join(f", {f}" for f in files)))
    return model, summary


# --------------------------------------------------------------------------- commands
def _cmd_demo(args):
    _train_and_report(args, Path(args.out), "npcae demo")
    print("\nNext: `npcae inspect {0}/model.npz`, or `npcae train --help` for more "
          "options.".format(args.out))
    return 0


def _cmd_train(args):
    _train_and_report(args, Path(args.out), "npcae train")
    return 0


def _cmd_gradcheck(args):
    from .audit import format_audit, run_audit
    rows = run_audit(seed=args.seed, rtol=args.rtol)
    print(format_audit(rows, rtol=args.rtol))
    return 0 if all(r.passed for r in rows) else 1


def _cmd_inspect(args):
    from . import load
    model = load(args.path)
    print(f"{type(model).__name__} ({args.path})")
    for k, v in model.get_params().items():
        print(f"  {k} = {v!r}")
    print("parameters:")
    for k, v in model.params.items():
        print(f"  {k}: shape {v.shape}, dtype {v.dtype}, |mean| {np.abs(v).mean():.4g}")
    h = model.history_
    if h.get("total"):
        print(f"trained {len(h['total'])} epochs; last: " + ", ".join(
            f"{k} {h[k][-1]:.4g}" for k in h if isinstance(h[k], list) and h[k]
            and k not in ("epoch_time_s",)))
    return 0


# --------------------------------------------------------------------------- parser
def _add_training_args(p, *, epochs, hidden, lam, n_train, data):
    p.add_argument("--model", default="cae", help="model to train (default: cae)")
    p.add_argument("--data", default=data, choices=["auto", "mnist", "fashion_mnist", "digits"],
                   help=f"dataset (default: {data}); 'auto' = MNIST if found, else digits")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files")
    p.add_argument("--hidden", type=int, default=hidden, help=f"hidden units (default {hidden})")
    p.add_argument("--lam", type=float, default=lam,
                   help=f"contractive penalty weight (default {lam})")
    p.add_argument("--activation", default="sigmoid", help="encoder activation")
    p.add_argument("--loss", default="bce", choices=["bce", "mse"],
                   help="bce (sigmoid decoder) or mse (linear decoder)")
    p.add_argument("--untied", action="store_true", help="separate decoder weights")
    p.add_argument("--epochs", type=int, default=epochs, help=f"epochs (default {epochs})")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--n-train", type=int, default=n_train,
                   help="training images to use (default: %(default)s; 0 = all)")
    p.add_argument("--n-test", type=int, default=10000)
    p.add_argument("--n-analysis", type=int, default=500,
                   help="test points for the Jacobian spectrum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="npcae", description="Contractive autoencoders in pure NumPy, gradient-checked.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train a CAE on MNIST (or built-in digits) and write figures")
    _add_training_args(p, epochs=20, hidden=64, lam=0.5, n_train=0, data="auto")
    p.add_argument("--out", default="npcae-demo", help="output folder (default: npcae-demo)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train a model and save it with its history and figures")
    _add_training_args(p, epochs=10, hidden=64, lam=0.1, n_train=0, data="mnist")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--download", action="store_true",
                   help="download MNIST if it is not found (needs network)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("gradcheck", help="audit every gradient in the library (float64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rtol", type=float, default=1e-7)
    p.set_defaults(func=_cmd_gradcheck)

    p = sub.add_parser("inspect", help="describe a saved model")
    p.add_argument("path")
    p.set_defaults(func=_cmd_inspect)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("n_train",):
        if getattr(args, name, None) == 0:
            setattr(args, name, None)
    from .datasets import DatasetNotFoundError
    from .io import ModelFileError
    try:
        return args.func(args)
    except (DatasetNotFoundError, ModelFileError, FileNotFoundError, ValueError,
            TypeError) as exc:
        print(f"npcae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
