"""The ``npcae`` command line: ``demo``, ``train``, ``gradcheck``, ``inspect``, ``reference``,
``verify``.

``npcae demo`` is the main job: it trains a contractive autoencoder on MNIST
when the files are available (``--data-dir``, ``$NPCAE_DATA_DIR`` or
``~/.cache/npcae``; it never waits on a network it does not have), otherwise
on the built-in procedural digits, and writes the figures and a summary into
one folder.

Interrupting ``npcae train`` or ``npcae demo`` (Ctrl-C, or SIGTERM) after at
least one epoch saves the model as of the last completed epoch into the
output folder and exits with 130 (SIGINT) or 143 (SIGTERM). The library
installs no signal handlers: the SIGTERM handler is the command line's, and it
is in place only while a command runs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]

_EXIT_ERROR = 2
_EXIT_SIGINT = 128 + 2
_EXIT_SIGTERM = 128 + 15


class _CommandError(Exception):
    """A usage problem found by a command (not by argparse); reported on one line, exit 2."""


class _Terminated(KeyboardInterrupt):
    """Raised by the command line's SIGTERM handler.

    A subclass of KeyboardInterrupt, so that ``fit`` treats SIGTERM exactly like
    Ctrl-C (it leaves the model as after the last completed epoch and re-raises),
    and every ``except BaseException`` clean-up (temporary files of atomic
    writes) runs on the way out.
    """


# --------------------------------------------------------------------------- signals
def _raise_terminated(signum, frame):
    raise _Terminated()


@contextlib.contextmanager
def _interrupt_handlers():
    """While a command runs: SIGTERM raises :class:`_Terminated`, and SIGINT raises
    KeyboardInterrupt (Python's own handler, installed only if SIGINT is at ``SIG_DFL``,
    as in an embedding interpreter; a caller's own SIGINT handler is kept).

    The previous handlers are restored afterwards. A signal that is ignored
    (``SIG_IGN``, e.g. SIGINT for a background job) or handled outside Python
    is left alone, and nothing is installed off the main thread (where Python
    does not allow it).
    """
    previous = {}
    if threading.current_thread() is threading.main_thread():
        old = signal.getsignal(signal.SIGTERM)
        if old is not signal.SIG_IGN and old is not None:
            previous[signal.SIGTERM] = old
            signal.signal(signal.SIGTERM, _raise_terminated)
        if signal.getsignal(signal.SIGINT) is signal.SIG_DFL:
            previous[signal.SIGINT] = signal.SIG_DFL
            signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _interrupt_exit(exc):
    return _EXIT_SIGTERM if isinstance(exc, _Terminated) else _EXIT_SIGINT


def _interrupt_name(exc):
    return "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted"


# --------------------------------------------------------------------------- argument types
def _int_type(minimum, requirement):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {requirement}; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {requirement}; got {value}")
        return value
    parse.__name__ = "int"
    return parse


def _float_type(minimum, *, strict, requirement):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {requirement}; got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {requirement}; got {text!r}")
        return value
    parse.__name__ = "float"
    return parse


_positive_int = _int_type(1, "a positive integer (1 or more)")
_non_negative_int = _int_type(0, "a non-negative integer (0 or more)")
_positive_float = _float_type(0.0, strict=True, requirement="a finite number greater than 0")
_non_negative_float = _float_type(0.0, strict=False, requirement="a finite number >= 0")


def _open_unit_float(text):
    """A number strictly between 0 and 1 (``--rho``)."""
    requirement = "a number strictly between 0 and 1, e.g. 0.05"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {requirement}; got {text!r}") from None
    if not (0.0 < value < 1.0):                   # also refuses nan
        raise argparse.ArgumentTypeError(f"must be {requirement}; got {text!r}")
    return value


_open_unit_float.__name__ = "float"


# --------------------------------------------------------------------------- output folder
def _prepare_out(out):
    """Check ``--out`` before any work; return the folders this run would create, deepest first.

    Nothing is created here: the folder is made when the first file is saved,
    so a run that fails before that leaves nothing behind.
    """
    if out.is_symlink() and not out.exists():
        raise _CommandError(f"--out {out} is a broken symbolic link; pass a folder path.")
    if out.exists():
        if not out.is_dir():
            raise _CommandError(f"--out {out} is an existing file, not a folder; pass a folder "
                                f"path (it is created if needed), or move the file away.")
        if not os.access(out, os.W_OK | os.X_OK):
            raise _CommandError(f"--out {out}: the folder is not writable; pass another folder.")
        return []
    missing, p = [], out.absolute()
    while not p.exists() and not p.is_symlink() and p.parent != p:
        missing.append(p)
        p = p.parent
    if not p.is_dir():
        raise _CommandError(f"--out {out}: {p} exists and is not a folder, so the output "
                            f"folder cannot be created there; pass another path.")
    if not os.access(p, os.W_OK | os.X_OK):
        raise _CommandError(f"--out {out}: cannot create a folder in {p} (no write permission); "
                            f"pass another folder.")
    return missing


def _remove_if_empty(created):
    """Remove the folders this run created (deepest first) while they are still empty."""
    for folder in created:
        try:
            folder.rmdir()          # only ever removes an empty folder
        except OSError:
            break


# --------------------------------------------------------------------------- helpers
def _load_data(name, n_train, n_test, random_state, data_dir, download):
    """Return (X_train, y_train, X_test, y_test, description)."""
    from .datasets import load_train_test
    data = load_train_test(name, n_train, n_test, random_state, data_dir, download=download)
    if name == "auto" and data[4] != "MNIST":
        print(f"using {data[4]}.", flush=True)
    return data


# options that belong to one kind of model: option -> (args attribute, models, default)
_MODEL_OPTIONS = {
    "--sparsity": ("sparsity", ("sae",), "kl"),
    "--beta": ("beta", ("sae",), 3.0),
    "--rho": ("rho", ("sae",), 0.05),
    "--noise": ("noise", ("dae",), "masking"),
    "--noise-level": ("noise_level", ("dae",), 0.25),
    "--n-latent": ("n_latent", ("vae",), 20),
    "--decoder": ("decoder", ("vae",), "bernoulli"),
    "--tied": ("tied", ("ae", "sae", "dae", "deep_cae"), False),
    "--untied": ("untied", ("cae",), False),
    "--lam": ("lam", ("cae", "deep_cae"), None),   # default: the command's (args.lam_default)
    "--penalty": ("penalty", ("deep_cae",), "exact"),
    "--n-projections": ("n_projections", ("deep_cae",), 4),
    "--gamma": ("gamma", ("deep_cae",), 0.0),
    "--sigma": ("sigma", ("deep_cae",), 0.1),
    "--n-corrupt": ("n_corrupt", ("deep_cae",), 4),
    "--stage-model": ("stage_model", ("stacked",), "cae"),
    "--no-fine-tune": ("no_fine_tune", ("stacked",), False),
}

# --model stacked builds one --stage-model per width of --layers; these options go to the stages
_STAGE_MODELS = ("cae", "ae", "sae", "dae")


def _options_kind(args, models):
    """The model an option is checked against: a stage option of --model stacked belongs to
    its --stage-model (e.g. --noise with --stage-model dae)."""
    if args.model == "stacked" and "stacked" not in models:
        return args.stage_model or "cae"
    return args.model


def _check_model_options(args):
    """Cross-option checks argparse cannot do alone; returns ``(option, message)`` or None.

    An option of another model is refused rather than silently ignored, and
    ``--noise-level`` is a probability (at most 1) except for Gaussian noise.
    Unset model options then get their defaults.
    """
    for option, (dest, models, _) in _MODEL_OPTIONS.items():
        value = getattr(args, dest, None)
        kind = _options_kind(args, models)
        if value not in (None, False) and kind not in models:
            used = "--model " + (models[0] if len(models) == 1 else
                                 ", ".join(models[:-1]) + " or " + models[-1])
            hint = (" (the CAE is tied by default; --untied unties it)"
                    if (option, kind) == ("--tied", "cae") else "")
            stage = [m for m in models if m in _STAGE_MODELS]
            if kind != args.model and stage:
                hint += f" (with --model stacked: --stage-model {stage[0]})"
            what = (f"--model stacked with --stage-model {kind}" if kind != args.model
                    else f"--model {kind}")
            return option, (f"applies to {used} only, not {what}; drop it or "
                            f"choose {used}{hint}")
    if args.model == "vae" and args.loss is not None:
        return "--loss", ("--model vae sets its reconstruction loss with --decoder "
                          "(bernoulli: cross-entropy; gaussian: squared error); drop --loss")
    for option, (dest, _, default) in _MODEL_OPTIONS.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, args.lam_default if dest == "lam" else default)
    if args.model == "stacked" and args.stage_model not in _STAGE_MODELS:
        return "--stage-model", f"must be one of {', '.join(_STAGE_MODELS)}"
    if _options_kind(args, ()) == "dae" and args.noise != "gaussian" and args.noise_level > 1:
        return "--noise-level", (f"with --noise {args.noise} it is the probability that a "
                                 f"pixel is corrupted, so it must lie in [0, 1]; got "
                                 f"{args.noise_level:g} (only --noise gaussian takes a "
                                 f"standard deviation above 1)")
    return None


def _loss_label(args):
    if args.model == "vae":
        return f"{args.decoder} negative log-likelihood"
    return args.loss or "bce"


def _build_model(args):
    from . import models
    from .optim import Adam
    loss = args.loss or "bce"
    activation = args.activation if args.activation is not None else (
        "relu" if args.model == "vae" else "sigmoid")
    common = dict(optimizer=Adam(lr=args.lr), batch_size=args.batch_size, epochs=args.epochs,
                  random_state=args.random_state, verbose=0 if args.quiet else 1)
    layers = args.layers if args.layers is not None else (args.hidden,)
    if args.model == "vae":
        VAE = getattr(models, "VariationalAutoencoder", None)
        if VAE is None:
            raise _CommandError("--model vae: this version of npcae has no "
                                "VariationalAutoencoder yet; choose cae, ae, sae or dae.")
        return VAE(layers=layers, n_latent=args.n_latent, activation=activation,
                   decoder=args.decoder, **common)
    common.update(output_activation="sigmoid" if loss == "bce" else "identity", loss=loss)
    if args.model == "ae":
        return models.Autoencoder(layers=layers, activation=activation, tied=bool(args.tied),
                                  **common)
    if args.model == "sae":
        return models.SparseAutoencoder(layers=layers, sparsity=args.sparsity, beta=args.beta,
                                        rho=args.rho, activation=activation,
                                        tied=bool(args.tied), **common)
    if args.model == "dae":
        return models.DenoisingAutoencoder(layers=layers, noise=args.noise,
                                           noise_level=args.noise_level, activation=activation,
                                           tied=bool(args.tied), **common)
    if args.model == "stacked":
        # one one-layer stage per width, each trained for --epochs; then --epochs of fine-tuning
        stages = [_build_model(argparse.Namespace(**{**vars(args), "model": args.stage_model,
                                                     "layers": (width,), "quiet": True}))
                  for width in layers]
        return models.StackedAutoencoder(stages=stages, fine_tune=not args.no_fine_tune,
                                         optimizer=Adam(lr=args.lr), batch_size=args.batch_size,
                                         epochs=args.epochs, random_state=args.random_state,
                                         verbose=0 if args.quiet else 1)
    if args.model == "deep_cae":
        return models.DeepContractiveAutoencoder(
            layers=layers, lam=args.lam, penalty=args.penalty, n_projections=args.n_projections,
            gamma=args.gamma, sigma=args.sigma, n_corrupt=args.n_corrupt,
            activation=activation, tied=bool(args.tied), **common)
    if args.layers is not None and len(args.layers) != 1:
        raise _CommandError(f"--model cae has one hidden layer; got --layers "
                            f"{','.join(map(str, args.layers))}. Use --hidden N, or --model ae "
                            f"for a deep autoencoder.")
    return models.ContractiveAutoencoder(n_hidden=layers[0], lam=args.lam,
                                         activation=activation, tied=not args.untied, **common)


def _activation_spec(text):
    """``"sigmoid"`` as is; ``"leaky_relu:0.2"`` as ``{"name": "leaky_relu", "alpha": 0.2}``."""
    name, _, slope = text.partition(":")
    if not slope:
        return name
    try:
        alpha = float(slope)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the slope after ':' must be a number, as in "
                                         f"leaky_relu:0.2; got {text!r}") from None
    return {"name": name, "alpha": alpha}


def _widths(text):
    """``"256,128,100"`` -> ``(256, 128, 100)``, every width a positive integer."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers such as "
                                         f"256,128,100; got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"every width must be a positive integer; got "
                                         f"{text!r}")
    return widths


