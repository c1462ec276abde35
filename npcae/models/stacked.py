r"""Stacked autoencoder: greedy layer-wise pretraining, then optional joint fine-tuning.

The stack is built from ``L`` one-layer autoencoders, the *stages* (any mix of
:class:`~npcae.ContractiveAutoencoder`, and :class:`~npcae.Autoencoder`,
:class:`~npcae.SparseAutoencoder`, :class:`~npcae.DenoisingAutoencoder` or any
other model of the layers engine with ``layers=(k,)``). Stage ``i`` has an encoder and a decoder::

    f_i(h) = phi_i(h W_i + b_i)              (h_i -> h_{i+1}, width k_i)
    g_i(h) = psi_i(h V_i + c_i)              (h_{i+1} -> h_i;  tied: V_i = W_i^T)

**Greedy pretraining.** With ``h_0 = x``, stage ``i`` is trained alone, with its
own objective (its loss, its penalty or noise, its optimizer and epochs), to
reconstruct its input ``h_i``; then ``h_{i+1} = f_i(h_i)`` is the input of
stage ``i + 1``.

**The stack** is the deep autoencoder made of those layers::

    encoder   f = f_{L-1} o ... o f_1 o f_0              x -> k_0 -> ... -> k_{L-1}
    decoder   g = g_0 o g_1 o ... o g_{L-1}              k_{L-1} -> ... -> k_0 -> d

**Fine-tuning** (``fine_tune=True``) trains all layers jointly on reconstruction
only, as Rifai et al. (2011) fine-tuned their stacked CAEs::

    L = s * (1/n) sum_n loss_0(x_n, g(f(x_n)))

with stage 0's loss, ``reduction`` and ``loss_weight`` (``s`` as in
:mod:`npcae.models.layered`). The stages' penalties (contractive, sparsity) and
corruption (denoising) are *not* kept in this objective: they shape the
pretrained layers only.

The stack runs on the layers engine of
:class:`~npcae.models.layered.LayeredAutoencoder` (no new backward pass; see
``docs/derivations.md#layered-autoencoder``), with per-layer activations:
encoder layer ``i`` uses ``phi_i``, decoder layer ``j`` uses ``psi_{L-1-j}``.
Parameter mapping, stage ``i`` -> stack (``j = L - 1 - i``)::

    stage i                        stack
    W    | encoder.0.W   (d_i, k_i)  ->  encoder.{i}.W
    b    | encoder.0.b   (k_i,)      ->  encoder.{i}.b
    W_dec| decoder.0.W   (k_i, d_i)  ->  decoder.{j}.W     (untied stack only)
    c    | decoder.0.b   (d_i,)      ->  decoder.{j}.b

(left: :class:`~npcae.ContractiveAutoencoder` names, right of ``|``: the
layered models' names). **Tied weights:** the stack is tied if and only if
every stage is tied; then decoder layer ``j`` keeps using
``encoder.{L-1-j}.W`` transposed during fine-tuning. Otherwise the stack is
untied, and a tied stage's decoder weight starts as a copy of ``W_i^T`` and is
trained on its own from then on.
"""
from __future__ import annotations

import copy
import sys
from typing import NamedTuple

import numpy as np

from .._validation import check_bool, check_random_state, layer_widths
from ..activations import Sigmoid, get_activation
from ..layers import init_layer_params
from .base import BaseAutoencoder
from .cae import _DEFAULT_INIT as _CAE_DEFAULT_INIT
from .cae import ContractiveAutoencoder
from .layered import LayeredAutoencoder

__all__ = ["StackedAutoencoder"]

_EXAMPLE = ("stages=[ContractiveAutoencoder(n_hidden=500, lam=0.1), "
            "ContractiveAutoencoder(n_hidden=200, lam=0.1)]")


class _Stage(NamedTuple):
    """What the stack reads from one stage's hyperparameters (never from fitted state)."""

    width: int              # code size k_i
    encoder_act: object     # phi_i
    decoder_act: object     # psi_i
    tied: bool
    init: str               # weight initialiser name ("auto" resolved)


