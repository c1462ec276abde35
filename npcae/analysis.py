"""What a trained model learned: one place to import every analysis from.

* Geometry of the encoder (:mod:`npcae._spectra`): ``jacobian_spectrum``,
  ``tangent_directions``, ``contraction_ratio``, ``local_pca_tangents``,
  ``subspace_angles``, ``summarize_spectrum``.
* The denoising-contractive link and anomaly scores (:mod:`npcae._scores`):
  ``dae_cae_gap``, ``reconstruction_derivatives``, ``format_gap_table``,
  ``anomaly_scores``, ``roc_auc``, ``roc_curve``, ``SCORE_KINDS``.
* Features for classifiers (:mod:`npcae._probe`): ``linear_probe`` (multinomial
  logistic regression, L2, full batch, the library's own loss and Adam),
  ``probe_loss_and_grad``, ``ProbeResult``, ``PCA`` (via SVD).
* Learned against true tangents (:mod:`npcae._tangents`): ``tangent_alignment``,
  ``jacobian_tangent_alignment``, ``reconstruction_tangent_directions``,
  ``random_directions``, ``compare_tangent_estimates``, ``summarize_angles``; the true
  tangents of the built-in digits come from ``npcae.datasets.digit_tangents``.

Each function's docstring states its math and shapes; the modules above hold the
code (this one only gathers the public names, so the parts can import each other
without a cycle).
"""
from ._probe import PCA, ProbeResult, linear_probe, probe_loss_and_grad
from ._tangents import (compare_tangent_estimates, jacobian_tangent_alignment,
                        random_directions, reconstruction_tangent_directions,
                        summarize_angles, tangent_alignment)
from ._scores import (SCORE_KINDS, anomaly_scores, dae_cae_gap, format_gap_table,
                      reconstruction_derivatives, roc_auc, roc_curve)
from ._spectra import _nearest_neighbours  # noqa: F401  (used by the tests)
from ._spectra import (contraction_ratio, jacobian_spectrum, local_pca_tangents,
                       subspace_angles, summarize_spectrum, tangent_directions)

__all__ = [
    "jacobian_spectrum", "tangent_directions", "contraction_ratio", "local_pca_tangents",
    "subspace_angles", "summarize_spectrum",
    "dae_cae_gap", "reconstruction_derivatives", "format_gap_table", "anomaly_scores",
    "roc_auc", "roc_curve", "SCORE_KINDS",
    "linear_probe", "probe_loss_and_grad", "ProbeResult", "PCA",
    "tangent_alignment", "jacobian_tangent_alignment", "reconstruction_tangent_directions",
    "random_directions", "compare_tangent_estimates", "summarize_angles",
]
