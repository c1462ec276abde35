r"""Reference fixtures: one model's exact float64 objective and gradients on given inputs.

A fixture holds everything another implementation needs to reproduce npcae's
numbers, and the numbers themselves:

* the inputs ``X`` (n, d), the parameters under npcae's names and layouts, and
  every noise array the objective reads (the denoising model's ``corrupted``,
  the VAE's ``eps``, the deep CAE's ``projections`` / ``perturbations``), so
  the objective is deterministic;
* the loss, its terms (each term's contribution to the loss: the terms sum to
  it), the gradient of the loss with respect to every parameter, and the
  gradient of each term separately (they sum to the total to about 1e-12);
* the encoder Jacobian ``J[m] = d code / d x`` at a few rows;
* a JSON part with the conventions: the model class and its hyperparameters
  (so it can be rebuilt), weight layouts (npcae's ``W`` is ``(n_in, n_out)``,
  PyTorch's ``Linear.weight`` is ``(n_out, n_in)``), reductions and which
  activation sits where.

File layout (an ``.npz`` archive read with ``allow_pickle=False``)::

    __fixture__                    0-d str: the JSON metadata
    X                              (n, d) inputs
    param/<name>                   each parameter (npcae name and layout)
    noise/<name>                   each noise array
    loss                           0-d: the objective
    term/<term>                    0-d: each term's contribution (they sum to loss)
    grad/<name>                    d loss / d parameter
    term_grad/<term>/<name>        d term / d parameter
    jacobian, jacobian_rows        (m, k, d) and (m,): J at X[jacobian_rows]

The per-term gradients are computed by the same model with the other terms'
weights set to 0 (exact: a zero weight multiplies its gradient by 0), the
one-layer contractive penalty by :func:`npcae.penalties.contractive_penalty`,
and the VAE's two terms on the model's own layers (:func:`vae_term_gradients`).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validation import as_float_array, check_positive_int, check_random_state
from .._version import __version__
from .._workspace import Workspace
from ..io import _from_jsonable, _jsonable, atomic_write
from ._names import canonical_path, is_canonical_name

__all__ = ["Fixture", "FixtureError", "make_fixture", "load_fixture", "save_fixture",
           "recompute", "compare_fixtures", "rebuild_model", "vae_term_gradients",
           "FORMAT", "FORMAT_VERSION", "torch_name"]

FORMAT = "npcae-reference-fixture"
FORMAT_VERSION = 1
_META_KEY = "__fixture__"
SUM_RTOL = 1e-11
"""How closely the per-term gradients must sum to the total (relative to its largest entry)."""

# the hyperparameter that weights each term in npcae's models (reconstruction: loss_weight)
_TERM_WEIGHT = {"reconstruction": "loss_weight", "contractive": "lam", "curvature": "gamma",
                "sparsity": "beta"}
_NOT_TERMS = ("total", "elbo", "mean_activation")


class FixtureError(ValueError):
    """A fixture file is missing, damaged, or does not describe a consistent objective."""


# --------------------------------------------------------------------------- the record
@dataclass
class Fixture:
    """One model's exact objective and gradients on given inputs, weights and noise (float64).

    Attributes
    ----------
    meta : dict
        The JSON part: ``name``, ``description``, ``model`` (``class``,
        ``hyperparameters``, ``n_features``), ``params`` (shape, role, PyTorch
        name and shape of each), ``terms`` (weight and definition of each),
        ``noise``, ``conventions``.
    X : ndarray (n, d)
    params, noise : dict of name -> ndarray
    loss : float
    terms : dict of term -> float
        Each term's contribution to ``loss`` (weight included); they sum to ``loss``.
    grads : dict of name -> ndarray
        ``d loss / d params[name]``, npcae's layout.
    term_grads : dict of term -> dict of name -> ndarray
        ``d terms[term] / d params[name]``; summed over terms they give ``grads``.
    jacobian : ndarray (m, k, d)
        The encoder's Jacobian at ``X[jacobian_rows]`` (the VAE's: of the posterior mean).
    jacobian_rows : ndarray of int (m,)
    """

    meta: dict
    X: np.ndarray
    params: dict
    noise: dict
    loss: float
    terms: dict
    grads: dict
    term_grads: dict
    jacobian: np.ndarray
    jacobian_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def name(self):
        return self.meta.get("name", "")

    @property
    def n_samples(self):
        return int(self.X.shape[0])

    @property
    def model_class(self):
        return self.meta["model"]["class"]

    @property
    def penalty_terms(self):
        """The terms other than the reconstruction, in order."""
        return [t for t in self.terms if t != "reconstruction"]

    def build_model(self):
        """The npcae model of this fixture (float64) with the fixture's parameters set."""
        return rebuild_model(self.meta, self.params)

    def save(self, path):
        """Write to ``path`` atomically; see :func:`save_fixture`."""
        return save_fixture(self, path)

    def __repr__(self):
        shapes = ", ".join(f"{k} {v.shape}" for k, v in self.params.items())
        return (f"Fixture({self.name!r}, {self.model_class}, X {self.X.shape}, loss "
                f"{self.loss!r}, terms {list(self.terms)}, params: {shapes})")


