"""Host-side input checks: clear ValueErrors that say what to fix."""

from __future__ import annotations

import math

import numpy as np

from ._math import CLOSED_FORM, ROOT

METHODS = ("auto", "closed_form", "root")


def _shown(value) -> str:
    """repr(value), cut short if long (a 400-digit integer, a big array)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}...({len(text)} characters)"


def _is_number_type(value) -> bool:
    """Whether ``value`` is of a real-number type: not a bool, a string (even
    "0.8"), complex, or a numpy scalar or array of such a dtype."""
    if isinstance(value, (bool, np.bool_, str, bytes, complex)):
        return False
    if isinstance(value, (np.ndarray, np.generic)):
        return is_real(value.dtype)
    return True


def _finite_real(value, name: str, requirement: str) -> float:
    """float(value) if it is a finite real number, else a ValueError saying that
    ``name`` must be ``requirement``. Bools, strings and complex numbers are
    refused rather than converted."""
    message = f"{name} must be {requirement}, got {_shown(value)}"
    if not _is_number_type(value):
        raise ValueError(f"{message} (a {type(value).__name__}; pass a number)")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{message} (too large for float64)") from None
    except (TypeError, ValueError):
        raise ValueError(message) from None
    if not math.isfinite(number):
        raise ValueError(message)
    return number


def check_finite(value, name: str) -> float:
    """A finite real number."""
    return _finite_real(value, name, "a finite number")


def check_positive(value, name: str) -> float:
    """A positive finite real number."""
    number = _finite_real(value, name, "a positive finite number")
    if number <= 0.0:
        raise ValueError(f"{name} must be a positive finite number, got {_shown(value)}")
    return number


def check_time_constant(value, name: str) -> float:
    """A positive finite time constant whose rate 1/value is finite in float64."""
    value = check_positive(value, name)
    if not math.isfinite(1.0 / value):
        raise ValueError(f"{name}={value!r} is too small: its rate 1/{name} overflows "
                         f"float64; measure time in a smaller unit")
    return value


def check_nonnegative(value, name: str) -> float:
    """A finite real number >= 0."""
    number = _finite_real(value, name, "a finite number >= 0")
    if number < 0.0:
        raise ValueError(f"{name} must be a finite number >= 0, got {_shown(value)}")
    return number


def check_int(value, name: str, minimum: int) -> int:
    """An integer (not a bool, not a float) >= ``minimum``, as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seed(seed) -> int:
    """An integer >= 0 (a seed of numpy's default_rng)."""
    return check_int(seed, "seed", 0)


def check_layer_sizes(sizes, name: str, min_layers: int) -> list:
    """At least ``min_layers`` layer sizes, each an integer >= 1."""
    problem = f"{name} must list {min_layers} or more layer sizes, integers >= 1, got {sizes!r}"
    if isinstance(sizes, (str, bytes)) or np.ndim(sizes) != 1 or len(sizes) < min_layers:
        raise ValueError(problem)
    try:
        return [check_int(s, name, 1) for s in sizes]
    except ValueError:
        raise ValueError(problem) from None


def check_lif(lif):
    from ._lif import LIF
    if not isinstance(lif, LIF):
        raise ValueError(f"lif must be an eventsim.LIF, got {type(lif).__name__}")
    return lif


def check_t_end(t_end, name: str = "t_end") -> float:
    return check_positive(t_end, name)


def is_real(dtype) -> bool:
    """Whether values of ``dtype`` are real numbers (float or integer, not bool,
    complex, object or text)."""
    return np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)


def check_spike_times(times, name: str = "times", allow_inf: bool = True) -> np.ndarray:
    """1-D float64 times: NaN and negative values are errors; +inf means 'never'
    (spike times) or is an error too (``allow_inf=False``: times to evaluate at)."""
    arr = np.asarray(times)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of spike times, got shape {arr.shape}")
    if arr.size and not is_real(arr.dtype):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not allow_inf and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, found {arr[~np.isfinite(arr)][0]} at index "
                         f"{int(np.flatnonzero(~np.isfinite(arr))[0])}")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}; "
                         "use +inf for 'no spike'")
    if (arr < 0).any():
        raise ValueError(f"{name} must be >= 0 (time starts at 0), got {float(arr.min())}")
    return arr


def check_input_times(x, name: str = "x") -> np.ndarray:
    """A 2-D array (samples, inputs) of latency input spike times as float64 (no
    copy if it already is): real numbers, no NaN, >= 0; +inf means 'no spike'."""
    x = np.asarray(x)
    if x.size and not is_real(x.dtype):
        raise ValueError(f"{name} must be real numbers (spike times), got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        sample, neuron = np.argwhere(np.isnan(x))[0]
        raise ValueError(f"{name} contains NaN (sample {sample}, input {neuron}); "
                         "use np.inf for 'no spike'")
    if (x < 0).any():
        raise ValueError(f"{name} must be >= 0 (spike times), got min {float(x.min())}")
    return x


def check_ids(ids, n: int, size: int, name: str = "ids",
              n_is: str = "the number of presynaptic neurons, weights.shape[0]") -> np.ndarray:
    """Integer ids as int64 after checking: shape (size,), integer dtype, in [0, n);
    ``n_is`` says in the error what n is."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or arr.shape[0] != size:
        raise ValueError(f"{name} must be a 1-D integer array with one entry per spike "
                         f"({size}), got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"{name} must have an integer dtype, got {arr.dtype}; "
                             "cast with .astype(int) if the values are whole numbers")
        raise ValueError(f"{name} must have an integer dtype, got {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= n):   # before int64 wraps large uint64
        bad = arr[(arr < 0) | (arr >= n)][0]
        raise ValueError(f"{name} must lie in [0, {n}) ({n_is}), found {int(bad)}")
    return arr.astype(np.int64)


def check_labels(labels, n: int, n_classes: int, name: str = "labels") -> np.ndarray:
    """Class labels as int64 after checking: shape (n,), integer dtype, in [0, n_classes)."""
    n = check_int(n, "n (the number of samples)", 0)
    labels = np.asarray(labels)
    if labels.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got "
                         f"min {labels.min()}, max {labels.max()}")
    return labels.astype(np.int64)


def check_weights(weights, name: str = "weights", shape=None) -> np.ndarray:
    """A finite 2-D float64 array (a scipy.sparse matrix is made dense)."""
    arr = np.asarray(weights.toarray() if hasattr(weights, "toarray") else weights)
    if arr.size and not is_real(arr.dtype):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_in, n_out), got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return arr


def check_method(method: str, lif) -> int:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "closed_form" and lif.p != 2.0:
        raise ValueError(f"method='closed_form' needs p = tau_i / tau_v == 2 (eq. 19), "
                         f"got p = {lif.p!r}; use method='root' or 'auto'")
    if method == "closed_form" or (method == "auto" and lif.p == 2.0):
        return CLOSED_FORM
    return ROOT


def check_max_spikes(max_spikes) -> int:
    """An integer in [1, 2**62] (the kernels count spikes in int64)."""
    max_spikes = check_int(max_spikes, "max_spikes_per_neuron", 1)
    if max_spikes > 2**62:
        raise ValueError(f"max_spikes_per_neuron must be <= 2**62, got {max_spikes}")
    return max_spikes


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)
