"""The IDX file format, in which MNIST and Fashion-MNIST are distributed.

A header ``00 00 <type code> <ndim>``, ``ndim`` big-endian uint32 dimensions, then the
values in row-major order. :func:`read_idx` parses any IDX file, gzipped or not.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx"]

# type code (third magic byte) -> big-endian dtype of the stored values
_IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_TYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32",
                   0x0D: "float32", 0x0E: "float64"}


def _read_bytes(path):
    """Whole file contents, transparently gunzipped when it starts with the gzip magic."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except EOFError as exc:
            raise ValueError(f"{path}: the gzip stream is truncated ({exc}); the file is "
                             f"incomplete, delete it and fetch it again.") from None
        except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            raise ValueError(f"{path}: corrupt gzip data ({exc}); delete the file and fetch "
                             f"it again.") from None
    return data


def _parse_idx(data, path, copy=True):
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} byte(s) is too short to be an IDX file "
                         f"(the header alone is at least 8 bytes).")
    b0, b1, code, ndim = data[0], data[1], data[2], data[3]
    if b0 != 0 or b1 != 0:
        hint = ""
        if data[:1] in (b"<", b"{") or data[:5].lower() in (b"<!doc", b"<html"):
            hint = (" It looks like text/HTML, e.g. an error page saved by a failed "
                    "download.")
        raise ValueError(f"{path} is not an IDX file: its magic number starts with bytes "
                         f"{data[:4].hex(' ')}, but an IDX file starts with 00 00 "
                         f"<type code> <number of dimensions>.{hint}")
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02X} ({n})" for c, n in _IDX_TYPE_NAMES.items())
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} in the magic number "
                         f"(valid codes: {known}).")
    if ndim == 0:
        raise ValueError(f"{path}: the IDX header declares 0 dimensions; at least 1 is "
                         f"required.")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimension(s) need "
                         f"{header} header bytes but the file holds only {len(data)}.")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    count = 1
    for d in dims:
        count *= d
    expected = count * dtype.itemsize
    have = len(data) - header
    if have != expected:
        what = "truncated" if have < expected else "has trailing data"
        raise ValueError(f"{path}: size mismatch, the file is {what}: the header declares "
                         f"shape {dims} of {_IDX_TYPE_NAMES[code]} = {expected} data bytes, "
                         f"but {have} follow the {header}-byte header.")
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    if dtype.byteorder == ">":
        arr = arr.astype(dtype.newbyteorder("="))  # also copies
    elif copy:
        arr = arr.copy()
    return arr


def read_idx(path):
    """Read an IDX file (the MNIST distribution format) into an array.

    The header is ``00 00 <type code> <ndim>`` followed by ``ndim`` big-endian
    uint32 dimensions, then the values in row-major (C) order. Type codes:
    0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    (multi-byte values are big-endian on disk). Gzipped files are detected by their
    content, whatever their name.

    Parameters
    ----------
    path : str or path-like
        The file, raw or gzip-compressed.

    Returns
    -------
    ndarray
        Writable array of shape ``dims`` with the native-byte-order dtype of the type
        code, e.g. ``(60000, 28, 28)`` uint8 for MNIST training images and ``(60000,)``
        uint8 for its labels.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not an IDX file (wrong magic number or type code), a truncated header, or a data
        size that does not match the header's shape (truncated file or trailing data);
        also a truncated or corrupt gzip stream. The message names the file and the
        numbers involved.
    """
    path = Path(path)
    return _parse_idx(_read_bytes(path), path)