# --------------------------------------------------------------------------- the model
def rebuild_model(meta, params=None):
    """An npcae model from a fixture's metadata, float64, with ``params`` (copied) if given."""
    from ..models import MODELS
    spec = meta["model"]
    cls = MODELS.get(spec["class"])
    if cls is None:
        raise FixtureError(f"model class {spec['class']!r} is not one of npcae's models "
                           f"({sorted(MODELS)}).")
    hyper = _from_jsonable(spec["hyperparameters"], MODELS, "model.hyperparameters")
    model = cls(**hyper)
    model.set_params(dtype=np.float64, optimizer=None, verbose=0, random_state=0)
    model.n_features_in_ = int(spec["n_features"])
    if params is not None:
        model.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    return model


def _clone(model, **hyperparameters):
    """A copy of ``model`` (same parameters, copied) with some hyperparameters changed."""
    twin = type(model)(**model.get_params())
    twin.set_params(**hyperparameters)
    twin.params = {k: v.copy() for k, v in model.params.items()}
    twin.n_features_in_ = model.n_features_in_
    return twin


def _term_names(model, X, noise):
    return [t for t in model.loss_terms(X, **noise) if t not in _NOT_TERMS]


# ----------------------------------------------------------------- the VAE's two terms
def vae_term_gradients(model, X, eps, *, rec_weight=1.0, kl_weight=1.0, sigma_power=0.5):
    r"""The VAE objective ``rec_weight * rec + kl_weight * kl`` and its gradient, on the model's
    own layers, with ``sigma = exp(sigma_power * logvar)`` in the sample.

    ``sigma_power = 0.5`` is the VAE's ``sigma = exp(logvar / 2)``; ``1.0`` is the
    published mistake ``sigma = exp(logvar)`` (the KL term keeps the right
    variance ``exp(logvar)``). With ``S = exp(p LV)``, ``Z = MU + S * EPS``::

        G_MU = G_Z + kl_weight * MU / n
        G_LV = G_Z * EPS * p * S + kl_weight * (exp(LV) - 1) / (2 n)

    (``docs/derivations.md``, section "Reference fixtures and the mistakes
    gallery"). Returns ``(rec, kl, grads)``: the unweighted term values (``rec``
    at this ``sigma``) and the gradient of the weighted sum.
    """
    n = X.shape[0]
    grads = {k: np.zeros_like(v) for k, v in model.params.items()}
    trunk, mu_head, logvar_head, decoder, dense = model._network(X.dtype)
    for prefix, layer in dense.items():
        layer.bind(model.params, grads, prefix + ".")
    H = trunk.forward(X)
    MU = mu_head.forward(H).copy()
    LV = logvar_head.forward(H).copy()
    S = np.exp(sigma_power * LV)
    Z = MU + S * eps
    Y = decoder.forward(Z).copy()
    rec, G_Y = model._reconstruction(Y, X, Workspace())
    kl = float(np.sum(model._kl_per_sample(MU, LV, np.exp(0.5 * LV)))) / n
    G_Z = decoder.backward(G_Y * rec_weight).copy()
    G_MU = G_Z + kl_weight * MU / n
    G_LV = G_Z * eps * sigma_power * S + kl_weight * (np.exp(LV) - 1.0) / (2.0 * n)
    G_H = mu_head.backward(G_MU).copy()
    G_H += logvar_head.backward(G_LV)
    trunk.backward(G_H)
    return float(rec), kl, grads


