r"""Models built on the layers engine: an encoder and a mirrored decoder of Dense layers.

:class:`LayeredAutoencoder` gives a subclass its whole training objective from
:mod:`npcae.layers` (``Dense``, ``TiedDense``, ``Activation``, ``Sequential``):

    forward    H = encoder(X)             Z = decoder(H)        (Z: output pre-activation)
    loss       L = s * rec(psi(Z), X) + sum of the subclass's extra terms
    backward   G_H = decoder.backward(dL/dZ) ; encoder.backward(G_H, add_grad=...)

where ``s = loss_weight`` (``/ n_features`` with ``reduction="mean"``). A new
model states its architecture (``layers``, activations, ``tied``) and, through
:meth:`LayeredAutoencoder._extra_terms`, any term that reads the encoder's
outputs; its gradient enters the backward pass at the layer whose output it
reads (``Sequential.backward(add_grad=...)``). See
``docs/derivations.md#layered-autoencoder``.

Parameters live in ``model.params`` under ordered keys, encoder layers first,
then decoder layers, each ``W`` (n_in, n_out) before its ``b`` (n_out,)::

    encoder.0.W  encoder.0.b  ...  encoder.{L-1}.W  encoder.{L-1}.b
    decoder.0.W  decoder.0.b  ...  decoder.{L-1}.W  decoder.{L-1}.b

``decoder.j`` maps width ``layers[L-1-j]`` to ``layers[L-2-j]`` (the input width
for the last one). A tied decoder layer has only its ``b``: it uses the
transpose of ``encoder.{L-1-j}.W``.
"""
from __future__ import annotations

import numpy as np

from .._validation import check_widths, layer_widths
from ..activations import Identity, Sigmoid, get_activation
from ..layers import Activation, Dense, Sequential, TiedDense, init_layer_params
from ..losses import bce_with_logits_into, get_loss, per_sample_loss
from .base import BaseAutoencoder

__all__ = ["LayeredAutoencoder"]

_DEFAULT_INIT = {"sigmoid": "sigmoid_uniform", "tanh": "glorot_uniform", "relu": "he_uniform",
                 "leaky_relu": "he_uniform", "softplus": "glorot_uniform",
                 "identity": "glorot_uniform"}


