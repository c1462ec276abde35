"""npcae as the gradient-correctness reference for other implementations.

* Test vectors: :func:`make_fixture` builds a self-describing float64 fixture of a
  model's objective (inputs, weights, noise, loss and terms, the gradient of every
  parameter in total and per term, the encoder Jacobian, and the conventions);
  :func:`save_fixture` / :func:`load_fixture` write and read it (no pickle). A few
  canonical fixtures ship with the package (:func:`canonical_names`,
  :func:`canonical_fixture`).
* A verifier that names the bug: :func:`verify` compares another implementation's
  loss and gradients with a fixture and, when they disagree, recomputes each known
  published mistake on the fixture's own inputs and says which one theirs matches
  (:data:`MISTAKES` lists them).

Command line: ``npcae reference --model cae ... --out FILE.npz`` and
``npcae verify THEIRS.npz --against FIXTURE.npz``. How to use it from PyTorch or
NumPy: ``docs/verify-your-implementation.md``.
"""
from ._canonical import canonical_fixture, write_canonical_fixtures
from ._fixtures import (Fixture, FixtureError, compare_fixtures, load_fixture, make_fixture,
                        recompute, save_fixture)
from ._mistakes import MISTAKES, mistake_gradients
from ._names import CANONICAL_DESCRIPTIONS, canonical_names, canonical_path
from ._verify import ParamCheck, VerifyResult, read_theirs, verify

__all__ = ["Fixture", "FixtureError", "make_fixture", "save_fixture", "load_fixture",
           "recompute", "compare_fixtures", "canonical_names", "canonical_fixture",
           "canonical_path", "write_canonical_fixtures", "CANONICAL_DESCRIPTIONS",
           "MISTAKES", "mistake_gradients", "verify", "read_theirs", "VerifyResult",
           "ParamCheck"]