# ------------------------------------------------------------------------ computing
def _compute(model, X, noise):
    """``(loss, terms, grads, term_grads)`` of ``model`` on ``X`` with ``noise`` (float64)."""
    from ..models import ContractiveAutoencoder, VariationalAutoencoder
    from ..penalties import contractive_penalty
    loss, grads = model.loss_and_grad(X, **noise)
    names = _term_names(model, X, noise)
    terms, term_grads = {}, {}
    if isinstance(model, VariationalAutoencoder):
        rec, _, g_rec = vae_term_gradients(model, X, noise["eps"], kl_weight=0.0)
        _, kl, g_kl = vae_term_gradients(model, X, noise["eps"], rec_weight=0.0)
        terms, term_grads = {"reconstruction": rec, "kl": kl}, {"reconstruction": g_rec,
                                                                "kl": g_kl}
    elif isinstance(model, ContractiveAutoencoder):
        rec, g_rec = _clone(model, lam=0.0).loss_and_grad(X)
        lam = float(model.lam)
        pen, g_pen = contractive_penalty(X, model.params["W"], model.params["b"], model._phi)
        g = {k: np.zeros_like(v) for k, v in grads.items()}
        g["W"], g["b"] = lam * g_pen["W"], lam * g_pen["b"]
        terms = {"reconstruction": rec, "contractive": lam * pen}
        term_grads = {"reconstruction": g_rec, "contractive": g}
    else:
        for term in names:
            twin = _clone(model, **{_TERM_WEIGHT[t]: 0.0 for t in names if t != term})
            accepted = twin._noise_shapes(X)            # a zero weight may read no noise
            value, g = twin.loss_and_grad(X, **{k: v for k, v in noise.items() if k in accepted})
            terms[term], term_grads[term] = value, g
    _check_sums(loss, grads, terms, term_grads)
    return float(loss), terms, grads, term_grads


def _check_sums(loss, grads, terms, term_grads):
    """The terms must add up to the total (a failure here is a bug in npcae, not in the user's)."""
    total = math.fsum(terms.values())
    if not abs(total - loss) <= SUM_RTOL * max(1.0, abs(loss)):
        raise RuntimeError(f"npcae's terms {terms} sum to {total!r}, not to the loss {loss!r}.")
    for name, g in grads.items():
        summed = sum(tg[name] for tg in term_grads.values())
        scale = max(1.0, float(np.max(np.abs(g), initial=0.0)))
        worst = float(np.max(np.abs(summed - g), initial=0.0))
        if worst > SUM_RTOL * scale:
            raise RuntimeError(f"npcae's per-term gradients of {name!r} sum to the total only "
                               f"within {worst:.3g}.")


def _draw_noise(model, X, rng):
    """Every noise array the objective reads, drawn from ``rng`` in a fixed order."""
    out = {}
    for name, shape in model._noise_shapes(X).items():
        if name == "corrupted":
            out[name] = model._corrupt(X, rng)
        elif name == "projections":
            out[name] = model._draw_projections(rng, X.shape[1], X.dtype)
        elif name == "perturbations":
            out[name] = model._draw_perturbations(rng, X)
        else:                                       # eps: standard normal
            out[name] = rng.standard_normal(shape)
    return out


# ------------------------------------------------------------------------ the metadata
_CONVENTIONS = {
    "dtype": "float64 everywhere",
    "weight_layout": ("npcae's W has shape (n_in, n_out) and a layer computes x @ W + b; "
                      "PyTorch's nn.Linear.weight is (n_out, n_in) = W.T and computes "
                      "x @ weight.T + bias; Keras' Dense kernel is (n_in, n_out), as npcae's"),
    "reduction": ("per-sample terms summed over features (and code units), averaged over "
                  "the n samples: L = (1/n) sum_n [loss(x_n, r_n) + penalties(x_n)]; the "
                  "sparse KL is a function of the batch-mean code (batch level)"),
    "gradients": ("grad/<name> is d loss / d param[<name>] in npcae's layout; "
                  "term_grad/<term>/<name> the same for one term; they sum to grad/<name>"),
    "terms": "term/<term> is the term's contribution to the loss, weight included",
    "jacobian": ("jacobian[m] = d code / d x (k, d) at X[jacobian_rows[m]] (VAE: d mu / d x; "
                 "denoising: at the clean input)"),
}