def _stage_spec(stage):
    """The architecture of a (validated) one-layer stage."""
    if isinstance(stage, ContractiveAutoencoder):
        phi = get_activation(stage.activation)
        init = stage.init if stage.init != "auto" else _CAE_DEFAULT_INIT.get(phi.name,
                                                                             "glorot_uniform")
        return _Stage(int(stage.n_hidden), phi, get_activation(stage.output_activation),
                      bool(stage.tied), init)
    (phi,), (psi,) = stage._activations()
    return _Stage(int(stage._encoder_widths()[0]), phi, psi, bool(stage.tied),
                  stage._weight_init())


def _stage_weights(stage):
    """``(W, b, V, c)`` of a fitted stage: encoder ``(d, k)``, ``(k,)``; decoder ``(k, d)``, ``(d,)``
    (``V = W^T`` for a tied stage)."""
    p = stage.params
    if isinstance(stage, ContractiveAutoencoder):
        W, b, c = p["W"], p["b"], p["c"]
        return W, b, (W.T if stage.tied else p["W_dec"]), c
    W, b = p["encoder.0.W"], p["encoder.0.b"]
    return W, b, (W.T if stage.tied else p["decoder.0.W"]), p["decoder.0.b"]


def _clone(stage, **overrides):
    """An unfitted copy of ``stage`` (deep-copied hyperparameters), with ``overrides``."""
    params = copy.deepcopy(stage.get_params())
    params.update(overrides)
    return type(stage)(**params)


def _with_context(exc, prefix):
    """``exc`` of the same type with ``prefix`` before its message (``exc`` if that fails)."""
    try:
        new = type(exc)(f"{prefix}{exc}")
    except Exception:                    # an exception type with another signature
        return exc
    new.__cause__ = exc
    return new


