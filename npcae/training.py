"""The training loop shared by every model.

:func:`fit_loop` runs minibatch training of any :class:`~npcae.models.base.BaseEstimator`:
reshuffled minibatches each epoch from a seeded Generator, a per-epoch history
of every loss term (and of the validation loss), one progress line per epoch,
early stopping on a validation term (the loss; the classifier's error), and
NaN/Inf detection that stops with a clear error and leaves the last finite
parameters in place. Supervised models pass row-aligned targets ``y`` (and
``y_val``): each minibatch takes the same rows of ``y`` as of ``X``.

The hot loop reuses its buffers (the minibatch, the gradients and the
model's scratch arrays) instead of allocating per step.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from ._workspace import Workspace

__all__ = ["fit_loop", "TrainingDivergedError", "iterate_minibatches", "pack_arrays"]


class TrainingDivergedError(FloatingPointError):
    """The loss or a gradient became NaN or infinite during training.

    The step that produced it is not applied: the model keeps the parameters
    and optimizer state from before it. Typical fixes: a lower learning rate,
    a smaller ``lam``, or inputs scaled to [0, 1].
    """


def iterate_minibatches(n_samples, batch_size, rng, shuffle=True, drop_last=False):
    """Yield index arrays of a fresh random permutation (``shuffle=False``: in order),
    ``batch_size`` at a time.

    The last batch holds the remainder, so every sample is seen once per epoch,
    unless ``drop_last`` (then ``n_samples // batch_size`` full batches).
    """
    perm = rng.permutation(n_samples) if shuffle else np.arange(n_samples)
    stop = n_samples - n_samples % batch_size if drop_last else n_samples
    for start in range(0, stop, batch_size):
        yield perm[start:start + batch_size]


PACKED = "packed"
"""The optimiser's key for the packed parameter buffer (see :func:`pack_arrays`)."""


def pack_arrays(arrays, dtype):
    """Copy a dict of arrays into one contiguous 1-D buffer of ``dtype``.

    Returns ``(flat, views)``: ``views[name]`` is ``flat[start:start + size]``
    reshaped to the array's shape, in the dict's order, holding the same values.
    Writing to a view writes into ``flat`` and the other way round, so an
    elementwise update of ``flat`` (an optimiser step) updates every array.
    """
    flat = np.empty(sum(np.size(a) for a in arrays.values()), dtype=dtype)
    views = _views_into(flat, {name: np.shape(a) for name, a in arrays.items()})
    for name, array in arrays.items():
        views[name][...] = array
    return flat, views


def _views_into(flat, shapes):
    """Reshaped views of consecutive pieces of the 1-D array ``flat``, one per shape."""
    views, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        views[name] = flat[start:start + size].reshape(shape)
        start += size
    return views


def _format_eta(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def fit_loop(model, X, *, optimizer, epochs, batch_size, rng, X_val=None, early_stopping=None,
             verbose=1, history=None, stream=None, y=None, y_val=None, monitor="total"):
    """Train ``model`` on ``X`` in place; returns the history dict.

    Parameters
    ----------
    model : BaseEstimator (an autoencoder, or the classifier with ``y``)
        Must already have its parameters (``model.initialize``).
    X : ndarray, shape (n_samples, n_features)
        Validated training data in the model's dtype.
    optimizer : Optimizer
        Updates ``model.params`` in place from the gradients.
    epochs, batch_size : int
    rng : numpy.random.Generator
        The training generator: the minibatch order, and any noise the
        objective draws (it is passed to ``model._objective``). After each
        completed epoch its state is stored as ``model.training_rng_state_``, so
        training resumes exactly.
    X_val : ndarray, optional
        Validation data, evaluated (objective terms) after every epoch.
    early_stopping : int or None
        Stop when the validation ``monitor`` term has not improved (decreased)
        for this many epochs; the best parameters are restored.
    y, y_val : ndarray, optional
        Targets row-aligned with ``X`` and ``X_val`` (a supervised model: the
        classifier's integer class codes). Each minibatch takes the same rows of
        ``y`` as of ``X`` and calls ``model._objective(Xb, grads, ws, rng, y=yb)``;
        validation calls ``model._supervised_terms(X_val, y_val)``. Without ``y`` the
        loop is the unsupervised one, unchanged.
    monitor : str
        The validation term early stopping watches (default ``"total"``; the
        classifier watches ``"error"``).
    verbose : int
        0: silent; 1: one line per epoch (to ``stream``, default stdout).
    history : dict or None
        Appended to (so ``warm_start`` continues the same history).

    Raises
    ------
    TrainingDivergedError
        On a non-finite loss or gradient. The step that produced it is not
        applied: the parameters and optimizer state are those from before it.
        (Should the parameters themselves have become non-finite, everything
        returns to the end of the last completed epoch, and the message says so.)
    KeyboardInterrupt
        Re-raised after the parameters, optimizer state and generator state are
        returned to the end of the last completed epoch, so an interrupted run
        can be saved and resumed as if it had been asked for fewer epochs.
    """
    stream = sys.stdout if stream is None else stream
    history = {} if history is None else history
    params = model.params
    n, d = X.shape
    batch_size = min(int(batch_size), n)
    # Parameters and gradients each live in one contiguous buffer (the dicts hold
    # reshaped views of it), so the optimiser updates everything in one pass
    # instead of one short pass per bias vector.
    # (packing also casts the parameters to the training dtype)
    flat_params, packed = pack_arrays(params, X.dtype)
    params.update(packed)
    flat_grads = np.zeros_like(flat_params)
    ones = np.ones_like(flat_grads)                   # for the finiteness test's BLAS sum
    grads = _views_into(flat_grads, {name: p.shape for name, p in packed.items()})
    ws = Workspace()
    batch_buffer = model._batch_buffer(ws, batch_size, d, X.dtype)
    if getattr(model, "drop_last", False) and n < int(batch_size):
        raise ValueError(f"drop_last=True with batch_size={batch_size} leaves no batch of the "
                         f"{n} training samples; use a smaller batch_size or drop_last=False.")
    if early_stopping is not None and X_val is None:
        raise ValueError("early_stopping needs validation_data to monitor.")
    supervised = y is not None
    if supervised:
        if len(y) != n:
            raise ValueError(f"y has {len(y)} rows but X has {n}; they must be row-aligned.")
        if X_val is not None and (y_val is None or len(y_val) != len(X_val)):
            raise ValueError("a supervised fit needs y_val row-aligned with X_val.")
        y_buffer = np.empty(batch_size, dtype=y.dtype)
    best = (math.inf, None, 0)          # (monitored validation term, params copy, epoch)
    start_epoch = len(history.get("total", []))
    t_start = time.perf_counter()

    for epoch in range(epochs):
        t0 = time.perf_counter()
        # the state to return to if this epoch does not complete
        snapshot = (flat_params.copy(), optimizer.state_dict())
        try:
            sums, seen = {}, 0
            for step, idx in enumerate(iterate_minibatches(
                    n, batch_size, rng, shuffle=getattr(model, "shuffle", True),
                    drop_last=getattr(model, "drop_last", False))):
                Xb = batch_buffer[:len(idx)]
                np.take(X, idx, axis=0, out=Xb, mode="clip")   # idx is a permutation: in range
                if supervised:
                    yb = y_buffer[:len(idx)]
                    np.take(y, idx, out=yb, mode="clip")
                    total, terms = model._objective(Xb, grads, ws, rng, y=yb)
                else:
                    total, terms = model._objective(Xb, grads, ws, rng)
                if not math.isfinite(total) or not _all_finite(flat_grads, ones):
                    _raise_diverged(flat_params, optimizer, snapshot, total,
                                    start_epoch + epoch + 1, step + 1)
                optimizer.step({PACKED: flat_params}, {PACKED: flat_grads})
                for key, value in terms.items():
                    sums[key] = sums.get(key, 0.0) + float(value) * len(idx)
                seen += len(idx)
            elapsed = time.perf_counter() - t0
            if X_val is None:
                val_terms = None
            else:
                val_terms = model._supervised_terms(X_val, y_val) if supervised \
                    else model.loss_terms(X_val)
        except KeyboardInterrupt:
            _restore(flat_params, optimizer, snapshot)
            raise
        # the epoch is complete: record it
        for key, value in sums.items():
            history.setdefault(key, []).append(value / seen)
        history.setdefault("samples_per_s", []).append(seen / elapsed if elapsed > 0 else math.inf)
        history.setdefault("epoch_time_s", []).append(elapsed)
        model.training_rng_state_ = rng.bit_generator.state

        if val_terms is not None:
            for key, value in val_terms.items():
                history.setdefault(f"val_{key}", []).append(value)
            val_total = val_terms["total"]
            if not math.isfinite(val_total):
                raise TrainingDivergedError(f"validation loss is {val_total!r} after epoch "
                                            f"{start_epoch + epoch + 1}; try a smaller "
                                            f"learning rate.")
            watched = val_terms[monitor]
            if watched < best[0]:
                best = (watched, {k: v.copy() for k, v in params.items()}, epoch)

        if verbose:
            _print_epoch(stream, start_epoch + epoch + 1, start_epoch + epochs, history,
                         elapsed, (time.perf_counter() - t_start) / (epoch + 1)
                         * (epochs - epoch - 1))
        if early_stopping is not None and epoch - best[2] >= int(early_stopping):
            if verbose:
                print(f"early stopping: no validation improvement for {early_stopping} "
                      f"epochs; restoring epoch {start_epoch + best[2] + 1}.", file=stream)
            break
    if early_stopping is not None and best[1] is not None:
        for k, v in best[1].items():
            params[k][...] = v
        history["best_epoch"] = start_epoch + best[2] + 1
    return history


def _all_finite(flat, ones):
    """Whether every entry of the 1-D ``flat`` is finite, without a temporary array.

    A NaN or inf anywhere makes the sum ``flat @ ones`` non-finite; only then
    (or if finite values overflowed the sum) is the exact elementwise test run.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(flat @ ones)
    return math.isfinite(total) or bool(np.isfinite(flat).all())


def _restore(flat_params, optimizer, snapshot):
    """Return the packed parameters and the optimizer to ``snapshot``."""
    flat_params[...] = snapshot[0]
    optimizer.load_state_dict(snapshot[1])


def _raise_diverged(flat_params, optimizer, snapshot, total, epoch, step):
    """Raise :class:`TrainingDivergedError` for a non-finite loss or gradient at ``step``.

    The bad step has not been applied, so the parameters and the optimizer are
    already as before it, unless an earlier update overflowed the parameters;
    then both go back to the start of the epoch.
    """
    bad = "loss" if not math.isfinite(total) else "gradient"
    where = "before that step"
    if not np.isfinite(flat_params).all():
        _restore(flat_params, optimizer, snapshot)
        where = f"at the end of epoch {epoch - 1} (an earlier update overflowed)"
    raise TrainingDivergedError(
        f"the {bad} became non-finite (loss={total!r}) at epoch {epoch}, step {step}; "
        f"training stopped, and the parameters and optimizer state were left as they were "
        f"{where}. Try a lower learning rate (e.g. optimizer=Adam(lr=1e-4)), a smaller "
        f"lam, or check that the inputs are scaled (e.g. to [0, 1]).")


def _print_epoch(stream, epoch, epochs, history, elapsed, eta):
    keys = [k for k in history if not k.startswith("val_")
            and k not in ("samples_per_s", "epoch_time_s", "best_epoch")]
    parts = [f"epoch {epoch:>{len(str(epochs))}}/{epochs}"]
    parts += [f"{k} {history[k][-1]:.4g}" for k in keys]
    parts += [f"{k} {history[k][-1]:.4g}" for k in ("val_total", "val_error") if k in history]
    parts.append(f"{history['samples_per_s'][-1]:,.0f} samples/s")
    parts.append(f"{elapsed:.1f}s")
    parts.append(f"ETA {_format_eta(eta)}")
    print("  ".join(parts), file=stream, flush=True)