def torch_name(model_class, name):
    """PyTorch-style name of a parameter (``W`` -> ``encoder.weight``, ``*.W`` -> ``*.weight``).

    Layers count Linear layers only: ``encoder.0`` is the first Linear of the encoder,
    whatever the activation modules between them in an ``nn.Sequential``.
    """
    if model_class == "ContractiveAutoencoder":
        return {"W": "encoder.weight", "b": "encoder.bias", "c": "decoder.bias",
                "W_dec": "decoder.weight"}[name]
    stem, _, leaf = name.rpartition(".")
    return f"{stem}.{ {'W': 'weight', 'b': 'bias'}[leaf] }"


def _activation_name(act):
    from ..activations import get_activation
    return get_activation(act).name


def _describe_model(model):
    """``(activations, term definitions)`` of the model, in words and formulas."""
    cls = type(model).__name__
    if cls == "ContractiveAutoencoder":
        acts = {"encoder": _activation_name(model.activation),
                "decoder_output": _activation_name(model.output_activation)}
        arch = (f"h = {acts['encoder']}(x @ W + b); r = {acts['decoder_output']}(h @ W_dec + c) "
                f"with W_dec = " + ("W.T (tied)" if model.tied else "its own (k, d) matrix"))
        defs = {"reconstruction": f"(1/n) sum_n {model.loss}(x_n, r_n), summed over features",
                "contractive": (f"lam * (1/n) sum_n ||J_f(x_n)||_F^2, lam = {model.lam!r}, "
                                f"J_f = diag(phi'(a)) W.T")}
    elif cls == "VariationalAutoencoder":
        acts = {"trunk": _activation_name(model.activation), "heads": "identity",
                "decoder_hidden": _activation_name(model.activation),
                "decoder_output": "sigmoid (logits Y)" if model.decoder == "bernoulli"
                else "identity"}
        arch = ("H = trunk(x); MU = H @ mu.W + mu.b; LV = H @ logvar.W + logvar.b (log sigma^2);"
                " Z = MU + exp(LV / 2) * eps; Y = decoder(Z)")
        defs = {"reconstruction": ("(1/n) sum_n sum_i softplus(Y) - x Y (bernoulli, from the "
                                   "logits)" if model.decoder == "bernoulli" else
                                   "(1/n) sum_n 0.5 ||x - Y||^2 + 0.5 d log(2 pi)"),
                "kl": "(1/n) sum_n -0.5 sum_j (1 + LV - MU^2 - exp(LV))"}
    else:
        enc, dec = model._activations()
        acts = {"encoder": [a.name for a in enc], "decoder": [a.name for a in dec]}
        arch = ("encoder.i: H = act(H @ encoder.i.W + encoder.i.b); decoder.j likewise, "
                + ("tied (decoder.j uses encoder.{L-1-j}.W.T)" if model.tied else "untied"))
        scale = f"{model.loss_weight!r}" + (" / d" if model.reduction == "mean" else "")
        defs = {"reconstruction": f"{scale} * (1/n) sum_n {model.loss}(x_n, r_n) summed over "
                                  f"features"}
        if cls == "SparseAutoencoder":
            defs["sparsity"] = (f"beta * sum_j KL(rho || rho_hat_j), rho_hat = batch mean of "
                                f"the code, beta = {model.beta!r}, rho = {model.rho!r}"
                                if model.sparsity == "kl" else
                                f"beta * (1/n) sum_n sum_j |h_nj|, beta = {model.beta!r}")
        if cls == "DeepContractiveAutoencoder":
            defs["contractive"] = f"lam * (1/n) sum_n ||J(x_n)||_F^2, lam = {model.lam!r}"
            defs["curvature"] = (f"gamma * (1/n) sum_n (1/c) sum_c ||J(x_n) - J(x_n + "
                                 f"perturbations[c, n])||_F^2, gamma = {model.gamma!r}")
        if cls == "DenoisingAutoencoder":
            arch += "; the encoder reads noise/corrupted, the loss compares with the clean X"
    return acts, arch, defs


