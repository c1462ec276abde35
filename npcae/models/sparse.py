r"""Sparse autoencoder: a plain (deep) autoencoder plus a sparsity penalty on the code.

With ``h`` the code (the encoder's last output) and ``n`` the batch size::

    L1:  T = beta * (1/n) sum_n sum_j |h_nj|                  (per sample, like every term)
    KL:  T = beta * sum_j KL(rho || rho_hat_j),   rho_hat_j = (1/n) sum_n h_nj

``KL(rho || q) = rho log(rho / q) + (1 - rho) log((1 - rho) / (1 - q))``. The KL
term is the library's one batch-level term: it is a function of the batch
mean, added once per batch, not a mean of per-sample terms. So
``score_samples`` leaves it out, and ``loss_terms``/``score`` on a large ``X``
compute ``rho_hat`` over the whole ``X`` first (batching changes nothing).
``rho_hat`` is clipped to ``[1e-7, 1 - 1e-7]``; where the clip is active the
term is flat, so its gradient there is 0. Derivation:
``docs/derivations.md#sparse-autoencoder``.
"""
from __future__ import annotations

import numpy as np

from ..activations import Sigmoid, get_activation
from .autoencoder import Autoencoder

__all__ = ["SparseAutoencoder"]

RHO_HAT_CLIP = 1e-7


def _kl_to_target(rho, rho_hat):
    """``sum_j KL(rho || rho_hat_j)`` and its derivative with respect to each ``rho_hat_j``."""
    value = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    return value, -rho / rho_hat + (1 - rho) / (1 - rho_hat)


class SparseAutoencoder(Autoencoder):
    r"""Autoencoder with an L1 or KL sparsity penalty on the code layer (any depth).

    Parameters
    ----------
    sparsity : {"kl", "l1"}
        "kl": ``beta * sum_j KL(rho || rho_hat_j)`` on the batch-mean activation
        (needs a code activation in (0, 1): sigmoid). "l1": ``beta * mean_n
        sum_j |h_nj|``.
    beta : float >= 0
        Weight of the penalty.
    rho : float in (0, 1)
        Target mean activation (KL only).
    layers, activation, code_activation, output_activation, loss, reduction, loss_weight, tied, init, ...
        As for :class:`~npcae.Autoencoder`.

    ``history_`` gains ``sparsity`` (the unweighted penalty) and ``mean_activation``
    (the mean of ``rho_hat`` over the code units).
    """

    def __init__(self, layers=(64,), sparsity="kl", beta=3.0, rho=0.05, activation="sigmoid",
                 code_activation=None, output_activation="sigmoid", loss="bce",
                 reduction="sum", loss_weight=1.0, tied=False, init="auto", optimizer=None,
                 batch_size=100, epochs=10, shuffle=True, drop_last=False, random_state=None,
                 dtype=np.float32, early_stopping=None, verbose=0, warm_start=False):
        super().__init__(layers=layers, activation=activation, code_activation=code_activation,
                         output_activation=output_activation, loss=loss, reduction=reduction,
                         loss_weight=loss_weight, tied=tied, init=init, optimizer=optimizer,
                         batch_size=batch_size, epochs=epochs, shuffle=shuffle,
                         drop_last=drop_last, random_state=random_state, dtype=dtype,
                         early_stopping=early_stopping, verbose=verbose, warm_start=warm_start)
        self.sparsity = sparsity
        self.beta = beta
        self.rho = rho

    def _check_hyperparameters(self):
        super()._check_hyperparameters()
        from .._validation import check_real
        if self.sparsity not in ("kl", "l1"):
            raise ValueError(f"sparsity must be 'kl' or 'l1'; got {self.sparsity!r}.")
        check_real(self.beta, "beta", low=0.0)
        check_real(self.rho, "rho", low=0.0, low_open=True, high=1.0)
        if self.rho >= 1.0:
            raise ValueError(f"rho must lie in (0, 1); got {self.rho!r}.")
        if self.sparsity == "kl" and not isinstance(self._activations()[0][-1], Sigmoid):
            code = self.activation if self.code_activation is None else self.code_activation
            raise ValueError(f"sparsity='kl' compares the code's mean activation with rho, so "
                             f"the code activation must lie in (0, 1): use "
                             f"code_activation='sigmoid' (got {get_activation(code).name!r}), "
                             f"or sparsity='l1'.")

    # -- the penalty (docs/derivations.md#sparse-autoencoder) ---------------------------
    def _extra_terms(self, X, encoder, grads, ws, rng, **noise):
        need_grad = grads is not None
        code_index = len(encoder.modules) - 1                   # the code layer's activation
        H = encoder.modules[code_index].output                  # (n, k)
        n, beta = H.shape[0], float(self.beta)
        rho_hat_raw = H.mean(axis=0)                            # (k,)
        mean_activation = (float(rho_hat_raw.mean()), 0.0)      # reported, not in the total
        if self.sparsity == "l1":
            value = np.abs(H).sum() / n                         # (1/n) sum |h|
            grad = (beta / n) * np.sign(H) if need_grad else None        # dT/dH
        else:
            rho_hat = np.clip(rho_hat_raw, RHO_HAT_CLIP, 1 - RHO_HAT_CLIP)
            value, dkl_drho_hat = _kl_to_target(float(self.rho), rho_hat)
            if need_grad:
                inside = (rho_hat_raw > RHO_HAT_CLIP) & (rho_hat_raw < 1 - RHO_HAT_CLIP)
                # dT/dH_nj = beta * dKL/drho_hat_j * drho_hat_j/dH_nj, with drho_hat/dH = 1/n
                grad = np.broadcast_to((beta / n) * dkl_drho_hat * inside, H.shape)
            else:
                grad = None
        terms = {"sparsity": (value, beta * value), "mean_activation": mean_activation}
        return terms, ({code_index: grad} if need_grad else {})

    def _extra_sample_terms(self, X):
        """Per sample: the L1 term; the KL term is batch-level and is left out."""
        if self.sparsity != "l1":
            return {}
        values = np.abs(self._encode(X)).sum(axis=1)
        return {"sparsity": (values, float(self.beta) * values)}

    def loss_terms(self, X, **noise):
        """As for every model; with ``sparsity="kl"`` the KL term uses ``rho_hat`` of all of ``X``."""
        terms = super().loss_terms(X, **noise)
        if self.sparsity == "kl":
            X = self._prepare_for_objective(X)
            rho_hat_raw = self._mean_code(X)
            rho_hat = np.clip(rho_hat_raw, RHO_HAT_CLIP, 1 - RHO_HAT_CLIP)
            value, _ = _kl_to_target(float(self.rho), rho_hat)
            terms["sparsity"] = float(value)
            terms["mean_activation"] = float(rho_hat_raw.mean())
            terms["total"] = terms["reconstruction"] + float(self.beta) * float(value)
        return terms

    def _mean_code(self, X):
        """``rho_hat`` over all rows of ``X``, encoded in bounded blocks."""
        total = np.zeros(self._n_codes())
        for start, stop in self._eval_blocks(X):
            total += self._encode(X[start:stop]).sum(axis=0, dtype=np.float64)
        return total / X.shape[0]

    def score_samples(self, X):
        """Per-sample negative objective: reconstruction, plus the L1 term when
        ``sparsity="l1"``. The KL term is a batch-level term and is left out."""
        return super().score_samples(X)
