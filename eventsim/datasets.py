"""MNIST loading (checksummed IDX files) and latency coding of images as spike times.

The four gzip IDX files of MNIST ship with the repository in ``data/mnist/``.
:func:`mnist` finds them, checks the SHA-256 of each file's *decompressed*
content, parses the IDX headers and returns intensities in [0, 1].
:func:`latency_encode` turns intensities into one spike time per pixel.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validate import check_bool, check_positive, is_real

__all__ = ["DataError", "MissingDataError", "MNIST", "mnist", "latency_encode",
           "MNIST_FILES", "ENV_VAR", "clear_cache"]

#: Environment variable naming a directory that holds the MNIST files
#: (directly, or in a ``mnist/`` subdirectory).
ENV_VAR = "EVENTSIM_DATA"

#: File name -> SHA-256 of its decompressed (raw IDX) content.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz":
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz":
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz":
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz":
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# IDX magic numbers: two zero bytes, the element type (0x08 = unsigned byte),
# and the number of dimensions.
_MAGIC_IMAGES = 0x00000803
_MAGIC_LABELS = 0x00000801

_REPO_DATA = Path(__file__).resolve().parents[1] / "data" / "mnist"

_FIX = (f"Fix: give the directory holding the four MNIST .gz files (directly or under "
        f"mnist/) as --data-dir of the example scripts or mnist(data_dir=...), or set "
        f"{ENV_VAR} to it, or restore data/mnist/ from a clean clone of the repository "
        f"(e.g. `git checkout -- data/mnist`).")


class DataError(ValueError):
    """A data file is corrupt: wrong checksum, not gzip, or a malformed IDX header."""


class MissingDataError(DataError, FileNotFoundError):
    """A required data file is not where it was looked for."""


@dataclass(frozen=True)
class MNIST:
    """The MNIST data set, pixels scaled to [0, 1].

    Attributes
    ----------
    train_images : float64 array (60000, 784)
        Pixel intensity x = raw / 255 in [0, 1] (dimensionless), rows are
        images flattened row-major from 28 x 28.
    train_labels : int64 array (60000,)
        Digit class in 0..9.
    test_images : float64 array (10000, 784)
    test_labels : int64 array (10000,)
    data_dir : Path
        The directory the files were read from.

    The arrays are shared by every call with the same directory (they are
    cached) and are therefore read-only; take a ``.copy()`` to modify them.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    data_dir: Path

    def __repr__(self) -> str:
        return (f"MNIST(train={self.train_images.shape[0]}, test={self.test_images.shape[0]}, "
                f"data_dir={str(self.data_dir)!r})")


def _pick_dir(base: Path) -> Path:
    """``base`` if it holds any MNIST file, else ``base/mnist`` if that does, else ``base``."""
    for cand in (base, base / "mnist"):
        if any((cand / name).is_file() for name in MNIST_FILES):
            return cand
    return base


def resolve_data_dir(data_dir=None) -> tuple[Path, str]:
    """Directory to read MNIST from, and a phrase saying how it was chosen.

    Order: the explicit ``data_dir``; else ``$EVENTSIM_DATA``; else the
    ``data/mnist/`` of the repository this package was loaded from, or of the
    current directory (where a non-editable install is run from the repository
    root). A given path is used without falling back to the next, so a
    misconfigured path is reported rather than hidden.
    Both the given directory and its ``mnist/`` subdirectory are searched.
    """
    if data_dir is not None:
        return _pick_dir(Path(data_dir).expanduser()).resolve(), "the data_dir argument"
    env = os.environ.get(ENV_VAR)
    if env:
        return _pick_dir(Path(env).expanduser()).resolve(), f"${ENV_VAR}={env!r}"
    # the source checkout this package runs from, else (a non-editable install
    # run from the repository root) ./data/mnist
    defaults = [_REPO_DATA, (Path.cwd() / "data" / "mnist").resolve()]
    found = next((d for d in defaults if any((d / n).is_file() for n in MNIST_FILES)),
                 defaults[0])
    tried = " and ".join(dict.fromkeys(str(d) for d in defaults))
    return found, f"the defaults ({tried}; no data_dir argument, no ${ENV_VAR})"