def _metadata(model, name, description, X, terms, noise):
    acts, arch, defs = _describe_model(model)
    hyper = dict(model.get_params())
    hyper.update(dtype=np.float64, optimizer=None, verbose=0, random_state=0)
    cls = type(model).__name__
    params = {}
    for key, value in model.params.items():
        tname = torch_name(cls, key)
        params[key] = {"shape": list(value.shape), "torch_name": tname,
                       "torch_shape": list(value.shape[::-1])}
    weights = {}
    for term in terms:
        hp = "lam" if (cls, term) == ("ContractiveAutoencoder", "contractive") else \
            _TERM_WEIGHT.get(term)
        weights[term] = {"definition": defs.get(term, ""), "hyperparameter": hp,
                         "weight": float(getattr(model, hp)) if hp and hasattr(model, hp)
                         else 1.0}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "npcae_version": __version__,
            "name": name, "description": description,
            "model": {"class": cls, "hyperparameters": _jsonable(hyper),
                      "n_features": int(X.shape[1])},
            "architecture": arch, "activations": acts, "params": params, "terms": weights,
            "noise": {k: list(v.shape) for k, v in noise.items()},
            "n_samples": int(X.shape[0]), "conventions": dict(_CONVENTIONS)}


# ------------------------------------------------------------------------ building
def make_fixture(model, X=None, *, n_features=None, n_samples=8, n_jacobian=3,
                 random_state=0, name="", description=""):
    """Build the float64 fixture of ``model``'s training objective.

    Parameters
    ----------
    model : npcae model
        Its class and hyperparameters define the objective (a copy in float64 is
        used; ``model`` is not changed). Its parameters are used when it has them
        for this feature count; otherwise they are drawn from ``random_state``
        (weights by the model's initialiser, biases from N(0, 0.1^2) so that they
        matter).
    X : array (n, d), optional
        Inputs; default ``n_samples`` rows uniform in [0, 1) with ``n_features`` columns.
    n_features, n_samples : int
        Shape of the generated ``X`` (``n_features`` defaults to the model's
        ``n_features_in_``).
    n_jacobian : int
        Rows at which the encoder Jacobian is stored (the first ones).
    random_state : int, Generator or None
        Draws, in this order: ``X`` (if not given), the parameters (if needed), the noise.
    name, description : str
        Stored in the metadata.

    Returns
    -------
    Fixture
    """
    rng = check_random_state(random_state)
    work = type(model)(**model.get_params())
    work.set_params(dtype=np.float64, optimizer=None, verbose=0, random_state=0)
    work._check_hyperparameters()
    if X is None:
        d = n_features if n_features is not None else getattr(model, "n_features_in_", None)
        if d is None:
            raise ValueError("make_fixture needs X, n_features, or a model with parameters "
                             "(n_features_in_) to know the input width.")
        X = rng.random((check_positive_int(n_samples, "n_samples"),
                        check_positive_int(d, "n_features")))
    X = as_float_array(X, "X", ndim=2, dtype=np.float64, convert_numeric=True)
    d = X.shape[1]
    shapes = {k: s for k, (s, _) in work._param_shapes(d).items()}
    given = getattr(model, "params", None) or {}
    if given and {k: np.shape(v) for k, v in given.items()} == shapes:
        work.params = {k: np.array(v, dtype=np.float64) for k, v in given.items()}
        work.n_features_in_ = d
    else:
        work.initialize(d, random_state=rng)
        for key, value in work.params.items():
            if value.ndim == 1:
                value[...] = 0.1 * rng.standard_normal(value.shape)
    noise = _draw_noise(work, X, rng)
    loss, terms, grads, term_grads = _compute(work, X, noise)
    rows = np.arange(min(check_positive_int(n_jacobian, "n_jacobian"), X.shape[0]),
                     dtype=np.int64)
    jac = work.jacobian(X[rows])
    meta = _metadata(work, name, description, X, terms, noise)
    return Fixture(meta=meta, X=X, params={k: v.copy() for k, v in work.params.items()},
                   noise=noise, loss=loss, terms=terms, grads=grads, term_grads=term_grads,
                   jacobian=jac, jacobian_rows=rows)


