r"""The denoising-contractive link, measured; anomaly scores and ROC analysis.

**The denoising-contractive link** (Alain & Bengio, 2014, "What regularized
auto-encoders learn from the data-generating distribution"). Let
``r : R^d -> R^d`` be a reconstruction function (``r = g o f``), ``x`` a point,
``e = x - r(x)`` its residual and ``eps ~ N(0, sigma^2 I)``. Taylor's theorem
around ``x``, with ``J = J_r(x)`` (``d x d``) and ``H_i`` the Hessian of the
``i``-th output ``r_i``::

    r(x + eps) = r(x) + J eps + (1/2) q(eps) + c(eps) + O(|eps|^4),
    q_i(eps)   = eps^T H_i eps,    c: the cubic term (odd in eps).

So ``x - r(x + eps) = e - J eps - (1/2) q - c - ...`` and

    ||x - r(x + eps)||^2 = ||e||^2 - 2 e.J eps + ||J eps||^2 - e.q
                           + [odd terms of order 3] + O(|eps|^4).

Take expectations: ``E[eps] = 0`` and every odd moment vanishes,
``E[eps eps^T] = sigma^2 I`` gives ``E ||J eps||^2 = sigma^2 tr(J^T J) =
sigma^2 ||J||_F^2`` and ``E[q_i] = sigma^2 tr(H_i) = sigma^2 (Lap r)_i``, the
Laplacian of the ``i``-th output (the sum of its unmixed second partials).
Hence

    E ||x - r(x + eps)||^2 = ||x - r(x)||^2
                             + sigma^2 ( ||J_r(x)||_F^2 - (x - r(x)) . Lap r(x) )
                             + O(sigma^4),

and the *measured* left side

    lhs(sigma) = ( E ||x - r(x + eps)||^2 - ||x - r(x)||^2 ) / sigma^2

tends to ``rhs = ||J_r(x)||_F^2 - (x - r(x)) . Lap r(x)`` with a gap
``O(sigma^2)``: the relative gap falls about 10-fold for each factor
``sqrt(10)`` in sigma. (The remainder's expectation is ``O(sigma^4)`` when
``r`` has four derivatives of at most polynomial growth, true for every
smooth npcae model. relu and leaky_relu units have kinks: their ``phi'' = 0``
misses the kinks, which the Monte-Carlo side does see at finite sigma, so
expect a slower convergence there.) A denoising auto-encoder trained with small Gaussian
noise therefore minimises the reconstruction error plus ``sigma^2`` times a
contractive penalty on the *whole reconstruction* ``J_r`` (the CAE penalises the
encoder's ``J_f``; ``J_r = J_g(f(x)) J_f(x)``), plus a Laplacian term that
vanishes where ``r(x) = x``.

For a quadratic map ``r(x) = A x + b + (1/2) [x^T Q_i x]_i`` (``Q_i``
symmetric) the expansion stops: ``J = A + [x^T Q_i]_i``, ``Lap r_i = tr Q_i``
and, with ``E[q_i q_k] = sigma^4 (tr Q_i tr Q_k + 2 tr(Q_i Q_k))``, exactly

    lhs(sigma) = rhs + (sigma^2 / 4) sum_i ( (tr Q_i)^2 + 2 ||Q_i||_F^2 ).

For a linear map (``Q_i = 0``) the gap is zero and ``lhs = ||A||_F^2``.

**Monte Carlo.** :func:`dae_cae_gap` draws ``m`` standard normal ``u`` per
point and uses the antithetic pair ``eps = +-sigma u``. With
``delta_pm = r(x +- sigma u) - r(x)``,

    v = [ (||delta_+||^2 + ||delta_-||^2) / 2 - e.(delta_+ + delta_-) ] / sigma^2

is an unbiased draw of ``lhs(sigma)`` (expand ``||e - delta||^2 - ||e||^2 =
||delta||^2 - 2 e.delta``: no cancellation against ``||e||^2``). The pair
cancels the odd terms, among them ``-2 e.J eps / sigma^2``, whose variance
``4 ||J^T e||^2 / sigma^2`` would otherwise blow up as ``sigma -> 0``; what is
left, ``||J u||^2 - e.q(u) + O(sigma^2)``, has a variance that stays bounded.
This estimate, ``lhs``, uses nothing but evaluations of ``r``: it is an
independent check of both terms of ``rhs``. Standard errors are conditional on
``X`` (the Monte-Carlo error only): with ``s_i^2`` the sample variance of the
``m`` draws at point ``i``, ``se = sqrt(sum_i s_i^2 / m) / n``.

A second estimate, ``lhs_cv``, subtracts the control variate ``c = ||J u||^2``
and adds back its mean ``||J||_F^2`` (``E ||J u||^2 = ||J||_F^2`` for every
matrix ``J``), which removes the largest part of the variance. It is unbiased
as long as the products ``J u`` and the norm ``||J||_F^2`` belong to the same
``J`` (one explicit matrix with finite differences; the tangent and Gram
recursions below with the exact method, which the tests hold equal). But its
gap, ``mean(v - ||J u||^2) + (x - r).Lap r``, no longer involves the computed
``||J||_F^2``: it checks the Laplacian term and the products ``J u``, while
``lhs`` checks everything.

**Derivatives of r.** ``method="exact"``: forward mode through the model's own
layers (every npcae model's reconstruction is a chain of dense layers
``A = H W + b``, ``H' = phi(A)``). Per layer, with ``P = J_H J_H^T`` the Gram
matrix of the tangent map and ``L = Lap H``::

    J_A = W^T J_H          P_A = W^T P_H W        L_A = L_H W
    J_H' = D1 J_A          P_H' = D1 P_A D1       L_H' = D1 * L_A + D2 * diag(P_A)

with ``D1 = phi'(A)``, ``D2 = phi''(A)`` (elementwise) and
``diag(P_A)_k = sum_j (J_A)_kj^2``: the chain rule for the second derivative,
``d^2 phi(a) / dx_j^2 = phi'(a) d^2 a / dx_j^2 + phi''(a) (d a / dx_j)^2``,
summed over ``j``. At the input ``J_H = I``, ``P_H = I``, ``L_H = 0``; at the
output ``||J_r||_F^2 = tr P``. No ``d x d`` matrix is formed.
``method="fd"``: central differences of ``r`` in float64 with steps ``h`` and
``2h`` and Richardson extrapolation, for any model or function, with an
estimated error (the extrapolation correction plus a rounding bound).

**Anomaly scores and ROC.** :func:`anomaly_scores` (higher = more anomalous),
:func:`roc_auc` (Mann-Whitney with average ranks for ties) and :func:`roc_curve`.

This module never imports matplotlib.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np

from ._validation import as_float_array, check_n_features, check_positive_int, \
    check_positive_1d, check_random_state, check_real

__all__ = [
    "dae_cae_gap",
    "reconstruction_derivatives",
    "format_gap_table",
    "anomaly_scores",
    "roc_auc",
    "roc_curve",
    "SCORE_KINDS",
]

SCORE_KINDS = ("reconstruction", "jacobian", "elbo")

# Upper bound on the working arrays of one batch of rows, in bytes.
_BATCH_BUDGET_BYTES = 48 * 2 ** 20
_EPS64 = np.finfo(np.float64).eps


# ---------------------------------------------------------------------------
# the reconstruction function, in float64
# ---------------------------------------------------------------------------

def _float64_copy(model):
    """A shallow copy of an npcae model whose parameters are float64 arrays.

    Every npcae computation runs in the dtype of its parameters, so the copy's
    ``reconstruct`` computes in float64; the original model is untouched.
    """
    clone = copy.copy(model)
    clone._params = {k: np.array(v, dtype=np.float64) for k, v in model.params.items()}
    clone.__dict__.pop("_network_cache", None)
    return clone


def _reconstruction_function(model):
    """``(r, model64)``: ``r(X)`` -> float64 reconstructions, and the float64 model (or None).

    ``model`` is a fitted model with ``reconstruct`` (npcae models are copied to
    float64) or a callable ``r(X) -> (n, d)``.
    """
    has_reconstruct = callable(getattr(model, "reconstruct", None))
    if has_reconstruct and isinstance(getattr(model, "params", None), dict):
        check = getattr(model, "_check_params", None)
        if callable(check):
            check()                                     # NotFittedError with a clear message
        model64 = _float64_copy(model)
        return (lambda Z: np.asarray(model64.reconstruct(Z), dtype=np.float64)), model64
    if has_reconstruct:
        fn = model.reconstruct
    elif callable(model):
        fn = model
    else:
        raise TypeError(f"model must be a fitted model with a .reconstruct(X) method or a "
                        f"function r(X) -> (n, d); got {type(model).__name__}.")
    warned = []

    def r(Z):
        out = np.asarray(fn(Z))
        if out.dtype != np.float64 and not warned:
            warned.append(True)
            warnings.warn(f"the reconstruction function returned {out.dtype} values; "
                          f"finite differences and small-sigma differences need float64 "
                          f"(compute r in float64 for reliable numbers).", RuntimeWarning,
                          stacklevel=4)
        return out.astype(np.float64, copy=False)
    return r, None


def _dense_chain(model64):
    """The reconstruction ``r = g(f(x))`` of an npcae model as dense layers, input to output.

    Returns a list of ``(W, b, activation)`` with ``A = H @ W + b``,
    ``H' = activation(A)``, or None when the model is not a chain this module
    knows (then only finite differences apply).
    """
    if model64 is None:
        return None
    from .activations import Identity, get_activation
    from .models.cae import ContractiveAutoencoder
    from .models.layered import LayeredAutoencoder
    from .models.vae import VariationalAutoencoder
    p = model64.params
    if isinstance(model64, ContractiveAutoencoder):
        return [(p["W"], p["b"], model64._phi), (model64._decoder_weights(), p["c"],
                                                 model64._psi)]
    if isinstance(model64, LayeredAutoencoder):
        enc_acts, dec_acts = model64._activations()
        chain = [(p[f"encoder.{i}.W"], p[f"encoder.{i}.b"], a) for i, a in enumerate(enc_acts)]
        chain += [(model64._decoder_weight(j), p[f"decoder.{j}.b"], a)
                  for j, a in enumerate(dec_acts)]
        return chain
    if isinstance(model64, VariationalAutoencoder):
        act, n_hidden = model64._activation(), len(model64._hidden_widths())
        chain = [(p[f"encoder.{i}.W"], p[f"encoder.{i}.b"], act) for i in range(n_hidden)]
        chain.append((p["mu.W"], p["mu.b"], Identity()))        # decode the posterior mean
        out = get_activation("sigmoid") if model64.decoder == "bernoulli" else Identity()
        chain += [(p[f"decoder.{j}.W"], p[f"decoder.{j}.b"], act if j < n_hidden else out)
                  for j in range(n_hidden + 1)]
        return chain
    return None


def _chain_forward(chain, X, U=None, gram=True):
    """Forward mode through ``chain``: ``r(X)``, ``||J_r||_F^2``, ``Lap r`` and ``J_r u``.

    Parameters
    ----------
    chain : list of (W (n_in, n_out), b (n_out,), activation)
    X : ndarray, shape (n, d), float64
    U : ndarray, shape (n, m, d), optional
        Tangent directions; returns ``J_r(x_i) u`` for each.
    gram : bool
        Compute the Jacobian norm and the Laplacian (the Gram recursion of the
        module docstring); False: only ``r`` (and the tangents).

    Returns
    -------
    R : (n, d_out); jac_sq : (n,) or None; lap : (n, d_out) or None; JU : (n, m, d_out) or None
    """
    H, P, L, T = X, None, None, U       # P None: identity; L None: zero
    last = len(chain) - 1
    jac_sq = None
    for idx, (W, b, act) in enumerate(chain):
        A = H @ W + b
        H = act.value(A)
        D1 = act.derivative(A, H)
        if T is not None:
            T = (T @ W) * D1[:, None, :]                                  # J u, layer by layer
        if not gram:
            continue
        D2 = act.second_derivative(A, H)
        if P is None:
            sq = np.broadcast_to(np.einsum("ik,ik->k", W, W), A.shape)    # diag(W^T W)
            L = D2 * sq                                                   # L_A = 0 here
            if idx < last:
                P = (D1[:, :, None] * (W.T @ W)[None]) * D1[:, None, :]   # D1 W^T W D1
        else:
            PW = P @ W                                                    # (n, n_in, n_out)
            sq = np.einsum("nik,ik->nk", PW, W)                           # diag(W^T P W)
            L = D1 * (L @ W) + D2 * sq
            if idx < last:
                P = (D1[:, :, None] * (np.swapaxes(W, 0, 1)[None] @ PW)) * D1[:, None, :]
        if idx == last:
            jac_sq = np.einsum("nk,nk->n", D1 * D1, sq)                   # tr(D1 P_A D1)
    return H, jac_sq, L, T


def _chain_row_bytes(chain, m):
    """Bytes of working memory per row of :func:`_chain_forward` (Gram and tangents)."""
    widths = [chain[0][0].shape[0]] + [W.shape[1] for W, _, _ in chain]
    gram = max(w_in * w_out + (w_out * w_out if i < len(chain) - 1 else 0)
               for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])))
    return 8 * (2 * gram + 3 * max(1, m) * max(widths))


def _check_chain(chain, model, X):
    """Whether the chain reproduces ``model.reconstruct`` on a few rows (else None: its error)."""
    rows = X[:min(len(X), 8)]
    mine = _chain_forward(chain, rows, gram=False)[0]
    theirs = np.asarray(model.reconstruct(rows))
    tol = (1e-4 if theirs.dtype == np.float32 else 1e-9) * max(1.0, float(np.max(np.abs(mine))))
    err = float(np.max(np.abs(mine - theirs.astype(np.float64))))
    return None if err <= tol else err


def _fd_terms(r, X, step, return_jacobian=True):
    """Central differences of ``r`` at every row of ``X``, steps ``h`` and ``2h``, extrapolated.

    Returns ``(R, J, jac_sq, lap, jac_sq_err, lap_err)`` with ``J`` of shape
    ``(n, d_out, d)`` (``J[i, a, j] = d r_a / d x_j`` at ``x_i``). The values are
    Richardson extrapolations ``(4 T(h) - T(2h)) / 3`` (error ``O(h^4)``); the
    error estimates are ``|T(h) - T(2h)| / 3`` (the size of the ``O(h^2)``
    correction, an upper estimate of the extrapolated value's error) plus a
    rounding bound ``delta / h`` (first derivatives) and ``4 d delta / h^2``
    (the Laplacian's sum of ``d`` second differences), with
    ``delta = 64 eps max(1, |r|)`` the assumed float64 error of one evaluation
    of ``r``.
    """
    n, d = X.shape
    R = r(X)
    if R.ndim != 2 or R.shape[0] != n:
        raise ValueError(f"the reconstruction function returned shape {R.shape} for {n} "
                         f"rows; expected (n, d_out).")
    eye = np.eye(d)
    Js, laps = [], []
    for h in (step, 2.0 * step):
        shifted = np.concatenate([X[:, None, :] + h * eye, X[:, None, :] - h * eye], axis=1)
        out = r(shifted.reshape(2 * n * d, d)).reshape(n, 2, d, -1)   # [i, +/-, j, a]
        plus, minus = out[:, 0], out[:, 1]
        Js.append(np.swapaxes(plus - minus, 1, 2) / (2.0 * h))
        laps.append(np.sum(plus + minus - 2.0 * R[:, None, :], axis=1) / (h * h))
    J = (4.0 * Js[0] - Js[1]) / 3.0
    lap = (4.0 * laps[0] - laps[1]) / 3.0
    sq = [np.einsum("nab,nab->n", Jh, Jh) for Jh in Js]
    jac_sq = (4.0 * sq[0] - sq[1]) / 3.0
    delta = 64.0 * _EPS64 * max(1.0, float(np.max(np.abs(R))))
    rj = (5.0 / 3.0) * delta / step                                  # per Jacobian entry
    jac_sq_err = (np.abs(sq[0] - sq[1]) / 3.0
                  + 2.0 * np.sqrt(jac_sq.clip(0.0)) * np.sqrt(J[0].size) * rj + J[0].size * rj ** 2)
    lap_err = np.abs(laps[0] - laps[1]) / 3.0 + (5.0 / 3.0) * 4.0 * d * delta / step ** 2
    return R, (J if return_jacobian else None), jac_sq, lap, jac_sq_err, lap_err


def _check_method(method, chain, model, X):
    """Resolve ``method`` to "exact" or "fd" (with a warning when "auto" has to fall back)."""
    if method not in ("auto", "exact", "fd"):
        raise ValueError(f"method must be 'auto' (the model's own derivatives when it is an "
                         f"npcae model, else finite differences), 'exact' or 'fd'; got "
                         f"{method!r}.")
    if method == "fd":
        return "fd"
    if chain is None:
        if method == "exact":
            raise ValueError(f"method='exact' needs an npcae model whose reconstruction is a "
                             f"chain of dense layers (Autoencoder, DenoisingAutoencoder, "
                             f"ContractiveAutoencoder, DeepContractiveAutoencoder, "
                             f"SparseAutoencoder, StackedAutoencoder, "
                             f"VariationalAutoencoder); got {type(model).__name__}. Use "
                             f"method='fd' (finite differences) for any other model or a "
                             f"function.")
        return "fd"
    err = _check_chain(chain, model, X)
    if err is not None:
        msg = (f"the layer chain read from {type(model).__name__}'s parameters does not "
               f"reproduce its reconstruct() (max difference {err:.3g}); its exact "
               f"derivatives cannot be trusted")
        if method == "exact":
            raise RuntimeError(msg + "; use method='fd'.")
        warnings.warn(msg + "; using finite differences instead.", RuntimeWarning, stacklevel=3)
        return "fd"
    return "exact"


def _validated_X(model, X):
    X = as_float_array(X, "X", ndim=2, dtype=np.float64, convert_numeric=True, uint8="warn")
    n_in = getattr(model, "n_features_in_", None)
    if n_in is not None:
        check_n_features(X, int(n_in), "X")
    return X


def _fd_row_bytes(d, d_out):
    return 8 * (6 * d * d_out + 2 * d * d)


def reconstruction_derivatives(model, X, method="auto", step=1e-2, return_jacobian=False):
    """Jacobian norm and Laplacian of the reconstruction ``r = g o f`` at each row of ``X``.

    Parameters
    ----------
    model : fitted model or callable
        A model with ``reconstruct(X)`` (npcae models are evaluated on a float64
        copy), or a function ``r(X) -> (n, d)`` evaluated in float64.
    X : array_like, shape (n, d)
    method : {"auto", "exact", "fd"}
        "exact": forward mode through the model's dense layers (module
        docstring; npcae models only). "fd": central finite differences with
        Richardson extrapolation (any model, ``2 * 2 * d`` extra evaluations of
        ``r`` per row). "auto": "exact" when possible, else "fd".
    step : float
        Finite-difference step ``h`` (the differences use ``h`` and ``2h``).
    return_jacobian : bool
        Also return the full Jacobians, ``(n, d, d)`` (memory ``8 n d^2`` bytes).

    Returns
    -------
    dict
        ``"reconstruction"`` (n, d): ``r(x)``. ``"jacobian_sq_norm"`` (n,):
        ``||J_r(x)||_F^2``. ``"laplacian"`` (n, d): ``Lap r(x)``, the Laplacian of
        each output. ``"jacobian_sq_norm_error"`` (n,), ``"laplacian_error"``
        (n, d): estimated absolute errors (zeros for "exact", which is exact up
        to float64 rounding). ``"jacobian"`` (n, d, d), ``J[i, a, j] = d r_a /
        d x_j``, if asked. ``"method"``: "exact" or "fd".
    """
    r, model64 = _reconstruction_function(model)
    X = _validated_X(model, X)
    step = check_real(step, "step", low=0.0, low_open=True)
    chain = _dense_chain(model64)
    method = _check_method(method, chain, model64, X)
    n, d = X.shape
    if method == "exact":
        U = np.broadcast_to(np.eye(d), (n, d, d)) if return_jacobian else None
        R, jac_sq, lap, JU = _chain_forward(chain, X, U)
        out = {"reconstruction": R, "jacobian_sq_norm": jac_sq, "laplacian": lap,
               "jacobian_sq_norm_error": np.zeros(n), "laplacian_error": np.zeros_like(lap)}
        if return_jacobian:
            out["jacobian"] = np.swapaxes(JU, 1, 2)         # JU[i, j] = J e_j: column j
    else:
        R, J, jac_sq, lap, jerr, lerr = _fd_terms(r, X, step, return_jacobian)
        out = {"reconstruction": R, "jacobian_sq_norm": jac_sq, "laplacian": lap,
               "jacobian_sq_norm_error": jerr, "laplacian_error": lerr}
        if return_jacobian:
            out["jacobian"] = J
    out["method"] = method
    return out


# ---------------------------------------------------------------------------
# the gap
# ---------------------------------------------------------------------------

def dae_cae_gap(model, X, sigmas=(0.3, 0.1, 0.03, 0.01), n_pairs=32, *, method="auto",
                step=1e-2, random_state=0, batch_size=None):
    r"""Measure the denoising-contractive link: ``lhs(sigma)`` against its sigma -> 0 limit.

    ``lhs(sigma) = (E ||x - r(x + eps)||^2 - ||x - r(x)||^2) / sigma^2`` with
    ``eps ~ N(0, sigma^2 I)`` tends to

        ``rhs = ||J_r(x)||_F^2 - (x - r(x)) . Lap r(x)``

    as ``sigma -> 0``, with a gap ``O(sigma^2)`` (derivation in the module
    docstring). Both are averaged over the rows of ``X``. The squared error is
    measured whatever loss the model was trained with: the identity is about
    the function ``r``.

    Parameters
    ----------
    model : fitted model or callable
        Anything with ``reconstruct(X)`` (npcae models are evaluated on a
        float64 copy; the model is not changed), or a function
        ``r(X) -> (n, d)`` on float64 rows (tests: known maps).
    X : array_like, shape (n, d)
        Points ``x``. Perturbed points ``x + eps`` are not clipped (npcae
        encoders accept any real input).
    sigmas : float or sequence of float
        Noise standard deviations.
    n_pairs : int >= 2
        Antithetic pairs ``(u, -u)`` per point (``2 * n_pairs`` evaluations of
        ``r`` per point and sigma). The same ``u`` serve every sigma (common
        random numbers: the sigma dependence is not blurred by fresh noise).
    method : {"auto", "exact", "fd"}
        How ``J_r`` and ``Lap r`` are computed (:func:`reconstruction_derivatives`).
    step : float
        Finite-difference step (``method="fd"``).
    random_state : None, int, Generator or RandomState
        Source of ``u``. The result does not depend on ``batch_size``.
    batch_size : int or None
        Rows per batch (None: as many as fit in ~48 MB of working arrays).

    Returns
    -------
    records : list of dict, one per sigma, in the order given, with
        ``sigma``;
        ``lhs``, ``lhs_se``: the Monte-Carlo ``lhs(sigma)`` from antithetic
        pairs and its standard error (evaluations of ``r`` only);
        ``lhs_cv``, ``lhs_cv_se``: the same draws with the control variate
        ``||J u||^2`` (smaller error; see the module docstring for what its
        gap does and does not check);
        ``jacobian_term``: mean ``||J_r(x)||_F^2``;
        ``laplacian_term``: mean ``(x - r(x)) . Lap r(x)`` (it enters ``rhs``
        with a minus sign);
        ``rhs``: ``jacobian_term - laplacian_term``;
        ``gap``: ``lhs - rhs``; ``relative_gap``: ``gap / |rhs|``;
        ``relative_gap_se``: ``lhs_se / |rhs|``; ``gap_cv``,
        ``relative_gap_cv``, ``relative_gap_cv_se``: the same for ``lhs_cv``;
        ``gap_over_sigma2``: ``gap_cv / sigma^2`` (about constant while the
        ``O(sigma^2)`` term is larger than the noise);
        ``rhs_error``: estimated absolute error of ``rhs`` (0 for the exact
        derivatives; the finite-difference estimate otherwise);
        ``reconstruction_error``: mean ``||x - r(x)||^2`` (for scale);
        ``method``, ``n_samples``, ``n_pairs``.

    Notes
    -----
    Cost per point: the derivatives (exact: about one forward pass times the
    layer widths; finite differences: ``4 d`` evaluations of ``r``) plus
    ``2 * n_pairs`` evaluations of ``r`` per sigma.
    """
    r, model64 = _reconstruction_function(model)
    X = _validated_X(model, X)
    sigmas = check_positive_1d(sigmas, "sigmas", "noise standard deviations")
    n_pairs = check_positive_int(n_pairs, "n_pairs")
    if n_pairs < 2:
        raise ValueError(f"n_pairs must be >= 2 (the standard error needs the spread of at "
                         f"least two draws per point); got {n_pairs}.")
    step = check_real(step, "step", low=0.0, low_open=True)
    rng = check_random_state(random_state)
    chain = _dense_chain(model64)
    method = _check_method(method, chain, model64, X)
    n, d = X.shape
    m = n_pairs
    if batch_size is None:
        per_row = 8 * 4 * m * d                                   # u, x +- sigma u, r(...)
        per_row += _chain_row_bytes(chain, m) if method == "exact" else _fd_row_bytes(d, d)
        batch_size = max(1, _BATCH_BUDGET_BYTES // per_row)
    batch_size = check_positive_int(batch_size, "batch_size")

    k = sigmas.size
    sums = {key: np.zeros(k) for key in ("plain", "cv", "diff", "plain_var", "cv_var",
                                         "diff_var")}
    smallest = int(np.argmin(sigmas))
    jac_total = lap_total = rec_total = rhs_err_total = 0.0
    for start in range(0, n, batch_size):
        Xb = X[start:start + batch_size]
        nb = len(Xb)
        U = rng.standard_normal((nb, m, d))                       # sequential: batch-independent
        if method == "exact":
            R0, jac_sq, lap, JU = _chain_forward(chain, Xb, U)
            jerr = lerr = None
        else:
            R0, J, jac_sq, lap, jerr, lerr = _fd_terms(r, Xb, step)
            JU = np.einsum("naj,nmj->nma", J, U)
        if R0.shape != Xb.shape:
            raise ValueError(f"the reconstruction has shape {R0.shape} for inputs of shape "
                             f"{Xb.shape}; r must map R^d to R^d.")
        E = Xb - R0                                               # residual e = x - r(x)
        jac_total += float(np.sum(jac_sq))
        lap_total += float(np.einsum("nd,nd->", E, lap))
        rec_total += float(np.einsum("nd,nd->", E, E))
        if jerr is not None:
            rhs_err_total += float(np.sum(jerr) + np.einsum("nd,nd->", np.abs(E), lerr))
        C = np.einsum("nma,nma->nm", JU, JU)                      # control variate ||J u||^2
        V = np.empty((k, nb, m))
        for s_idx, sigma in enumerate(sigmas):
            pm = np.concatenate([Xb[:, None, :] + sigma * U, Xb[:, None, :] - sigma * U], axis=1)
            out = r(pm.reshape(2 * nb * m, d)).reshape(nb, 2, m, d)
            Dp = out[:, 0] - R0[:, None, :]                       # delta_+ = r(x + eps) - r(x)
            Dm = out[:, 1] - R0[:, None, :]
            v = (0.5 * (np.einsum("nmd,nmd->nm", Dp, Dp) + np.einsum("nmd,nmd->nm", Dm, Dm))
                 - np.einsum("nd,nmd->nm", E, Dp + Dm)) / sigma ** 2
            V[s_idx] = v
        # v - C + ||J||^2: the control variate; V - V[smallest]: paired differences (the same u)
        for key, vals in (("plain", V), ("cv", V - C + jac_sq[:, None]),
                          ("diff", V - V[smallest])):
            sums[key] += np.sum(vals.mean(axis=2), axis=1)
            sums[key + "_var"] += np.sum(vals.var(axis=2, ddof=1), axis=1) / m
    jac_term, lap_term = jac_total / n, lap_total / n
    rhs = jac_term - lap_term

    def relative(value):
        return float(value / abs(rhs)) if rhs != 0 else float("nan")

    records = []
    for s_idx, sigma in enumerate(sigmas):
        lhs, se = sums["plain"][s_idx] / n, np.sqrt(sums["plain_var"][s_idx]) / n
        lhs_cv, se_cv = sums["cv"][s_idx] / n, np.sqrt(sums["cv_var"][s_idx]) / n
        records.append({
            "sigma": float(sigma),
            "lhs": float(lhs), "lhs_se": float(se),
            "lhs_cv": float(lhs_cv), "lhs_cv_se": float(se_cv),
            "jacobian_term": float(jac_term), "laplacian_term": float(lap_term),
            "rhs": float(rhs),
            "gap": float(lhs - rhs), "relative_gap": relative(lhs - rhs),
            "relative_gap_se": relative(se),
            "gap_cv": float(lhs_cv - rhs), "relative_gap_cv": relative(lhs_cv - rhs),
            "relative_gap_cv_se": relative(se_cv),
            "lhs_minus_smallest": float(sums["diff"][s_idx] / n),
            "lhs_minus_smallest_se": float(np.sqrt(sums["diff_var"][s_idx]) / n),
            "smallest_sigma": float(sigmas[smallest]),
            "rhs_error": float(rhs_err_total / n), "reconstruction_error": float(rec_total / n),
            "method": method, "n_samples": int(n), "n_pairs": int(m),
        })
    return records


def format_gap_table(records, title=None):
    """The records of :func:`dae_cae_gap` as text: ``rhs`` once, then one row per sigma.

    Row columns: sigma; the Monte-Carlo ``lhs`` and its standard error; the
    relative gap ``(lhs - rhs) / |rhs|`` with its standard error, for the plain
    estimate and the control-variate one; and ``(lhs(sigma) -
    lhs(smallest sigma)) / |rhs|`` from paired draws, with its standard error.
    """
    lines = [] if title is None else [title]
    if not records:
        return "\n".join(lines)
    rec = records[0]
    how = ("exact: the model's own derivatives, forward mode" if rec["method"] == "exact"
           else f"finite differences, estimated error {rec['rhs_error']:.2g}")
    lines.append(f"  rhs = ||J_r||_F^2 - (x - r).Lap r = {rec['jacobian_term']:.5g} - "
                 f"({rec['laplacian_term']:.4g}) = {rec['rhs']:.5g}   ({how})")
    lines.append(f"  lhs = (E||x - r(x + eps)||^2 - ||x - r(x)||^2) / sigma^2, mean over "
                 f"{rec['n_samples']} points x {rec['n_pairs']} antithetic pairs; mean "
                 f"||x - r(x)||^2 = {rec['reconstruction_error']:.4g}")
    s0 = f"{rec['smallest_sigma']:g}"
    lines.append(f"  {'sigma':>6}  {'lhs':>9} {'+- se':>7}  {'(lhs-rhs)/rhs':>13} {'+- se':>7}  "
                 f"{'same, cv':>9} {'+- se':>7}  {f'(lhs-lhs({s0}))/rhs':>19} {'+- se':>8}")
    for rec in records:
        lines.append(f"  {rec['sigma']:>6.3g}  {rec['lhs']:>9.5g} {rec['lhs_se']:>7.2g}  "
                     f"{rec['relative_gap']:>13.3%} {rec['relative_gap_se']:>7.3%}  "
                     f"{rec['relative_gap_cv']:>9.3%} {rec['relative_gap_cv_se']:>7.3%}  "
                     f"{rec['lhs_minus_smallest'] / abs(rec['rhs']):>19.4%} "
                     f"{rec['lhs_minus_smallest_se'] / abs(rec['rhs']):>8.4%}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# anomaly scores
# ---------------------------------------------------------------------------

def _is_vae(model):
    from .models.vae import VariationalAutoencoder
    return isinstance(model, VariationalAutoencoder)


def anomaly_scores(model, X, kind="reconstruction", *, n_draws=16, random_state=0,
                   batch_size=256):
    r"""Per-sample anomaly scores of a fitted model: higher means more anomalous.

    Parameters
    ----------
    model : fitted npcae model
    X : array_like, shape (n, d)
    kind : {"reconstruction", "jacobian", "elbo"}
        ``"reconstruction"``: the model's reconstruction loss of each sample,
        ``loss(x, g(f(x)))`` summed over features (cross-entropy or squared
        error, as trained, times ``loss_weight``), penalties left out (unlike
        ``-score_samples``, which adds the CAE's or sparsity penalty). For the
        VAE it is ``-log p(x | z = mu(x))``, the decoder's negative
        log-likelihood at the posterior mean (deterministic). A model trained
        on normal data reconstructs points near its training manifold well and
        others badly.

        ``"jacobian"``: ``||J_f(x)||_F^2``, the squared Frobenius norm of the
        encoder's Jacobian (the VAE: of the posterior mean). A contractive
        (or denoising) training makes the encoder insensitive around the
        training data, where its penalty acts; elsewhere nothing held it down,
        so a large local sensitivity marks a point the encoder has not
        learned to contract. This is a hypothesis the demo tests, not a
        guarantee: saturated units far from the data give small Jacobians too.

        ``"elbo"``: the negative ELBO, ``-(E_q[log p(x|z)] - KL(q(z|x) || p(z)))``,
        the expectation over ``n_draws`` draws (``VariationalAutoencoder.score_samples``):
        an upper bound on ``-log p(x)``, low on likely data. VAE only.
    n_draws, random_state
        For ``kind="elbo"``: draws per sample, and their seed (deterministic
        per row, see ``VariationalAutoencoder.score_samples``).
    batch_size : int
        Rows per Jacobian batch (``kind="jacobian"`` on a model without
        ``jacobian_norm``).

    Returns
    -------
    scores : ndarray, shape (n,), float64
    """
    if kind not in SCORE_KINDS:
        raise ValueError(f"kind must be one of {list(SCORE_KINDS)}; got {kind!r}.")
    check = getattr(model, "_check_params", None)
    if callable(check):
        check()                                                   # refuse unfitted models
    if kind == "elbo":
        if not _is_vae(model):
            raise ValueError(f"kind='elbo' needs a VariationalAutoencoder: only a model with "
                             f"a likelihood p(x|z) and a prior p(z) has an evidence lower "
                             f"bound; {type(model).__name__} has neither. Use "
                             f"kind='reconstruction' or kind='jacobian'.")
        return -np.asarray(model.score_samples(X, random_state=random_state,
                                               n_draws=check_positive_int(n_draws, "n_draws")),
                           dtype=np.float64)
    if kind == "jacobian":
        norm = getattr(model, "jacobian_norm", None)
        if callable(norm):
            return np.asarray(norm(X), dtype=np.float64) ** 2
        if not callable(getattr(model, "jacobian", None)):
            raise TypeError(f"kind='jacobian' needs a model with .jacobian(X) (the encoder "
                            f"Jacobian); {type(model).__name__} has none. Use "
                            f"kind='reconstruction'.")
        from ._spectra import _check_X_for_model, _jacobian_batches
        Xc = _check_X_for_model(model, X)
        out = np.empty(len(Xc))
        for start, stop, J in _jacobian_batches(model, Xc, batch_size):
            out[start:stop] = np.einsum("nkd,nkd->n", J, J, dtype=np.float64)
        return out
    # reconstruction
    if callable(getattr(model, "_sample_terms", None)) and \
            callable(getattr(model, "_prepare_for_objective", None)):
        Xc = model._prepare_for_objective(X)                      # [0, 1] check for BCE
        out = np.empty(len(Xc))
        for start, stop in model._eval_blocks(Xc):
            Xb = Xc[start:stop]
            if _is_vae(model):
                terms = model._sample_terms(Xb, eps=np.zeros((len(Xb), model._n_codes()),
                                                             dtype=Xb.dtype))
            else:
                terms = model._sample_terms(Xb)
            out[start:stop] = terms["reconstruction"]
        return out
    if not callable(getattr(model, "reconstruct", None)):
        raise TypeError(f"kind='reconstruction' needs a model with .reconstruct(X); got "
                        f"{type(model).__name__}.")
    Xc = as_float_array(X, "X", ndim=2, dtype=np.float64)
    R = np.asarray(model.reconstruct(Xc), dtype=np.float64)
    return np.einsum("nd,nd->n", Xc - R, Xc - R)                  # squared error, any model


# ---------------------------------------------------------------------------
# ROC
# ---------------------------------------------------------------------------

def _check_scores_labels(scores, labels):
    s = as_float_array(scores, "scores", ndim=1, dtype=np.float64, convert_numeric=True,
                       uint8="warn")
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != s.shape[0]:
        raise ValueError(f"labels must be 1-D with one label per score; got shape {y.shape} "
                         f"for {s.shape[0]} scores.")
    if y.dtype != bool:
        if y.dtype.kind not in "iuf" or not np.all((y == 0) | (y == 1)):
            raise ValueError("labels must be binary: 1 (or True) for a positive (anomaly), 0 "
                             "(or False) for a negative (normal); got values "
                             f"{np.unique(y)[:5].tolist()}.")
        y = y == 1
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"the ROC needs both classes; got {n_pos} positive and {n_neg} "
                         f"negative labels.")
    return s, y, n_pos, n_neg


def roc_auc(scores, labels):
    r"""Area under the ROC curve, ``P(s_pos > s_neg) + P(s_pos = s_neg) / 2``.

    Computed from ranks (the Mann-Whitney U statistic): with ``R_+`` the sum
    of the positives' ranks among all scores (1 = smallest; tied scores share
    the average of their ranks),

        ``AUC = (R_+ - n_+ (n_+ + 1) / 2) / (n_+ n_-)``.

    A tie between a positive and a negative gets half credit; ties within a
    class cancel. ``O(n log n)``, no loops over pairs.

    Parameters
    ----------
    scores : array_like, shape (n,)
        Finite scores; higher means "more positive" (more anomalous).
    labels : array_like, shape (n,)
        1/True for positives (anomalies), 0/False for negatives; both needed.

    Returns
    -------
    auc : float in [0, 1]
        1: every positive scores above every negative; 0.5: no better than
        chance; 0: perfectly reversed.
    """
    s, y, n_pos, n_neg = _check_scores_labels(scores, labels)
    n = s.size
    order = np.argsort(s, kind="mergesort")
    ss = s[order]
    first = np.r_[True, ss[1:] != ss[:-1]]                        # start of each tie group
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], n]
    avg = 0.5 * (starts + 1 + ends)                               # mean of ranks starts+1..ends
    ranks = np.empty(n)
    ranks[order] = avg[group]
    u = float(np.sum(ranks[y])) - n_pos * (n_pos + 1) / 2.0
    return u / (float(n_pos) * float(n_neg))


def roc_curve(scores, labels):
    r"""The ROC curve: false- and true-positive rates at every distinct threshold.

    A sample is called positive when its score is ``>= threshold``.
    Thresholds run from ``+inf`` (nothing positive: the point (0, 0)) down
    through every distinct score (the last one calls everything positive: the
    point (1, 1)). Tied scores move both rates at once, a diagonal segment,
    so the trapezoidal area under ``(fpr, tpr)`` equals :func:`roc_auc`.

    Returns
    -------
    fpr, tpr : ndarray, shape (n_distinct + 1,)
        Non-decreasing, from 0 to 1.
    thresholds : ndarray, shape (n_distinct + 1,)
        Decreasing; ``thresholds[0] = inf``.
    """
    s, y, n_pos, n_neg = _check_scores_labels(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    ss, ys = s[order], y[order]
    last = np.r_[ss[1:] != ss[:-1], True]                         # end of each tie group
    tps = np.cumsum(ys)[last]
    fps = np.cumsum(~ys)[last]
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, ss[last]]
    return fpr, tpr, thresholds