class LayeredAutoencoder(BaseAutoencoder):
    """Shared machinery for models on the layers engine; not used directly.

    Subclasses set the hyperparameters ``layers``, ``activation``,
    ``code_activation``, ``output_activation``, ``loss``, ``reduction``,
    ``loss_weight``, ``tied`` and ``init`` (plus the base estimator's), and may
    override :meth:`_extra_terms` (and :meth:`_extra_sample_terms`).
    """

    _shape_hyperparameters = ("layers", "tied")

    # -- architecture -------------------------------------------------------------------
    def _encoder_widths(self):
        return layer_widths(self.layers)

    def _n_codes(self):
        return self._encoder_widths()[-1]

    def _activations(self):
        """(encoder activations, decoder activations), one per Dense layer in order.

        Hidden layers use ``activation``, the code layer ``code_activation``
        (default: ``activation``), the output layer ``output_activation``.
        """
        n_layers = len(self._encoder_widths())
        hidden = get_activation(self.activation)
        code = hidden if self.code_activation is None else get_activation(self.code_activation)
        encoder = [hidden] * (n_layers - 1) + [code]
        decoder = [hidden] * (n_layers - 1) + [get_activation(self.output_activation)]
        return encoder, decoder

    def _layer_widths(self, n_features):
        """``(n_in, n_out)`` of every Dense layer: encoder layers, then decoder layers."""
        widths = [int(n_features), *self._encoder_widths()]
        encoder = list(zip(widths[:-1], widths[1:]))
        decoder = [(n_out, n_in) for n_in, n_out in reversed(encoder)]
        return encoder, decoder

    def _weight_init(self):
        if self.init != "auto":
            return self.init
        return _DEFAULT_INIT.get(get_activation(self.activation).name, "glorot_uniform")

    def _param_shapes(self, n_features):
        encoder, decoder = self._layer_widths(n_features)
        shapes, init = {}, self._weight_init()
        for i, (n_in, n_out) in enumerate(encoder):
            shapes[f"encoder.{i}.W"] = ((n_in, n_out), init)
            shapes[f"encoder.{i}.b"] = ((n_out,), init)
        for j, (n_in, n_out) in enumerate(decoder):
            if not self.tied:
                shapes[f"decoder.{j}.W"] = ((n_in, n_out), init)
            shapes[f"decoder.{j}.b"] = ((n_out,), init)
        return shapes

    def _draw_params(self, n_features, rng):
        """Every layer's parameters from :func:`npcae.layers.init_layer_params`, in key order."""
        fresh = {}
        encoder, decoder = self._layer_widths(n_features)
        init = self._weight_init()
        for prefix, widths in (("encoder", encoder), ("decoder", decoder)):
            for i, (n_in, n_out) in enumerate(widths):
                layer = init_layer_params(init, n_in, n_out, rng)
                if not (prefix == "decoder" and self.tied):
                    fresh[f"{prefix}.{i}.W"] = layer["W"]
                fresh[f"{prefix}.{i}.b"] = layer["b"]
        return fresh

    # -- the network on the engine ----------------------------------------------------
    def _network(self, dtype):
        """``(encoder, decoder, bindings)``: Sequentials of the engine's layers.

        The decoder ends with its last Dense layer (the output activation is
        applied with the loss). ``bindings`` pairs each parameter-holding layer
        with its key prefix. Built once per architecture and dtype; layers keep
        their result buffers between steps.
        """
        key = (self.n_features_in_, self._encoder_widths(), bool(self.tied),
               repr(self._activations()), np.dtype(dtype))
        cached = getattr(self, "_network_cache", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        opts = dict(reuse_buffers=True, check_input=False)
        (_, dec_widths), (_, dec_acts) = self._layer_widths(key[0]), self._activations()
        encoder = self._encoder_modules(dtype)
        enc_dense = encoder[0::2]
        bindings = [(f"encoder.{i}.", dense) for i, dense in enumerate(enc_dense)]
        decoder = []
        for j, ((n_in, n_out), act) in enumerate(zip(dec_widths, dec_acts)):
            dense = (TiedDense(enc_dense[-1 - j], **opts) if self.tied
                     else Dense(n_in, n_out, init="zeros", dtype=dtype, **opts))
            bindings.append((f"decoder.{j}.", dense))
            decoder.append(dense)
            if j < len(dec_widths) - 1:
                decoder.append(Activation(act, **opts))
        network = (Sequential(encoder), Sequential(decoder), bindings)
        self._network_cache = (key, network)
        return network

    def _encoder_modules(self, dtype):
        """``[Dense_0, Activation_0, ..., Dense_{L-1}, Activation_{L-1}]``: the encoder on the
        engine (parameters bound later with ``bind``; result buffers reused between steps)."""
        opts = dict(reuse_buffers=True, check_input=False)
        enc_widths, _ = self._layer_widths(self.n_features_in_)
        modules = []
        for i, ((n_in, n_out), act) in enumerate(zip(enc_widths, self._activations()[0])):
            # nothing below the first layer learns: its backward skips dL/dX
            modules += [Dense(n_in, n_out, init="zeros", dtype=dtype, input_grad=i > 0, **opts),
                        Activation(act, **opts)]
        return modules

    # -- encoder / decoder (inference: plain products, nothing cached) -------------------
    def _encode(self, X):
        H = X
        for i, act in enumerate(self._activations()[0]):
            H = act.value(H @ self.params[f"encoder.{i}.W"] + self.params[f"encoder.{i}.b"])
        return H

    def _decoder_weight(self, j):
        if self.tied:
            return self.params[f"encoder.{len(self._encoder_widths()) - 1 - j}.W"].T
        return self.params[f"decoder.{j}.W"]

    def _decode(self, H):
        for j, act in enumerate(self._activations()[1]):
            H = act.value(H @ self._decoder_weight(j) + self.params[f"decoder.{j}.b"])
        return H

    # -- the objective ------------------------------------------------------------------
    def _objective(self, X, grads, ws, rng=None, **noise):
        """Loss terms on ``X`` and, if ``grads`` is a dict, the gradient written into it.

        The forward and backward passes are the engine's
        (``docs/derivations.md#layered-autoencoder``); this method only adds the
        reconstruction loss at the output and the subclass's extra terms. The
        encoder reads :meth:`_encoder_input` (``X`` itself, or a corrupted copy);
        the loss always compares with ``X``.
        """
        encoder, decoder, bindings = self._network(X.dtype)
        self._bind_layers(bindings, grads)
        H = encoder.forward(self._encoder_input(X, ws, rng, **noise))    # the code
        Z = decoder.forward(H)                                   # output pre-activation
        rec, G_Z = self._reconstruction(Z, X, ws)                # s * loss, dL/dZ
        extra, add_grad = self._extra_terms(X, encoder, grads, ws, rng, **noise)
        terms = {"reconstruction": rec}
        total = rec
        for name, (value, weighted) in extra.items():
            terms[name] = value
            total = total + weighted
        terms["total"] = total
        if grads is None:
            return total, terms
        G_H = decoder.backward(G_Z)
        encoder.backward(G_H, add_grad=add_grad)
        return total, terms

    def _encoder_input(self, X, ws, rng, **noise):
        """What the encoder reads during training: ``X`` (the denoising model corrupts it)."""
        return X

    def _extra_terms(self, X, encoder, grads, ws, rng, **noise):
        """Terms beyond reconstruction, read from the encoder's cached outputs.

        ``grads`` is None (values only) or the zeroed gradient dict, into which
        a term may ADD gradients that do not pass through the encoder's
        outputs (a weight that appears in the term itself); ``ws`` is the step's
        Workspace for scratch arrays. Returns ``(terms, add_grad)``: ``terms`` maps a name to ``(value, weighted value)`` (the
        weighted value enters the total); ``add_grad`` maps an encoder module
        index to dL/d(that module's output), which the backward pass adds
        there. The plain autoencoder has none.
        """
        return {}, {}

    def _loss_scale(self, n_features):
        """``s``: ``loss_weight``, divided by ``n_features`` for ``reduction="mean"``."""
        scale = float(self.loss_weight)
        return scale / n_features if self.reduction == "mean" else scale

    def _reconstruction(self, Z, X, ws):
        """``(s * loss, dL/dZ)`` from the output pre-activation ``Z`` (overwritten)."""
        n, d = X.shape
        psi = self._activations()[1][-1]
        scale = self._loss_scale(d)
        if self.loss == "bce" and isinstance(psi, Sigmoid):
            # from the logits: exact for any Z (docs/derivations.md#losses)
            value = bce_with_logits_into(Z, X, Z, ws.get("scratch", Z.shape, Z.dtype))
            G_Z = Z                                              # (sigma(Z) - X) / n
        elif self.loss == "mse":
            R = Z if isinstance(psi, Identity) else psi.value(Z, out=ws.get("R", Z.shape,
                                                                            Z.dtype))
            D1 = None if isinstance(psi, Identity) else psi.derivative(
                Z, R, out=ws.get("D_out", Z.shape, Z.dtype))
            G_Z = np.subtract(R, X, out=Z)                       # R - X (Z is not read again)
            flat = G_Z.reshape(-1)
            value = float(np.dot(flat, flat)) / n                # (1/n) sum (R - X)^2
            G_Z *= 2.0 / n                                       # dL/dR = 2 (R - X) / n
            if D1 is not None:
                G_Z *= D1                                        # dL/dZ = dL/dR psi'(Z)
        else:
            R = psi.value(Z)
            value, G_R = get_loss(self.loss)(R, X)
            G_Z = np.multiply(G_R, psi.derivative(Z, R), out=Z)
        if scale != 1.0:
            G_Z *= scale
        return value * scale, G_Z

    def _sample_terms(self, X):
        """Per-row terms (plain NumPy, no engine): their means are ``_objective``'s."""
        Z = self._decode_pre_activation(self._encode(X))
        psi = self._activations()[1][-1]
        if self.loss == "bce" and isinstance(psi, Sigmoid):
            rec = np.sum(np.logaddexp(0.0, Z) - X * Z, axis=1)
        else:
            rec = per_sample_loss(self.loss, psi.value(Z), X)
        rec = rec * self._loss_scale(X.shape[1])
        terms, total = {"reconstruction": rec}, rec
        for name, (values, weighted) in self._extra_sample_terms(X).items():
            terms[name] = values
            total = total + weighted
        terms["total"] = total
        return terms

    def _extra_sample_terms(self, X):
        """Per-row extra terms, ``name -> (values, weighted values)`` (none here)."""
        return {}

    def _decode_pre_activation(self, H):
        """The decoder up to the output pre-activation ``Z``."""
        acts = self._activations()[1]
        for j in range(len(acts)):
            H = H @ self._decoder_weight(j) + self.params[f"decoder.{j}.b"]
            if j < len(acts) - 1:
                H = acts[j].value(H)
        return H

    # -- the encoder's Jacobian --------------------------------------------------------
    def _jacobian_rows(self, X):
        """Blocks of rows whose ``(rows, k, max width)`` products stay within 8 MiB."""
        widths = [X.shape[1], *self._encoder_widths()]
        per_row = self._n_codes() * max(widths) * X.dtype.itemsize
        rows = max(1, (8 << 20) // per_row)
        return [(s, min(s + rows, len(X))) for s in range(0, len(X), rows)]

    def _code_side_products(self, X):
        """``B = diag(D_L) W_L^T ... diag(D_2) W_2^T diag(D_1)`` per row, shape ``(n, k, h_1)``,
        built from the code side (so every intermediate is ``(n, k, h)``), with ``D_l = phi_l'(a_l)``."""
        H, derivs = X, []
        for i, act in enumerate(self._activations()[0]):
            A = H @ self.params[f"encoder.{i}.W"] + self.params[f"encoder.{i}.b"]
            H = act.value(A)
            derivs.append(act.derivative(A, H))
        B = derivs[-1][:, :, None] * np.eye(derivs[-1].shape[1], dtype=X.dtype)
        for i in range(len(derivs) - 1, 0, -1):
            B = (B @ self.params[f"encoder.{i}.W"].T) * derivs[i - 1][:, None, :]
        return B

    def jacobian(self, X):
        """Encoder Jacobians ``J_f(x_n) = diag(D_L) W_L^T ... diag(D_1) W_1^T``, shape ``(n, k, d)``.

        Computed in blocks of rows, from the code side, so that working memory
        beyond the result stays bounded.
        """
        X = self._ready(X)
        W1 = self.params["encoder.0.W"]
        out = np.empty((len(X), self._n_codes(), X.shape[1]), dtype=X.dtype)
        for start, stop in self._jacobian_rows(X):
            out[start:stop] = self._code_side_products(X[start:stop]) @ W1.T
        return out

    def jacobian_norm(self, X):
        r"""Frobenius norms :math:`\|J_f(x_n)\|_F`, shape ``(n,)``, never forming ``J``.

        :math:`\|B W_1^T\|_F^2 = \sum (B G) \odot B` with :math:`G = W_1^T W_1`
        (``h_1 x h_1``), so the ``d``-wide product is never taken.
        """
        X = self._ready(X)
        W1 = self.params["encoder.0.W"]
        G = W1.T @ W1
        out = np.empty(len(X), dtype=X.dtype)
        for start, stop in self._jacobian_rows(X):
            B = self._code_side_products(X[start:stop])
            out[start:stop] = np.sqrt(np.maximum(np.einsum("nkh,nkh->n", B @ G, B), 0.0))
        return out

    # -- hyperparameters ------------------------------------------------------------------
    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        from .._validation import check_bool, check_real
        from ..layers import check_init
        check_widths(self.layers, "layers", "(256, 128, 64) (the last is the code size)")
        check_bool(self.tied, "tied")
        check_real(self.loss_weight, "loss_weight", low=0.0, low_open=True)
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' (per-sample sum over features, mean "
                             f"over the batch) or 'mean' (mean over all elements); got "
                             f"{self.reduction!r}.")
        self._activations()
        get_loss(self.loss)
        check_init(self.init)
        if self.loss == "bce" and not isinstance(self._activations()[1][-1], Sigmoid):
            raise ValueError(f"loss='bce' needs output_activation='sigmoid' (got "
                             f"{self.output_activation!r}); for a linear output use "
                             f"loss='mse'.")

    def _requires_unit_interval(self):
        return self.loss == "bce"