class StackedAutoencoder(LayeredAutoencoder):
    r"""Deep autoencoder from one-layer stages: greedy layer-wise pretraining, then
    optional joint fine-tuning on reconstruction only.

    Stage 0 is trained on ``X``, stage ``i`` on stage ``i - 1``'s code, each with
    its own hyperparameters (loss, penalty, noise, optimizer, epochs). Their
    layers are then stacked into one deep autoencoder (encoders in order,
    decoders mirrored) which, with ``fine_tune=True``, is trained on

    .. math:: L = s \cdot \frac{1}{n} \sum_n \mathrm{loss}_0(x_n, g(f(x_n)))

    **Fine-tuning optimises reconstruction only**: the stages' contractive or
    sparsity penalties and their input corruption are not kept, as in Rifai et
    al. (2011). The loss is stage 0's (its ``loss``, and for the layered models
    its ``reduction`` and ``loss_weight``; a contractive stage 0 sums over
    features). See :mod:`npcae.models.stacked` for the parameter mapping.

    Parameters
    ----------
    stages : list of unfitted one-layer estimators
        For example ``[ContractiveAutoencoder(n_hidden=500, lam=0.1),
        DenoisingAutoencoder(layers=(200,))]``. Each is a
        :class:`~npcae.ContractiveAutoencoder`, or a one-layer model of the layers
        engine (``layers=(k,)``): :class:`~npcae.Autoencoder`,
        :class:`~npcae.SparseAutoencoder`, :class:`~npcae.DenoisingAutoencoder`,
        :class:`~npcae.DeepContractiveAutoencoder`.
        Variational autoencoders, deeper models and fitted models are refused.
        The stages are never modified: ``fit`` trains clones (``stages_``).
        A stage above the first whose loss needs inputs in [0, 1]
        (``loss="bce"``) needs the stage below to have a sigmoid code.
    fine_tune : bool
        Train the whole stack jointly after pretraining (default). False keeps
        exactly the greedy stack.
    optimizer : None, str, dict or Optimizer
        Fine-tuning optimizer (default ``Adam(lr=1e-3)``); the stages use their own.
    batch_size, epochs : int
        Fine-tuning minibatch size and epochs; the stages use their own.
    random_state : None, int, numpy.random.Generator or numpy.random.RandomState
        Seeds the fine-tuning minibatch order and every stage whose own
        ``random_state`` is None (each gets a seed of its own drawn from this
        one): the same int and data give identical results.
    dtype : float32 (default) or float64
        Of the stack and of every stage: the clones are trained in this dtype
        (the stages' own ``dtype`` is overridden), so the greedy stack computes
        exactly what the chained stages compute.
    early_stopping : int or None
        Patience of fine-tuning on the validation loss (needs ``validation_data``).
    verbose : int
        0 silent; 1 one line per stage and per fine-tuning epoch (the stages
        print according to their own ``verbose``).
    warm_start : bool
        A second ``fit`` of a fitted stack continues fine-tuning from the current
        parameters, optimizer moments and minibatch generator (no new
        pretraining), exactly like one uninterrupted run. With
        ``fine_tune=False`` there is nothing to continue, which is an error.

    Attributes
    ----------
    stages_ : list of fitted estimators
        The trained clones of ``stages``, as pretraining left them (fine-tuning
        changes the stack's ``params``, not these): their filters
        (``stages_[i].params``), Jacobians and spectra on their own input
        (``stages_[i].jacobian(h_i)``, ``h_i`` the code of the stages below).
        After :func:`npcae.load` they hold their parameters, ``n_features_in_``
        and ``history_``, but no optimizer state.
    params : dict
        ``encoder.{i}.W``, ``encoder.{i}.b`` for ``i = 0 .. L-1``, then
        ``decoder.{j}.W`` (untied stack only), ``decoder.{j}.b`` for
        ``j = 0 .. L-1``; decoder ``j`` undoes encoder ``L-1-j``.
    history_ : dict
        ``history_["stages"][i]`` is ``stages_[i].history_`` (pretraining);
        the other keys (``total``, ``reconstruction``, ``samples_per_s``, ...)
        are per fine-tuning epoch, as for every model.
    n_iter_ : int
        Fine-tuning epochs so far (0 with ``fine_tune=False``).
    loss_curve_ : list of float
        Fine-tuning objective per epoch.
    layers : tuple of int
        The code sizes ``(k_0, ..., k_{L-1})`` (read-only, from ``stages``).
    tied, loss, reduction, loss_weight
        Read-only, derived from ``stages`` as described above.
    optimizer_, training_rng_state_, n_features_in_, feature_names_in_
        As for every model (fine-tuning).

    Notes
    -----
    ``initialize(n_features)`` draws random layers (no pretraining), for
    gradient checks of the stack's objective. ``partial_fit``: the first call
    pretrains the stages on its ``X`` (each for its own ``epochs``) and then, like
    every later call, runs one epoch of fine-tuning when ``fine_tune``.

    Examples
    --------
    >>> import npcae
    >>> X, _ = npcae.datasets.make_digits(300, random_state=0)
    >>> stack = npcae.StackedAutoencoder(
    ...     stages=[npcae.ContractiveAutoencoder(n_hidden=64, lam=0.1, epochs=2),
    ...             npcae.ContractiveAutoencoder(n_hidden=16, lam=0.1, epochs=2)],
    ...     epochs=2, random_state=0).fit(X)
    >>> stack.transform(X).shape
    (300, 16)
    >>> [stage.n_features_in_ for stage in stack.stages_]
    [784, 64]
    """

    _shape_hyperparameters = ("stages",)

    def __init__(self, stages=None, fine_tune=True, optimizer=None, batch_size=100, epochs=10,
                 random_state=None, dtype=np.float32, early_stopping=None, verbose=0,
                 warm_start=False):
        self.stages = stages
        self.fine_tune = fine_tune
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.epochs = epochs
        self.random_state = random_state
        self.dtype = dtype
        self.early_stopping = early_stopping
        self.verbose = verbose
        self.warm_start = warm_start

    # -- the architecture, read from the stages' hyperparameters ---------------------------
    def _specs(self):
        return [_stage_spec(stage) for stage in self.stages]

    @property
    def layers(self):
        """Code sizes of the layers, ``(k_0, ..., k_{L-1})``."""
        return tuple(spec.width for spec in self._specs())

    @property
    def tied(self):
        """Whether the stack is tied: every stage is."""
        return all(spec.tied for spec in self._specs())

    @property
    def loss(self):
        """The fine-tuning loss: stage 0's."""
        return self.stages[0].loss

    @property
    def reduction(self):
        """Stage 0's ``reduction`` (``"sum"`` for a contractive stage)."""
        return getattr(self.stages[0], "reduction", "sum")

    @property
    def loss_weight(self):
        """Stage 0's ``loss_weight`` (1 for a contractive stage)."""
        return getattr(self.stages[0], "loss_weight", 1.0)

    def _encoder_widths(self):
        return self.layers

    def _activations(self):
        """(encoder, decoder) activations: encoder layer ``i`` uses stage ``i``'s ``phi``,
        decoder layer ``j`` stage ``L-1-j``'s ``psi``."""
        specs = self._specs()
        return ([s.encoder_act for s in specs], [s.decoder_act for s in reversed(specs)])

    def _layer_inits(self):
        specs = self._specs()
        return [s.init for s in specs], [s.init for s in reversed(specs)]

    def _param_shapes(self, n_features):
        (encoder, decoder), (enc_init, dec_init) = (self._layer_widths(n_features),
                                                    self._layer_inits())
        tied, shapes = self.tied, {}
        for i, ((n_in, n_out), init) in enumerate(zip(encoder, enc_init)):
            shapes[f"encoder.{i}.W"] = ((n_in, n_out), init)
            shapes[f"encoder.{i}.b"] = ((n_out,), init)
        for j, ((n_in, n_out), init) in enumerate(zip(decoder, dec_init)):
            if not tied:
                shapes[f"decoder.{j}.W"] = ((n_in, n_out), init)
            shapes[f"decoder.{j}.b"] = ((n_out,), init)
        return shapes

    def initialize(self, n_features, random_state=None):
        """Random layers for ``n_features`` inputs (no pretraining), e.g. to check the
        stack's gradients; the stages are checked first. Returns self."""
        self._check_stages()
        return super().initialize(n_features, random_state=random_state)

    def _draw_params(self, n_features, rng):
        """Random layers (each with its stage's initialiser), in key order: for
        ``initialize`` and gradient checks; ``fit`` replaces them by the pretrained stages."""
        (encoder, decoder), (enc_init, dec_init) = (self._layer_widths(n_features),
                                                    self._layer_inits())
        tied, fresh = self.tied, {}
        for prefix, widths, inits in (("encoder", encoder, enc_init),
                                      ("decoder", decoder, dec_init)):
            for i, ((n_in, n_out), init) in enumerate(zip(widths, inits)):
                layer = init_layer_params(init, n_in, n_out, rng)
                if not (prefix == "decoder" and tied):
                    fresh[f"{prefix}.{i}.W"] = layer["W"]
                fresh[f"{prefix}.{i}.b"] = layer["b"]
        return fresh

    # -- hyperparameters -------------------------------------------------------------------
    def _check_hyperparameters(self):
        # The base estimator's checks (epochs, batch_size, dtype, optimizer, ...), then the
        # stages. LayeredAutoencoder's own checks are about hyperparameters this model
        # does not have: each stage checks its own.
        BaseAutoencoder._check_hyperparameters(self)
        check_bool(self.fine_tune, "fine_tune")
        self._check_stages()

    def _check_stages(self):
        stages = self.stages
        if stages is None:
            raise ValueError(f"stages is required: a list of unfitted one-layer estimators, "
                             f"e.g. {_EXAMPLE}.")
        if isinstance(stages, BaseAutoencoder):
            raise TypeError(f"stages must be a list of estimators, not one estimator; got "
                            f"{stages!r}. Use stages=[{stages!r}] for a single stage.")
        if not isinstance(stages, (list, tuple)):
            raise TypeError(f"stages must be a list of unfitted one-layer estimators, e.g. "
                            f"{_EXAMPLE}; got {type(stages).__name__} {stages!r}.")
        if not stages:
            raise ValueError(f"stages is empty; give at least one one-layer estimator, e.g. "
                             f"{_EXAMPLE}.")
        for i, stage in enumerate(stages):
            self._check_stage(i, stage)
        specs = self._specs()
        for i in range(1, len(stages)):
            below = specs[i - 1].encoder_act
            if stages[i]._requires_unit_interval() and not isinstance(below, Sigmoid):
                raise ValueError(
                    f"stages[{i}] ({type(stages[i]).__name__}) uses loss={stages[i].loss!r}, "
                    f"which needs inputs in [0, 1], but its input is the code of stages[{i - 1}],"
                    f" whose activation {below.name!r} is not bounded to [0, 1]. Give "
                    f"stages[{i - 1}] a sigmoid code activation, or give stages[{i}] "
                    f"loss='mse' (with output_activation='identity' or {below.name!r}).")

    @staticmethod
    def _check_stage(i, stage):
        where = f"stages[{i}]"
        if isinstance(stage, type):
            raise TypeError(f"{where} is the class {stage.__name__}, not an estimator; "
                            f"instantiate it, e.g. {stage.__name__}(...).")
        if isinstance(stage, StackedAutoencoder):
            raise ValueError(f"{where} is a StackedAutoencoder; stages are one-layer models. "
                             f"List its stages in this stack instead.")
        if not isinstance(stage, (ContractiveAutoencoder, LayeredAutoencoder)):
            if isinstance(stage, BaseAutoencoder):
                raise ValueError(
                    f"{where} is a {type(stage).__name__}, which cannot be a stage: a stage "
                    f"must be a ContractiveAutoencoder, or a one-layer Autoencoder, "
                    f"SparseAutoencoder, DenoisingAutoencoder, ... (a variational "
                    f"autoencoder's code is a sample of its posterior, not a layer of a "
                    f"deterministic stack).")
            raise TypeError(f"{where} must be an npcae estimator (a ContractiveAutoencoder, "
                            f"or a one-layer Autoencoder, SparseAutoencoder, "
                            f"DenoisingAutoencoder, ...); got {type(stage).__name__} "
                            f"{stage!r}.")
        if bool(getattr(stage, "_params", None)) or hasattr(stage, "n_features_in_"):
            raise ValueError(
                f"{where} ({type(stage).__name__}) is already fitted (or initialized); the "
                f"stack pretrains its own clones of the stages, so those parameters would be "
                f"ignored. Pass an unfitted estimator (an unfitted copy of this one: "
                f"{type(stage).__name__}(**{where}.get_params())).")
        try:
            stage._check_hyperparameters()
        except (TypeError, ValueError) as exc:
            raise _with_context(exc, f"{where} ({type(stage).__name__}): ") from exc
        if isinstance(stage, LayeredAutoencoder):
            widths = layer_widths(stage.layers)
            if len(widths) != 1:
                split = ", ".join(f"{type(stage).__name__}(layers=({w},))" for w in widths)
                raise ValueError(f"{where} ({type(stage).__name__}) has layers={stage.layers!r}"
                                 f" ({len(widths)} layers); each stage must have exactly one. "
                                 f"Split it into stages: [{split}].")

    def _unit_interval_reason(self):
        return f"loss={self.loss!r} of stages[0] (the stack reconstructs with stage 0's loss)"

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X, y=None, validation_data=None):
        """Pretrain the stages greedily on ``X``, stack them, and fine-tune; returns self.

        Parameters
        ----------
        X : ndarray, shape (n_samples, n_features)
        y : ignored
        validation_data : ndarray of shape (m, n_features), optional
            Passed to every stage (encoded by the stages below it) and used by
            fine-tuning (``history_["val_total"]``, ``early_stopping``).

        With ``warm_start=True`` and a fitted stack, fine-tuning continues for
        ``epochs`` more epochs (no pretraining); see the class docstring. If
        interrupted during pretraining, the stack is left as it was before the
        call; during fine-tuning, as after the last completed epoch.
        """
        self._check_hyperparameters()
        if self.warm_start and self.__sklearn_is_fitted__():
            self._refuse_without_fine_tuning("a warm-started fit")
            return super().fit(X, y, validation_data=validation_data)
        X = self._validate_X(X, reset=True, check_range=True)
        X_val = self._validate_validation_data(validation_data, X.shape[1])
        self._pretrain(X, X_val)
        if self.fine_tune:
            self._train(X, self.epochs, X_val)
        return self

    def partial_fit(self, X, y=None):
        """The first call pretrains the stages on ``X``; every call then runs one epoch of
        fine-tuning (with ``fine_tune=False``, only the first call is allowed). Returns self."""
        self._check_hyperparameters()
        if self.__sklearn_is_fitted__():
            self._refuse_without_fine_tuning("a second partial_fit")
            return super().partial_fit(X)
        X = self._validate_X(X, reset=True, check_range=True)
        self._pretrain(X, None)
        if self.fine_tune:
            self._train(X, 1, None)
        return self

    def _refuse_without_fine_tuning(self, what):
        if not self.fine_tune:
            raise ValueError(f"{what} continues fine-tuning, but fine_tune=False: this stack "
                             f"is pretrained once and never trained jointly. Set "
                             f"fine_tune=True to fine-tune it, or warm_start=False to "
                             f"pretrain it again.")

    def _stage_seeds(self):
        """One seed per stage, from ``random_state`` (for the stages whose own is None)."""
        base = int(check_random_state(self.random_state).integers(0, 2 ** 63 - 1))
        return [int(np.random.default_rng([base, i]).integers(0, 2 ** 63 - 1))
                for i in range(len(self.stages))]

    def _stage_clone(self, i, seed):
        stage = self.stages[i]
        random_state = seed if stage.random_state is None else stage.random_state
        return _clone(stage, dtype=self.dtype, random_state=random_state)

    def _pretrain(self, X, X_val):
        """Train clones of the stages greedily; then the stack's training state and params.

        Nothing of ``self`` changes until every stage is trained.
        """
        fitted, H, H_val = [], X, X_val
        for i, seed in enumerate(self._stage_seeds()):
            clone = self._stage_clone(i, seed)
            if self.verbose:
                print(f"stage {i + 1}/{len(self.stages)}: {clone!r} on {H.shape[1]} features",
                      file=sys.stdout, flush=True)
            try:
                clone.fit(H, validation_data=H_val)
            except (TypeError, ValueError, FloatingPointError) as exc:
                raise _with_context(exc, f"pretraining stages[{i}] "
                                         f"({type(clone).__name__}): ") from exc
            fitted.append(clone)
            if i + 1 < len(self.stages):
                H = clone.encode(H)
                H_val = None if H_val is None else clone.encode(H_val)
        self._start_training_state(X.shape[1])          # optimizer, history, generator
        self.params = self._stack_params(fitted)
        self.stages_ = fitted
        self.history_ = {"stages": [stage.history_ for stage in fitted]}

    def _stack_params(self, fitted):
        """The stack's ``params`` from fitted stages (copies, in the stack's dtype)."""
        L, tied, dtype = len(fitted), self.tied, self.dtype_
        weights = [_stage_weights(stage) for stage in fitted]
        params = {}
        for i, (W, b, _, _) in enumerate(weights):
            params[f"encoder.{i}.W"] = np.array(W, dtype=dtype)
            params[f"encoder.{i}.b"] = np.array(b, dtype=dtype)
        for j in range(L):
            _, _, V, c = weights[L - 1 - j]
            if not tied:
                params[f"decoder.{j}.W"] = np.array(V, dtype=dtype, order="C")
            params[f"decoder.{j}.b"] = np.array(c, dtype=dtype)
        return params

    def _train(self, X, epochs, X_val):
        """Fine-tune; the stages' histories stay out of the training loop's history."""
        stages = self.history_.pop("stages", None)
        try:
            super()._train(X, epochs, X_val)
        finally:
            if stages is not None:
                self.history_ = {"stages": stages, **self.history_}

    # -- saving: the fitted stages (see npcae.io) -------------------------------------------
    def _saved_stages(self):
        """Each fitted stage's ``params`` (saved as ``stage.{i}.{name}`` arrays), or None."""
        fitted = getattr(self, "stages_", None)
        return None if fitted is None else [dict(stage.params) for stage in fitted]

    def _stage_param_shapes(self, n_features):
        """For each stage: its parameter names and shapes, on the widths the stack gives it."""
        widths = [int(n_features), *self.layers]
        return [{name: tuple(shape) for name, (shape, _) in stage._param_shapes(d).items()}
                for stage, d in zip(self.stages, widths)]

    def _restore_stages(self, stage_params):
        """Rebuild ``stages_`` from saved parameters and ``history_["stages"]`` (after loading).

        The clones get the stack's dtype, and the seed they were trained with
        when the stack's ``random_state`` is an int (else the stage's own).
        """
        seeds = (self._stage_seeds() if isinstance(self.random_state, (int, np.integer))
                 else [None] * len(self.stages))
        histories = self.history_.get("stages") or [{} for _ in self.stages]
        widths = [int(self.n_features_in_), *self.layers]
        fitted = []
        for i, (params, history) in enumerate(zip(stage_params, histories)):
            clone = self._stage_clone(i, seeds[i])
            clone.params = {name: params[name] for name in clone._param_shapes(widths[i])}
            clone.n_features_in_ = widths[i]
            clone.history_ = history
            clone.n_iter_ = len(history.get("total", []))
            fitted.append(clone)
        self.stages_ = fitted
        self.history_["stages"] = [stage.history_ for stage in fitted]
