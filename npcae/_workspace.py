"""Reusable scratch arrays for allocation-free hot loops."""
from __future__ import annotations

import numpy as np

__all__ = ["Workspace"]


class Workspace:
    """Reusable scratch arrays, keyed by name, shape and dtype.

    The training loop keeps one Workspace for the whole run so the hot path
    allocates nothing large per step (freed large temporaries would otherwise
    be returned to the OS and faulted back in every step).
    """

    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype, fill=None):
        """The array called ``name`` with this shape and dtype, created on first use
        (uninitialised, or filled with ``fill``). ``np.float32`` and
        ``np.dtype("float32")`` name the same array."""
        key = (name, tuple(shape), np.dtype(dtype))
        arr = self._arrays.get(key)
        if arr is None:
            arr = self._arrays[key] = np.empty(shape, dtype=dtype)
            if fill is not None:
                arr.fill(fill)
        return arr