def recompute(fixture):
    """The fixture recomputed by the current npcae from its own inputs, weights and noise."""
    model = fixture.build_model()
    loss, terms, grads, term_grads = _compute(model, fixture.X, dict(fixture.noise))
    jac = model.jacobian(fixture.X[fixture.jacobian_rows])
    return Fixture(meta=fixture.meta, X=fixture.X, params=fixture.params, noise=fixture.noise,
                   loss=loss, terms=terms, grads=grads, term_grads=term_grads, jacobian=jac,
                   jacobian_rows=fixture.jacobian_rows)


def compare_fixtures(a, b):
    """Largest difference between two fixtures' numbers, relative to each array's largest entry.

    Returns ``(worst, where)``; ``where`` names the array. Structure must match.
    """
    arrays_a, arrays_b = _to_arrays(a), _to_arrays(b)
    if set(arrays_a) != set(arrays_b):
        return math.inf, f"entries differ: {sorted(set(arrays_a) ^ set(arrays_b))}"
    worst, where = 0.0, ""
    for key, va in arrays_a.items():
        if key == _META_KEY:
            continue
        vb = arrays_b[key]
        if va.shape != vb.shape:
            return math.inf, f"{key}: shapes {va.shape} and {vb.shape}"
        scale = max(float(np.max(np.abs(va), initial=0.0)), 1e-300)
        err = float(np.max(np.abs(va - vb), initial=0.0)) / scale if va.size else 0.0
        if err > worst:
            worst, where = err, key
    return worst, where


# ------------------------------------------------------------------------ saving
def _to_arrays(fixture):
    arrays = {"X": np.asarray(fixture.X, dtype=np.float64)}
    arrays.update({f"param/{k}": np.asarray(v, np.float64) for k, v in fixture.params.items()})
    arrays.update({f"noise/{k}": np.asarray(v, np.float64) for k, v in fixture.noise.items()})
    arrays["loss"] = np.asarray(fixture.loss, dtype=np.float64)
    arrays.update({f"term/{t}": np.asarray(v, np.float64) for t, v in fixture.terms.items()})
    arrays.update({f"grad/{k}": np.asarray(v, np.float64) for k, v in fixture.grads.items()})
    for term, grads in fixture.term_grads.items():
        arrays.update({f"term_grad/{term}/{k}": np.asarray(v, np.float64)
                       for k, v in grads.items()})
    arrays["jacobian"] = np.asarray(fixture.jacobian, dtype=np.float64)
    arrays["jacobian_rows"] = np.asarray(fixture.jacobian_rows, dtype=np.int64)
    arrays[_META_KEY] = np.array(json.dumps(fixture.meta))
    return arrays


def save_fixture(fixture, path):
    """Write ``fixture`` to ``path`` (compressed ``.npz``, no pickle), all or nothing.

    Floats are stored as float64 exactly: :func:`load_fixture` gives back equal arrays.
    """
    arrays = _to_arrays(fixture)
    return atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


# ------------------------------------------------------------------------ loading
def _fail(path, message):
    raise FixtureError(f"{path}: {message}")


