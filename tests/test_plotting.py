"""Tests for npcae.plotting: every figure is written as a non-empty PNG, atomically."""
import os

import numpy as np
import pytest
from conftest import BARE_PACKAGE_PRELUDE, run_python

matplotlib = pytest.importorskip("matplotlib")

from npcae import analysis, plotting  # noqa: E402  (after importorskip)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


class FakeCAE:
    """Sigmoid encoder / tied sigmoid decoder, enough for the figures."""

    def __init__(self, d, k, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {"W": rng.normal(scale=0.1, size=(d, k)), "b": np.zeros(k),
                       "c": np.zeros(d)}
        self.n_features_in_ = d

    def transform(self, X):
        return _sigmoid(X @ self.params["W"] + self.params["b"])

    def reconstruct(self, X):
        return _sigmoid(self.transform(X) @ self.params["W"].T + self.params["c"])

    def jacobian(self, X):
        h = self.transform(X)
        return (h * (1 - h))[:, :, None] * self.params["W"].T[None]


def _fake_images(n, shape=(12, 12), seed=0):
    """Bright blobs at random positions, flattened, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy = rng.uniform(3, shape[0] - 3, size=n)
    cx = rng.uniform(3, shape[1] - 3, size=n)
    img = np.exp(-((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2)
                 / 4.0)
    return img.reshape(n, -1)


SHAPE = (12, 12)


@pytest.fixture(scope="module")
def setup():
    X = _fake_images(12, SHAPE)
    model = FakeCAE(X.shape[1], 9)
    return X, model


def _check_png(path):
    assert os.path.isfile(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    assert head == PNG_MAGIC and os.path.getsize(path) > 1000
    leftovers = [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    assert leftovers == []


def _all_figures(X, model, tmp_path):
    T, s = analysis.tangent_directions(model, X[:4], n_directions=3)
    svals = analysis.jacobian_spectrum(model, X)
    radii = np.logspace(-2, 1, 6)
    return {
        "recon": lambda p: plotting.plot_reconstructions(X, model.reconstruct(X), SHAPE, n=6,
                                                         path=p),
        "filters": lambda p: plotting.plot_filters(model.params["W"], SHAPE, n=9, path=p),
        "spectrum": lambda p: plotting.plot_spectrum({"a": svals, "b": 3 * svals}, path=p),
        "spectrum_single": lambda p: plotting.plot_spectrum(svals, path=p),
        "tangents": lambda p: plotting.plot_tangents(X[:4], T, s, SHAPE, n_points=3, path=p),
        "history": lambda p: plotting.plot_history(
            {"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.5], "contractive": [0.5, 0.2, 0.1],
             "val_loss": [3.2, 2.4, 1.9], "epoch_time_s": [0.1, 0.1, 0.1],
             "samples_per_s": [9e3, 9e3, 9e3], "best_epoch": 3}, path=p),
        "contraction": lambda p: plotting.plot_contraction_curves(
            radii, {"fake": analysis.contraction_ratio(model, X, radii, n_directions=2)},
            path=p),
        "tangent_comparison": lambda p: plotting.plot_tangent_comparison(
            X[:4], {"model": T, "local PCA": analysis.local_pca_tangents(X, X[:4], 5, 2)},
            SHAPE, n_points=3, n_directions=2, path=p),
        "code_scatter": lambda p: plotting.plot_code_scatter(
            model.transform(X)[:, :2], np.arange(len(X)) % 3, path=p, max_points=8),
    }


@pytest.mark.parametrize("name", ["recon", "filters", "spectrum", "spectrum_single",
                                  "tangents", "history", "contraction", "tangent_comparison",
                                  "code_scatter"])
def test_each_plot_writes_png_and_closes(setup, tmp_path, name):
    import matplotlib.pyplot as plt
    X, model = setup
    before = set(plt.get_fignums())
    path = tmp_path / "sub" / f"{name}.png"        # parent directory is created
    fig = _all_figures(X, model, tmp_path)[name](str(path))
    assert isinstance(fig, matplotlib.figure.Figure)
    _check_png(str(path))
    assert set(plt.get_fignums()) == before      # closed after saving


def test_without_path_returns_open_figure(setup):
    import matplotlib.pyplot as plt
    X, model = setup
    fig = plotting.plot_filters(model.params["W"], SHAPE, n=4)
    try:
        assert fig.number in plt.get_fignums()
    finally:
        plt.close(fig)


def test_failed_save_leaves_no_partial_file(setup, tmp_path, monkeypatch):
    X, model = setup
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, *args, **kwargs):
        fname.write(PNG_MAGIC + b"partial")      # some bytes reach the temp file
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    target = tmp_path / "recon.png"
    with pytest.raises(RuntimeError, match="disk on fire"):
        plotting.plot_reconstructions(X, X, SHAPE, path=target)
    assert list(tmp_path.iterdir()) == []

    # an existing file at the target survives a failed overwrite untouched
    target.write_bytes(b"old figure")
    with pytest.raises(RuntimeError):
        plotting.plot_filters(model.params["W"], SHAPE, path=target)
    assert target.read_bytes() == b"old figure"
    assert [p.name for p in tmp_path.iterdir()] == ["recon.png"]


def test_saved_file_permissions_follow_umask(setup, tmp_path):
    X, model = setup
    old = os.umask(0o022)
    try:
        p = tmp_path / "f.png"
        plotting.plot_filters(model.params["W"], SHAPE, n=4, path=p)
    finally:
        os.umask(old)
    assert (os.stat(p).st_mode & 0o777) == 0o644


def test_history_layouts(tmp_path):
    nested = {"train": {"loss": [2.0, 1.0], "recon": [1.5, 0.8]},
              "val": {"loss": [2.5, 1.4]}}
    fig = plotting.plot_history(nested, path=tmp_path / "h1.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["loss", "recon"]
    per_epoch = [{"loss": 2.0, "val_loss": 2.2}, {"loss": 1.0, "val_loss": None}]
    fig = plotting.plot_history(per_epoch, path=tmp_path / "h2.png")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["loss"]
    assert len(fig.axes[0].get_lines()) == 2
    trainer_style = {"total": [2.0, 1.0], "reconstruction": [1.8, 0.9],
                     "samples_per_s": [1e4, 1e4], "epoch_time_s": [0.2, 0.2],
                     "val_total": [2.1, 1.2], "best_epoch": 2}
    fig = plotting.plot_history(trainer_style, path=tmp_path / "h3.png")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["total",
                                                                       "reconstruction"]
    with pytest.raises(ValueError, match="no numeric"):
        plotting.plot_history({"epoch": [1, 2]})


def test_input_errors(setup):
    X, model = setup
    with pytest.raises(ValueError, match=r"image_shape=\(28, 28\)"):
        plotting.plot_reconstructions(X, X)                # 144 features, default 28x28
    with pytest.raises(ValueError, match="Try image_shape=\\(12, 12\\)"):
        plotting.plot_reconstructions(X, X, image_shape=(10, 10))
    with pytest.raises(ValueError, match="same shape"):
        plotting.plot_reconstructions(X, X[:3], SHAPE)
    with pytest.raises(ValueError, match="pass W.T"):
        plotting.plot_filters(np.zeros((5, 144)), SHAPE)
    with pytest.raises(ValueError, match="tangents must have shape"):
        plotting.plot_tangents(X, np.zeros((len(X), 2, 10)), image_shape=SHAPE)
    with pytest.raises(ValueError, match="radii"):
        plotting.plot_contraction_curves([1.0, 2.0], {"a": [1.0]})
    with pytest.raises(ValueError, match="two columns"):
        plotting.plot_code_scatter(np.zeros((4, 3)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        plotting.plot_code_scatter(np.zeros((4, 2)), [0, 1, 0])
    with pytest.raises(ValueError, match=r"tangents\['b'\] must have shape"):
        plotting.plot_tangent_comparison(X, {"b": np.zeros((len(X), 2, 10))},
                                         image_shape=SHAPE)


def test_plotting_import_is_lazy_and_missing_matplotlib_message():
    code = (
        BARE_PACKAGE_PRELUDE
        + "sys.modules['matplotlib'] = None  # simulate matplotlib not installed\n"
        "import numpy as np\n"
        "p = importlib.import_module('npcae.plotting')\n"
        "try:\n"
        "    p.plot_filters(np.zeros((4, 2)), image_shape=(2, 2))\n"
        "except ImportError as e:\n"
        "    assert 'pip install npcae[demo]' in str(e) and 'pip install matplotlib' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    res = run_python(code)
    assert res.returncode == 0, res.stderr


def test_agg_selected_when_no_backend_set(tmp_path):
    code = (
        BARE_PACKAGE_PRELUDE
        + "import numpy as np, matplotlib\n"
        "p = importlib.import_module('npcae.plotting')\n"
        f"p.plot_filters(np.ones((4, 2)), image_shape=(2, 2), path={str(tmp_path / 'a.png')!r})\n"
        "assert matplotlib.get_backend().lower() == 'agg', matplotlib.get_backend()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["MPLCONFIGDIR"] = str(tmp_path)   # no user matplotlibrc
    res = run_python(code, env=env)
    assert res.returncode == 0, res.stderr


def test_contraction_reference_line_only_when_near_one():
    import matplotlib.pyplot as plt
    r = [0.1, 1.0, 10.0]
    near = plotting.plot_contraction_curves(r, {"a": [0.9, 1.2, 0.8]})
    far = plotting.plot_contraction_curves(r, [0.05, 0.04, 0.03])
    try:
        assert any(list(l.get_ydata()) == [1.0, 1.0] for l in near.axes[0].get_lines())
        assert not any(list(l.get_ydata()) == [1.0, 1.0] for l in far.axes[0].get_lines())
        assert "all ratios < 1" in far.axes[0].get_title()
    finally:
        plt.close(near)
        plt.close(far)