def _read_idx(path: Path, magic: int, verify: bool, how: str) -> np.ndarray:
    """Decompress, checksum and parse one IDX file; returns a uint8 array of its dims."""
    name = path.name
    if not path.is_file():
        raise MissingDataError(
            f"MNIST file {name} not found in {path.parent} (directory chosen from {how}; "
            f"{name} and the other MNIST files are expected there or in its mnist/ "
            f"subdirectory). {_FIX}")
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"MNIST file {path} is not a readable gzip file ({exc}). {_FIX}") from None
    if verify:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != MNIST_FILES[name]:
            raise DataError(
                f"MNIST file {path} is corrupt: SHA-256 of its decompressed content is "
                f"{digest}, expected {MNIST_FILES[name]}. {_FIX}")
    if len(raw) < 4 or int.from_bytes(raw[:4], "big") != magic:
        got = raw[:4].hex() if len(raw) >= 4 else f"only {len(raw)} bytes"
        raise DataError(f"MNIST file {path}: bad IDX magic number {got}, expected "
                        f"{magic:08x}. {_FIX}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"MNIST file {path}: truncated IDX header. {_FIX}")
    dims = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    expected = header + math.prod(dims)
    if len(raw) != expected:
        raise DataError(f"MNIST file {path}: IDX header declares dims {dims} "
                        f"({expected} bytes) but the file holds {len(raw)} bytes. {_FIX}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _split(images: np.ndarray, labels: np.ndarray, path_i: Path, path_l: Path):
    if images.shape[1:] != (28, 28):
        raise DataError(f"MNIST file {path_i}: images are {images.shape[1:]}, expected 28 x 28")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"MNIST files {path_i.name} and {path_l.name} disagree: "
                        f"{images.shape[0]} images but {labels.shape[0]} labels. {_FIX}")
    if labels.size and labels.max() > 9:
        raise DataError(f"MNIST file {path_l}: label {int(labels.max())} outside 0..9. {_FIX}")
    x = images.reshape(images.shape[0], -1).astype(np.float64)
    x /= 255.0
    y = labels.astype(np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


# Parsed data sets by resolved directory: {Path: (verified, MNIST)}. One entry
# per directory (about 440 MB of float64); a verified load also serves verify=False.
_CACHE: dict[Path, tuple[bool, MNIST]] = {}


def clear_cache() -> None:
    """Forget the data sets :func:`mnist` has loaded (frees their memory)."""
    _CACHE.clear()


def _load(directory: Path, verify: bool, how: str) -> MNIST:
    hit = _CACHE.get(directory)
    if hit is not None and (hit[0] or not verify):
        return hit[1]
    missing = [name for name in MNIST_FILES if not (directory / name).is_file()]
    if missing:
        raise MissingDataError(
            f"MNIST file{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found in "
            f"{directory} (directory chosen from {how}; the four MNIST .gz files are "
            f"expected there or in its mnist/ subdirectory). {_FIX}")
    out = []
    for split in ("train", "t10k"):
        pi = directory / f"{split}-images-idx3-ubyte.gz"
        pl = directory / f"{split}-labels-idx1-ubyte.gz"
        images = _read_idx(pi, _MAGIC_IMAGES, verify, how)
        labels = _read_idx(pl, _MAGIC_LABELS, verify, how)
        out.extend(_split(images, labels, pi, pl))
    data = MNIST(*out, data_dir=directory)
    _CACHE[directory] = (verify, data)
    return data


def mnist(data_dir=None, verify: bool = True) -> MNIST:
    """Load MNIST: 60000 training and 10000 test images with their labels.

    Parameters
    ----------
    data_dir : path-like, optional
        Directory holding ``train-images-idx3-ubyte.gz``,
        ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
        ``t10k-labels-idx1-ubyte.gz`` (directly or in a ``mnist/``
        subdirectory). Default: ``$EVENTSIM_DATA`` if set, else the
        repository's ``data/mnist/`` (next to the package, else under the
        current directory).
    verify : bool
        Check each file's SHA-256 (of the decompressed IDX bytes) against the
        known MNIST values. The IDX headers are always checked.

    Returns
    -------
    MNIST with float64 images of shape (n, 784) in [0, 1] and int64 labels in
    0..9. The result is cached per directory for the process (see
    :func:`clear_cache`), so repeated calls are free; its arrays are read-only.

    Raises
    ------
    MissingDataError (a FileNotFoundError and a DataError)
        A file is missing; the message names it and the directory searched.
    DataError (a ValueError)
        A file is not gzip, fails its checksum, or has a malformed IDX header.
    """
    directory, how = resolve_data_dir(data_dir)
    return _load(directory, check_bool(verify, "verify"), how)


def latency_encode(images, t_max: float = 1.0) -> np.ndarray:
    """Latency (time-to-first-spike) code: one spike per pixel at t = t_max * (1 - x).

    Bright ink (x = 1) fires at t = 0; background (x = 0) fires at
    t = t_max. With the usual t_max equal to the simulation's ``t_end``, such
    spikes fall at or after t_end and are ignored by ``simulate_layer``.

    Parameters
    ----------
    images : array of float, any shape
        Intensities x in [0, 1] (dimensionless), e.g. ``mnist().test_images``.
    t_max : float
        Latest spike time, > 0, in the simulator's time unit (that of tau_i,
        tau_v).

    Returns
    -------
    float64 array of spike times, same shape as ``images``, in [0, t_max]. For
    one flattened image ``x``, the input spikes are
    ``times = latency_encode(x)``, ``ids = np.arange(x.size)``.
    """
    t_max = check_positive(t_max, "t_max")
    x = np.asarray(images)
    if x.size and not (is_real(x.dtype) or x.dtype == np.bool_):
        raise ValueError(f"images must be numeric intensities in [0, 1], got dtype {x.dtype}")
    x = x.astype(np.float64)
    if x.size:
        if np.isnan(x).any():
            raise ValueError("images contain NaN; intensities must be in [0, 1]")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"images must hold intensities in [0, 1], got range [{lo}, {hi}]"
                             + ("; raw MNIST bytes need dividing by 255 (mnist() already "
                                "does this)" if hi > 1.0 else ""))
    return t_max * (1.0 - x)