def _write_json(path, obj):
    from .io import atomic_write
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2).encode()))


def _save_model(model, out):
    """Write ``model.npz`` and ``history.json`` into ``out`` (created if needed)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.npz")
    _write_json(out / "history.json", model.history_)


def _epochs_done(model):
    """Epochs completed so far (0 for ``None`` or a model that never finished one)."""
    if model is None:
        return 0
    try:
        n_iter = int(getattr(model, "n_iter_", 0) or 0)
    except (TypeError, ValueError):
        n_iter = 0
    history = getattr(model, "history_", None)
    total = history.get("total") if isinstance(history, dict) else None
    return max(n_iter, len(total) if isinstance(total, list) else 0)


def _save_after_interrupt(command, model, out, exc):
    """On Ctrl-C / SIGTERM: save what the completed epochs trained; returns the exit code."""
    code, what = _interrupt_exit(exc), _interrupt_name(exc)
    n = _epochs_done(model)
    if n == 0:
        print(f"npcae {command}: {what} before the first epoch completed; nothing was saved.",
              file=sys.stderr, flush=True)
        return code
    try:
        _save_model(model, out)     # a second Ctrl-C here stops it; no temp file is left
    except KeyboardInterrupt:
        print(f"npcae {command}: {what}, and interrupted again while saving; the model was "
              f"not saved.", file=sys.stderr, flush=True)
        return code
    except (OSError, ValueError, TypeError) as err:
        print(f"npcae {command}: {what}; could not save the model: {_one_line(err)}",
              file=sys.stderr, flush=True)
        return code
    print(f"npcae {command}: {what} after {n} completed epoch{'s' if n != 1 else ''}; saved "
          f"the model as of epoch {n} to {out / 'model.npz'} (history in "
          f"{out / 'history.json'}).", file=sys.stderr, flush=True)
    return code


def _has_jacobian(model):
    """Whether the model offers the encoder Jacobian ``jacobian(X) -> (n, k, d)``."""
    return callable(getattr(model, "jacobian", None))


def _psnr(mse):
    """Peak signal-to-noise ratio in dB of images in [0, 1]: ``10 log10(1 / MSE)``."""
    return float("inf") if mse <= 0 else float(10.0 * np.log10(1.0 / mse))


def _evaluate(model, X_test, n_analysis, random_state=0):
    """Numbers that describe a trained model (any npcae model) on held-out data.

    Returns ``(summary, svals)``; ``svals`` (the encoder Jacobian's singular values) is
    None for a model without ``jacobian``, and the Jacobian numbers are then left out.
    """
    from .analysis import jacobian_spectrum, summarize_spectrum
    terms = model.loss_terms(X_test)
    R = model.reconstruct(X_test)
    d = X_test.shape[1]
    summary = {
        "model": type(model).__name__,
        "test_terms": {k: float(v) for k, v in terms.items()},
        "test_reconstruction_per_sample": float(terms["reconstruction"]),
        "test_reconstruction_per_pixel": float(terms["reconstruction"]) / d,
        "test_mse_per_pixel": float(np.mean((R - X_test) ** 2)),
    }
    svals = None
    if _has_jacobian(model):
        try:
            svals = jacobian_spectrum(model, X_test[:n_analysis])
        except NotImplementedError:
            svals = None
    if svals is not None:
        spec = summarize_spectrum(svals)
        if callable(getattr(model, "jacobian_norm", None)):
            norms = model.jacobian_norm(X_test)
        else:                                   # ||J||_F^2 = sum of squared singular values
            norms = np.sqrt(np.sum(svals.astype(np.float64) ** 2, axis=1))
        summary.update({
            "test_contractive_mean_sq_frobenius": float(np.mean(norms ** 2)),
            "test_jacobian_frobenius_mean": float(norms.mean()),
            "fraction_singular_values_below_1": float(np.mean(svals < 1.0)),
            "mean_top5_singular_values": [float(v) for v in svals[:, :5].mean(axis=0)],
            "effective_rank": spec["effective_rank"],
        })
    else:
        summary["jacobian"] = (f"skipped: {type(model).__name__} has no encoder Jacobian "
                               f"(no jacobian(X) method)")
    if "mean_activation" in terms:              # sparse: mean code activation over X_test
        summary["test_mean_activation"] = float(terms["mean_activation"])
    if callable(getattr(model, "corrupt", None)):
        # denoising: corrupt the test images once (seeded), then compare with the clean ones
        noisy = model.corrupt(X_test, random_state=random_state)
        mse_noisy = float(np.mean((noisy - X_test) ** 2))
        mse_denoised = float(np.mean((model.reconstruct(noisy) - X_test) ** 2))
        summary.update({"test_noisy_mse_per_pixel": mse_noisy,
                        "test_denoised_mse_per_pixel": mse_denoised,
                        "test_psnr_noisy_db": _psnr(mse_noisy),
                        "test_psnr_denoised_db": _psnr(mse_denoised)})
    if type(model).__name__ == "VariationalAutoencoder":
        summary["test_elbo_per_image"] = float(np.mean(model.score_samples(X_test)))
    return summary, svals


def _figures(model, X_test, svals, out, n_analysis):
    """Write the teaching figures; returns the list of files, or [] without matplotlib.

    The spectrum and tangent figures need the encoder Jacobian; for a model without
    one (``svals`` is None) they are skipped, and the run says so.
    """
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
    if svals is None:
        print(f"{type(model).__name__} has no encoder Jacobian: skipping the spectrum and "
              f"tangent figures.")
    if shape is not None:
        plotting.plot_reconstructions(X_test[:10], model.reconstruct(X_test[:10]),
                                      image_shape=shape, path=out / "reconstructions.png")
        files.append("reconstructions.png")
        W = model.params.get("W", model.params.get("encoder.0.W"))
        if W is not None and np.ndim(W) == 2 and W.shape[0] == X_test.shape[1]:
            plotting.plot_filters(W, image_shape=shape, n=64, path=out / "filters.png")
            files.append("filters.png")
        if svals is not None:
            idx = np.arange(min(4, len(X_test)))
            # at most as many directions as the code has units (a 2-unit code has 2)
            n_dir = min(5, svals.shape[1])
            tangents, tsv = tangent_directions(model, X_test[idx], n_directions=n_dir)
            plotting.plot_tangents(X_test[idx], tangents, tsv, image_shape=shape,
                                   n_points=len(idx), path=out / "tangents.png")
            files.append("tangents.png")
    if svals is not None:
        plotting.plot_spectrum(svals, path=out / "spectrum.png",
                               title=f"Encoder Jacobian singular values ({n_analysis} test "
                                     f"points)")
        files.append("spectrum.png")
    plotting.plot_history(model.history_, path=out / "history.png")
    return files + ["history.png"]


def _train_and_report(args, header):
    """Train, save and describe; returns the exit code.

    The output folder is created only when the first file is written; if the
    run fails (or is interrupted before an epoch completed), the folders it
    created are removed again as long as they are empty. A folder that existed
    before, or that holds anything, is never removed.
    """
    out = Path(args.out)
    created = _prepare_out(out)
    try:
        return _train(args, out, header)
    finally:
        _remove_if_empty(created)


def _train(args, out, header):
    model = None
    try:
        X, y, X_test, y_test, desc = _load_data(args.data, args.n_train, args.n_test,
                                                args.random_state, args.data_dir,
                                                download=getattr(args, "download", False))
        print(f"{header}: {desc}, {X.shape[0]} training / {X_test.shape[0]} test images, "
              f"{X.shape[1]} pixels", flush=True)
        model = _build_model(args)
        print(f"model: {model!r}", flush=True)
        t0 = time.perf_counter()
        model.fit(X, validation_data=X_test[:2000])
        train_s = time.perf_counter() - t0
        # the trained model is saved before anything else can fail
        _save_model(model, out)
        summary, svals = _evaluate(model, X_test, args.n_analysis, args.random_state)
        summary.update({"data": desc, "n_train": int(X.shape[0]), "n_test": int(X_test.shape[0]),
                        "train_seconds": train_s, "hyperparameters": {
                            k: (v if isinstance(v, (int, float, str, bool, type(None)))
                                else repr(v))
                            for k, v in model.get_params().items()}})
        files = _figures(model, X_test, svals, out, args.n_analysis)
        _write_json(out / "summary.json", summary)
        if getattr(args, "report", False) and args.model != "cae":
            print(f"\nreport.md compares a CAE with its twins; skipped for --model "
                  f"{args.model}.")
        elif getattr(args, "report", False):
            from .report import write_report
            print("\nreport: training the lam = 0 and denoising twins and measuring all "
                  "three ...", flush=True)
            numbers = write_report(model, X, y, X_test, y_test, out, data_desc=desc,
                                   n_analysis=args.n_analysis, random_state=args.random_state,
                                   existing_figures=files, verbose=not args.quiet,
                                   n_true_train=min(5000, len(X)),
                                   n_true_test=min(100, args.n_analysis),
                                   n_gap=min(100, args.n_analysis))
            files = sorted(set(files) | set(numbers["files"]), key=lambda f: (
                f != "report.md", f))
    except KeyboardInterrupt as exc:
        return _save_after_interrupt(args.command, model, out, exc)
    print(f"\ntrained in {train_s:.1f} s")
    print(f"test reconstruction loss ({_loss_label(args)}): "
          f"{summary['test_reconstruction_per_sample']:.3f} per image, "
          f"{summary['test_reconstruction_per_pixel']:.4f} per pixel; "
          f"MSE per pixel {summary['test_mse_per_pixel']:.4f}")
    if "test_jacobian_frobenius_mean" in summary:
        print(f"mean ||J_f(x)||_F on test points: {summary['test_jacobian_frobenius_mean']:.3f}; "
              f"{100 * summary['fraction_singular_values_below_1']:.1f}% of the Jacobian's "
              f"singular values are < 1; the top five average "
              + ", ".join(f"{v:.2f}" for v in summary["mean_top5_singular_values"]))
    if "test_mean_activation" in summary:
        print(f"mean code activation on test points: {summary['test_mean_activation']:.4f}"
              + (f" (target rho {args.rho:g})" if args.sparsity == "kl" else ""))
    if "test_psnr_denoised_db" in summary:
        print(f"denoising ({args.noise}, level {args.noise_level:g}) on test points: PSNR "
              f"noisy {summary['test_psnr_noisy_db']:.2f} dB -> denoised "
              f"{summary['test_psnr_denoised_db']:.2f} dB (MSE per pixel "
              f"{summary['test_noisy_mse_per_pixel']:.4f} -> "
              f"{summary['test_denoised_mse_per_pixel']:.4f})")
    if "test_elbo_per_image" in summary:
        print(f"test ELBO per image: {summary['test_elbo_per_image']:.3f} nats")
    print(f"\nwrote to {out}/: model.npz, history.json, summary.json"
          + ("".join(f", {f}" for f in files)))
    return 0


# --------------------------------------------------------------------------- commands
def _cmd_demo(args):
    code = _train_and_report(args, "npcae demo")
    if code == 0:
        if getattr(args, "report", False) and args.model == "cae":
            print(f"\nRead {args.out}/report.md: what the CAE learned, with the figures.")
        print("\nNext: `npcae inspect {0}/model.npz`, or `npcae train --help` for more "
              "options.".format(args.out))
    return code


def _cmd_train(args):
    return _train_and_report(args, "npcae train")


def _cmd_gradcheck(args):
    from .audit import format_audit, run_audit
    rows = run_audit(random_state=args.random_state, rtol=args.rtol)
    print(format_audit(rows, rtol=args.rtol))
    return 0 if all(r.passed for r in rows) else 1


def _cmd_inspect(args):
    from . import load
    path = Path(args.path)
    if path.is_dir():
        hint = (f" (did you mean {path / 'model.npz'}?)" if (path / "model.npz").is_file()
                else "")
        raise _CommandError(f"{path} is a folder, not a model file; pass the .npz file written "
                            f"by `npcae train` or `model.save`{hint}.")
    if not path.exists():
        raise _CommandError(f"{path}: no such file; pass the .npz file written by "
                            f"`npcae train` or `model.save`.")
    model = load(path)
    lines = [f"{type(model).__name__} ({path})"]
    lines += [f"  {k} = {v!r}" for k, v in model.get_params().items()]
    lines.append("parameters:")
    for k, v in model.params.items():
        lines.append(f"  {k}: shape {v.shape}, dtype {v.dtype}, |mean| {np.abs(v).mean():.4g}")
    h = getattr(model, "history_", None) or {}
    if isinstance(h, dict) and h.get("total"):
        lines.append(f"trained {len(h['total'])} epochs; last: " + ", ".join(
            f"{k} {h[k][-1]:.4g}" for k in h if isinstance(h[k], list) and h[k]
            and isinstance(h[k][-1], (int, float)) and k not in ("epoch_time_s",)))
    print("\n".join(lines))
    return 0


def _cmd_reference(args):
    from .reference import canonical_fixture, make_fixture, save_fixture
    if args.canonical is not None:
        fixture = canonical_fixture(args.canonical)
    else:
        model = _build_model(args)
        fixture = make_fixture(model, n_features=args.n_features, n_samples=args.n_samples,
                               n_jacobian=args.n_jacobian, random_state=args.random_state,
                               name=Path(args.out).stem,
                               description=f"npcae reference --model {args.model}: {model!r}")
    path = save_fixture(fixture, args.out)
    print(f"{path}: {fixture.model_class} fixture, X {fixture.X.shape}, loss "
          f"{fixture.loss:.17g} = " + " + ".join(f"{t} {v:.6g}" for t, v in
                                                  fixture.terms.items()))
    print("parameters: " + ", ".join(f"{k} {v.shape}" for k, v in fixture.params.items())
          + (("; noise: " + ", ".join(f"{k} {v.shape}" for k, v in fixture.noise.items()))
             if fixture.noise else ""))
    print(f"Next: compute your loss and gradients on its X and weights, save them with "
          f"np.savez(FILE, loss=..., <name>=<gradient>, ...) and run `npcae verify FILE "
          f"--against {path}` (docs/verify-your-implementation.md).")
    return 0


_REFERENCE_MODEL_OPTIONS = ("layers", "hidden", "tied", "untied", "lam", "activation", "loss",
                            "sparsity", "beta", "rho", "noise", "noise_level", "n_latent",
                            "decoder", "n_features", "n_samples", "n_jacobian")


def _refuse_options_beside_canonical(args):
    """``npcae reference --canonical NAME`` with model options: exit 2 naming them."""
    given = [f"--{name.replace('_', '-')}" for name in _REFERENCE_MODEL_OPTIONS
             if getattr(args, name) != args.subparser.get_default(name)]
    if given:
        args.subparser.error(f"--canonical {args.canonical} is a fixed fixture; "
                             f"{', '.join(given)} would be ignored. Drop them, or use "
                             f"--model with those options for a fixture of your own.")


def _cmd_verify(args):
    from .reference import verify
    result = verify(args.theirs, against=args.against, rtol=args.rtol)
    print(result)
    return 0 if result.ok else 1


# --------------------------------------------------------------------------- parser
def _add_reference_parsers(sub):
    """``npcae reference`` (write a fixture) and ``npcae verify`` (check against one)."""
    from .reference import canonical_names
    p = sub.add_parser("reference", help="write a float64 test-vector fixture: inputs, "
                                         "weights, noise, loss and terms, every gradient in "
                                         "total and per term, the encoder Jacobian")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", default="cae",
                       choices=["cae", "ae", "sae", "dae", "vae", "deep_cae"],
                       help="the model whose objective the fixture holds (default: cae)")
    which.add_argument("--canonical", default=None, choices=canonical_names(),
                       help="write one of the canonical fixtures shipped with npcae instead")
    p.add_argument("--layers", type=_widths, default=None, metavar="W1,W2,...",
                   help="encoder widths (ae/sae/dae/deep_cae; vae: the hidden widths)")
    p.add_argument("--hidden", type=_positive_int, default=6,
                   help="hidden units when --layers is not given (default: %(default)s)")
    p.add_argument("--tied", action="store_true", default=None,
                   help="--model ae/sae/dae/deep_cae: tied decoder weights")
    p.add_argument("--untied", action="store_true", default=None,
                   help="--model cae: a separate decoder matrix W_dec")
    p.add_argument("--lam", type=_non_negative_float, default=None,
                   help="--model cae/deep_cae: contractive weight (default: 0.5)")
    p.add_argument("--activation", type=_activation_spec, default=None,
                   help="hidden activation (default: sigmoid; relu for --model vae)")
    p.add_argument("--loss", default=None, choices=["bce", "mse"],
                   help="bce (sigmoid decoder) or mse (linear decoder) (default: bce)")
    p.add_argument("--sparsity", default=None, choices=["kl", "l1"], help="--model sae")
    p.add_argument("--beta", type=_non_negative_float, default=None, help="--model sae")
    p.add_argument("--rho", type=_open_unit_float, default=None, help="--model sae")
    p.add_argument("--noise", default=None, choices=["masking", "gaussian", "salt_pepper"],
                   help="--model dae")
    p.add_argument("--noise-level", type=_non_negative_float, default=None, help="--model dae")
    p.add_argument("--n-latent", type=_positive_int, default=None, help="--model vae")
    p.add_argument("--decoder", default=None, choices=["bernoulli", "gaussian"],
                   help="--model vae")
    p.add_argument("--n-features", type=_positive_int, default=20,
                   help="input width d of the generated X (default: %(default)s)")
    p.add_argument("--n-samples", type=_positive_int, default=8,
                   help="rows of the generated X, the batch (default: %(default)s)")
    p.add_argument("--n-jacobian", type=_positive_int, default=3,
                   help="rows at which the encoder Jacobian is stored (default: %(default)s)")
    _add_random_state(p)
    p.add_argument("--out", required=True, help="the fixture file to write (.npz)")
    p.set_defaults(func=_cmd_reference, subparser=p, lam_default=0.5, lr=1e-3,
                   batch_size=100, epochs=1, quiet=True, stage_model=None)

    p = sub.add_parser("verify", help="check another implementation's loss and gradients "
                                      "against a fixture, and name the bug")
    p.add_argument("theirs", help="an .npz file with 'loss' and one gradient per parameter "
                                  "(npcae names, or PyTorch-style names such as "
                                  "encoder.weight)")
    p.add_argument("--against", required=True, metavar="FIXTURE",
                   help="the fixture file (from `npcae reference`) or a canonical fixture's "
                        "name: " + ", ".join(canonical_names()))
    p.add_argument("--rtol", type=_positive_float, default=1e-6,
                   help="agreement tolerance on the worst relative error (default: "
                        "%(default)s; about 1e-3 for float32 implementations)")
    p.set_defaults(func=_cmd_verify)


def _add_random_state(p):
    p.add_argument("--random-state", "--seed", dest="random_state", type=_non_negative_int,
                   default=0, metavar="INT",
                   help="non-negative integer seeding the data, the initial weights and the "
                        "minibatch order (default: %(default)s; --seed is an alias)")


def _add_training_args(p, *, epochs, hidden, lam, n_train, data):
    p.add_argument("--model", default="cae",
                   choices=["cae", "ae", "sae", "dae", "vae", "deep_cae", "stacked"],
                   help="cae: contractive autoencoder (one hidden layer); ae: deep autoencoder; "
                        "sae: sparse autoencoder; dae: denoising autoencoder; vae: variational "
                        "autoencoder; deep_cae: contractive autoencoder of any depth (the whole "
                        "encoder's Jacobian penalised; CAE+H with --gamma); stacked: one "
                        "--stage-model per width of --layers, trained greedily, then "
                        "fine-tuned together (ae/sae/dae/vae/deep_cae/stacked take --layers) "
                        "(default: cae)")
    p.add_argument("--layers", type=_widths, default=None, metavar="W1,W2,...",
                   help="encoder widths for --model ae/sae/dae/deep_cae, the last is the code "
                        "size, e.g. "
                        "256,128,100 (the decoder mirrors them); for --model vae the hidden "
                        "widths before the latent layer (default: --hidden)")
    p.add_argument("--tied", action="store_true", default=None,
                   help="--model ae/sae/dae/deep_cae: decoder layers use the encoder's weights "
                        "transposed")
    stacked = p.add_argument_group("stacked autoencoder (--model stacked)")
    stacked.add_argument("--stage-model", default=None, choices=list(_STAGE_MODELS),
                         help="the one-layer model of every stage; its own options (--lam, "
                              "--noise, --sparsity, ...) apply to each stage (default: cae)")
    stacked.add_argument("--no-fine-tune", action="store_true", default=None,
                         help="keep the greedy stack (no joint fine-tuning on reconstruction)")
    deep = p.add_argument_group("deep contractive autoencoder (--model deep_cae)")
    deep.add_argument("--penalty", default=None, choices=["exact", "stochastic"],
                      help="exact: ||J||_F^2 of the whole encoder; stochastic: its unbiased "
                           "estimate from --n-projections random projections shared by each "
                           "minibatch (default: exact)")
    deep.add_argument("--n-projections", type=_positive_int, default=None,
                      help="projections per minibatch for --penalty stochastic (default: 4)")
    deep.add_argument("--gamma", type=_non_negative_float, default=None,
                      help="CAE+H weight of E||J(x) - J(x + eps)||_F^2, >= 0 (default: 0, off)")
    deep.add_argument("--sigma", type=_positive_float, default=None,
                      help="standard deviation of the CAE+H perturbations eps (default: 0.1)")
    deep.add_argument("--n-corrupt", type=_positive_int, default=None,
                      help="CAE+H perturbed copies of each input (default: 4)")
    sparse = p.add_argument_group("sparse autoencoder (--model sae)")
    sparse.add_argument("--sparsity", default=None, choices=["kl", "l1"],
                        help="kl: beta * sum_j KL(rho || batch-mean activation of unit j) "
                             "(sigmoid code); l1: beta * mean over samples of sum_j |h_j| "
                             "(default: kl)")
    sparse.add_argument("--beta", type=_non_negative_float, default=None,
                        help="weight of the sparsity penalty, >= 0 (default: 3.0)")
    sparse.add_argument("--rho", type=_open_unit_float, default=None,
                        help="target mean activation for --sparsity kl, in (0, 1) "
                             "(default: 0.05)")
    denoising = p.add_argument_group("denoising autoencoder (--model dae)")
    denoising.add_argument("--noise", default=None,
                           choices=["masking", "gaussian", "salt_pepper"],
                           help="corruption of the training inputs (default: masking)")
    denoising.add_argument("--noise-level", type=_non_negative_float, default=None,
                           help="masking / salt_pepper: probability that a pixel is corrupted, "
                                "in [0, 1]; gaussian: standard deviation, >= 0 "
                                "(default: 0.25)")
    variational = p.add_argument_group("variational autoencoder (--model vae)")
    variational.add_argument("--n-latent", type=_positive_int, default=None,
                             help="latent dimensions, 1 or more (default: 20)")
    variational.add_argument("--decoder", default=None, choices=["bernoulli", "gaussian"],
                             help="bernoulli (cross-entropy) or gaussian with unit variance "
                                  "(squared error) (default: bernoulli)")
    p.add_argument("--data", default=data, choices=["auto", "mnist", "fashion_mnist", "digits"],
                   help=f"dataset (default: {data}); 'auto' = MNIST if found, else digits")
    p.add_argument("--data-dir", default=None, help="folder with the IDX files")
    p.add_argument("--hidden", type=_positive_int, default=hidden,
                   help=f"hidden units (default {hidden})")
    p.add_argument("--lam", type=_non_negative_float, default=None,
                   help=f"--model cae/deep_cae: contractive penalty weight, >= 0 "
                        f"(default {lam})")
    p.set_defaults(lam_default=lam)
    p.add_argument("--activation", type=_activation_spec, default=None,
                   help="hidden activation: sigmoid, tanh, relu, softplus, leaky_relu:SLOPE "
                        "(e.g. leaky_relu:0.2) (default: relu for --model vae, else sigmoid)")
    p.add_argument("--loss", default=None, choices=["bce", "mse"],
                   help="bce (sigmoid decoder) or mse (linear decoder) (default: bce; "
                        "--model vae uses --decoder instead)")
    p.add_argument("--untied", action="store_true", default=None,
                   help="--model cae: separate decoder weights (the CAE is tied by default)")
    p.add_argument("--epochs", type=_positive_int, default=epochs,
                   help=f"epochs (default {epochs})")
    p.add_argument("--batch-size", type=_positive_int, default=100)
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate, > 0")
    p.add_argument("--n-train", type=_non_negative_int, default=n_train,
                   help="training images to use (default: %(default)s; 0 = all)")
    p.add_argument("--n-test", type=_positive_int, default=10000)
    p.add_argument("--n-analysis", type=_positive_int, default=500,
                   help="test points for the Jacobian spectrum and the report's analyses "
                        "(1 or more; at most 100 of them for the true tangents and the "
                        "DAE-CAE link)")
    _add_random_state(p)
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="npcae", description="Contractive autoencoders in pure NumPy, gradient-checked.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="train a CAE on MNIST (or built-in digits) and write figures")
    _add_training_args(p, epochs=20, hidden=64, lam=0.5, n_train=0, data="auto")
    p.add_argument("--out", default="npcae-demo", help="output folder (default: npcae-demo)")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="skip report.md (the twins, spectra, tangents, contraction and probe "
                        "comparisons); only the CAE and its figures")
    p.set_defaults(func=_cmd_demo, subparser=p, report=True)

    p = sub.add_parser("train", help="train a model and save it with its history and figures")
    _add_training_args(p, epochs=10, hidden=64, lam=0.1, n_train=0, data="mnist")
    p.add_argument("--out", required=True, help="output folder (created if needed)")
    p.add_argument("--download", action="store_true",
                   help="download MNIST if it is not found (needs network)")
    p.set_defaults(func=_cmd_train, subparser=p)

    p = sub.add_parser("gradcheck", help="audit every gradient in the library (float64)")
    _add_random_state(p)
    p.add_argument("--rtol", type=_positive_float, default=1e-7,
                   help="relative tolerance, > 0 (default: %(default)s)")
    p.set_defaults(func=_cmd_gradcheck)

    p = sub.add_parser("inspect", help="describe a saved model")
    p.add_argument("path")
    p.set_defaults(func=_cmd_inspect)

    _add_reference_parsers(sub)
    return parser


def _one_line(exc):
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _inspect_error(exc, path):
    """One line for any failure of ``npcae inspect``, naming the file."""
    from .io import ModelFileError
    if isinstance(exc, OSError) and exc.strerror:
        message = f"cannot read {exc.filename or path}: {exc.strerror}."
    elif isinstance(exc, (_CommandError, ModelFileError)):
        message = _one_line(exc)
    else:
        message = (f"{path} could not be read as an npcae model ({type(exc).__name__}: "
                   f"{_one_line(exc)}); pass the .npz file written by `npcae train` or "
                   f"`model.save`.")
    return message if str(path) in message else f"{path}: {message}"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "n_train", None) == 0:
        args.n_train = None
    if getattr(args, "canonical", None) is not None:
        _refuse_options_beside_canonical(args)                           # exits 2
    if hasattr(args, "model"):
        problem = _check_model_options(args)
        if problem is not None:
            args.subparser.error(f"argument {problem[0]}: {problem[1]}")     # exits 2
    from .datasets import DatasetNotFoundError
    from .io import ModelFileError
    from .training import TrainingDivergedError
    expected = (_CommandError, DatasetNotFoundError, ModelFileError, TrainingDivergedError,
                OSError, ValueError, TypeError)
    if args.command == "inspect":
        expected = Exception                # inspect never shows a traceback
    try:
        with _interrupt_handlers():
            return args.func(args)
    except KeyboardInterrupt as exc:
        print(f"npcae {args.command}: {_interrupt_name(exc)}", file=sys.stderr)
        return _interrupt_exit(exc)
    except expected as exc:
        # inspect: always one line; train/demo keep a multi-line explanation (where the data
        # were looked for, how to fix it) as the library wrote it
        message = (_inspect_error(exc, args.path) if args.command == "inspect"
                   else str(exc).strip() or type(exc).__name__)
        print(f"npcae {args.command}: error: {message}", file=sys.stderr)
        return _EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