def _read(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no fixture file at {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        _fail(path, f"not a readable .npz archive ({type(exc).__name__}: {exc}); write it "
                    f"with `npcae reference` or npcae.reference.save_fixture.")
    if not isinstance(data, np.lib.npyio.NpzFile):
        _fail(path, "is a single .npy array, not a fixture (.npz archive).")
    arrays = {}
    with data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except Exception as exc:
                _fail(path, f"entry {key!r} cannot be read ({exc}); the file is damaged or "
                            f"holds object arrays, which fixtures never do.")
    return arrays


def load_fixture(path):
    """Read and validate a fixture written by :func:`save_fixture` (``allow_pickle=False``).

    ``path`` may also be the name of a canonical fixture (see
    :func:`npcae.reference.canonical_names`).

    Raises
    ------
    FileNotFoundError
        No such file.
    FixtureError
        The file is not a fixture, or an entry is missing, of the wrong shape or
        dtype, non-finite, or inconsistent with the metadata; the message names it.
    """
    if isinstance(path, str) and is_canonical_name(path) and not Path(path).exists():
        path = canonical_path(path)
    arrays = _read(path)
    if _META_KEY not in arrays:
        _fail(path, f"an .npz archive, but not an npcae fixture (no {_META_KEY!r} entry); "
                    f"write fixtures with `npcae reference`.")
    entry = arrays.pop(_META_KEY)
    try:
        meta = json.loads(str(entry[()]))
    except (ValueError, TypeError, IndexError) as exc:
        _fail(path, f"the {_META_KEY!r} metadata is not JSON text ({exc}).")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        _fail(path, f"the metadata does not say format {FORMAT!r}; not an npcae fixture.")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        _fail(path, f"format_version {version!r}: this npcae reads version {FORMAT_VERSION}; "
                    f"upgrade npcae to read newer fixtures.")
    for key in ("model", "params", "terms", "noise"):
        if not isinstance(meta.get(key), dict):
            _fail(path, f"metadata field {key!r} is missing or not a JSON object.")
    try:
        model = rebuild_model(meta)
        model._check_hyperparameters()
    except Exception as exc:
        _fail(path, f"the model in the metadata cannot be rebuilt ({type(exc).__name__}: "
                    f"{exc}).")

    def take(key, shape=None, kind="f"):
        if key not in arrays:
            _fail(path, f"entry {key!r} is missing.")
        value = arrays.pop(key)
        if value.dtype.kind != kind or (kind == "f" and value.dtype != np.float64):
            _fail(path, f"entry {key!r} has dtype {value.dtype}; fixtures hold "
                        f"{'float64' if kind == 'f' else 'int64'}.")
        if shape is not None and value.shape != tuple(shape):
            _fail(path, f"entry {key!r} has shape {value.shape}; expected {tuple(shape)}.")
        if kind == "f" and not np.all(np.isfinite(value)):
            _fail(path, f"entry {key!r} holds NaN or infinite values.")
        return value

    X = take("X")
    if X.ndim != 2 or X.shape[1] != meta["model"]["n_features"]:
        _fail(path, f"X has shape {X.shape}; the model has {meta['model']['n_features']} "
                    f"features.")
    shapes = {k: s for k, (s, _) in model._param_shapes(X.shape[1]).items()}
    if list(shapes) != list(meta["params"]):
        _fail(path, f"the metadata lists parameters {list(meta['params'])}; the model has "
                    f"{list(shapes)}.")
    params = {k: take(f"param/{k}", s) for k, s in shapes.items()}
    noise_shapes = model._noise_shapes(X)
    if set(noise_shapes) != set(meta["noise"]):
        _fail(path, f"the metadata lists noise {sorted(meta['noise'])}; the model reads "
                    f"{sorted(noise_shapes)}.")
    noise = {k: take(f"noise/{k}", s) for k, s in noise_shapes.items()}
    loss = float(take("loss", ()))
    terms = {t: float(take(f"term/{t}", ())) for t in meta["terms"]}
    grads = {k: take(f"grad/{k}", s) for k, s in shapes.items()}
    term_grads = {t: {k: take(f"term_grad/{t}/{k}", s) for k, s in shapes.items()}
                  for t in meta["terms"]}
    jacobian = take("jacobian")
    rows = take("jacobian_rows", kind="i")
    if rows.ndim != 1 or np.any(rows < 0) or np.any(rows >= X.shape[0]):
        _fail(path, f"jacobian_rows must be row indices of X; got {rows!r}.")
    if jacobian.shape != (rows.shape[0], model._n_codes(), X.shape[1]):
        _fail(path, f"jacobian has shape {jacobian.shape}; expected "
                    f"{(rows.shape[0], model._n_codes(), X.shape[1])}.")
    if arrays:
        _fail(path, f"unexpected entries {sorted(arrays)}.")
    try:
        _check_sums(loss, grads, terms, term_grads)
    except RuntimeError as exc:
        _fail(path, f"inconsistent numbers: {exc}")
    return Fixture(meta=meta, X=X, params=params, noise=noise, loss=loss, terms=terms,
                   grads=grads, term_grads=term_grads, jacobian=jacobian, jacobian_rows=rows)
