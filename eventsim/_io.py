"""HDF5 persistence of networks and training checkpoints, written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

FORMAT_VERSION = 1
DIGEST = "sha256"   # attribute of the root group: _content_digest at writing time
# Files are written with an HDF5 user block (ignored by HDF5 readers) that holds
# the SHA-256 of every byte after it, checked before h5py parses the file: some
# damaged HDF5 metadata makes the HDF5 library loop forever instead of failing.
HEADER_SIZE = 512
HEADER_MAGIC = b"eventsim checkpoint\nsha256 "


def network_config(net) -> dict:
    """Everything needed to rebuild a Network, as JSON-able values."""
    return {"sizes": list(net.sizes), "tau_i": net.lif.tau_i, "tau_v": net.lif.tau_v,
            "threshold": net.lif.threshold, "t_out": net.t_out,
            "single_spike": net.single_spike, "method": net.method, "seed": net.seed,
            "max_spikes_per_neuron": net.max_spikes, "min_slope": net.min_slope}


def check_out_dir(path) -> Path:
    """``path`` as a Path if it can name an output directory: not an empty name
    (which would mean the current directory) and not an existing file. Creates
    nothing; raises ValueError naming the problem."""
    if not str(path).strip():
        raise ValueError("the output directory is an empty name; give one, e.g. --out runs/x")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"cannot write to the output directory {path}: it is a file, "
                         "not a directory; choose another directory")
    return path


def writable_dir(path) -> Path:
    """Create ``path`` (and its parents) if needed and check that files can be
    written in it, so that a run fails at its start, not after its first epoch.
    Raises ValueError naming the directory and the reason."""
    path = check_out_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"cannot write to the output directory {path} "
                         f"({err.strerror or err}); "
                         "choose a directory you can write to") from None
    return path


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary file name beside ``path``; once the ``with`` block has
    written it, fsync it and rename it over ``path`` (else delete it). An interrupted
    write never leaves a partial file at ``path``, and the name is per process, so
    writers sharing a directory side by side cannot clash."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give the name of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path, obj):
    """Write ``obj`` as one JSON line, atomically (see ``replacing``)."""
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(obj) + "\n")


def atomic_write_h5(path, fill):
    """Write an HDF5 file by calling fill(h5file) on a temporary file, atomically
    (see ``replacing``). The SHA-256 of its content (an attribute) and of its
    bytes (the header) are stored in it, so that a damaged copy is refused when
    read (``load_checkpoint``)."""
    with replacing(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=HEADER_SIZE) as f:
            f.attrs["format_version"] = FORMAT_VERSION
            fill(f)
            f.attrs[DIGEST] = _content_digest(f)
        stamp_header(tmp)


def stamp_header(path):
    """Write the header of an HDF5 file written with a ``HEADER_SIZE`` user block:
    the SHA-256 of its bytes after the header."""
    with open(path, "r+b") as fh:
        fh.write(_header(_bytes_digest(fh)))


def _bytes_digest(fh) -> str:
    """SHA-256 (hex) of the bytes of the open binary file ``fh`` after the header."""
    fh.seek(HEADER_SIZE)
    digest = hashlib.sha256(fh.read()).hexdigest()
    fh.seek(0)
    return digest


def _header(hex_digest: str) -> bytes:
    """The user block of a file whose bytes after it have SHA-256 ``hex_digest``."""
    return (HEADER_MAGIC + hex_digest.encode() + b"\n").ljust(HEADER_SIZE, b"\0")


def _check_header(path: Path):
    """Refuse (ValueError) a file whose header no longer matches its bytes. Files
    without the header (written before it existed, or whose first bytes are
    damaged) are left to the content digest."""
    with open(path, "rb") as fh:
        head = fh.read(HEADER_SIZE)
        if head.startswith(HEADER_MAGIC) and head != _header(_bytes_digest(fh)):
            raise ValueError(f"{path} is damaged: its bytes do not match the SHA-256 digest "
                             "stored when it was written; restore it from a copy or train "
                             "again")


def _value_bytes(value) -> bytes:
    """Canonical bytes of an attribute or dataset value as h5py returns it."""
    if isinstance(value, str):
        return b"s" + value.encode()
    if isinstance(value, bytes):
        return b"b" + value
    array = np.ascontiguousarray(value)
    return array.dtype.str.encode() + repr(array.shape).encode() + array.tobytes()


def _content_digest(f) -> str:
    """SHA-256 (hex) of every group, dataset and attribute of the open HDF5 file
    ``f`` (names and values, in name order), except the stored digest itself."""
    digest = hashlib.sha256()
    names = [""]
    f.visit(names.append)
    for name in sorted(names):
        obj = f[name] if name else f
        digest.update(b"\0name\0" + name.encode())
        for key in sorted(obj.attrs):
            if not (obj is f and key == DIGEST):
                digest.update(b"\0attr\0" + key.encode() + b"\0" + _value_bytes(obj.attrs[key]))
        if isinstance(obj, h5py.Dataset):
            digest.update(b"\0data\0" + _value_bytes(obj[()]))
    return digest.hexdigest()


def _write_arrays(group, arrays):
    for i, a in enumerate(arrays):
        group.create_dataset(str(i), data=np.asarray(a, dtype=np.float64))


def _read_arrays(group):
    return [group[str(i)][()] for i in range(len(group))]


def save_checkpoint(path, net, optimizer=None, epoch=None, extra=None):
    """Save the network (config + weights) and optionally Adam state, epoch and
    extra JSON-able metadata (hyperparameters, metrics history)."""
    config = network_config(net)

    def fill(f):
        f.attrs["network"] = json.dumps(config)
        _write_arrays(f.create_group("weights"), net.weights)
        if optimizer is not None:
            g = f.create_group("adam")
            g.attrs["step"] = optimizer.step
            g.attrs["hyper"] = json.dumps({"lr": optimizer.lr, "beta1": optimizer.beta1,
                                           "beta2": optimizer.beta2, "eps": optimizer.eps})
            _write_arrays(g.create_group("m"), optimizer.m)
            _write_arrays(g.create_group("v"), optimizer.v)
        if epoch is not None:
            f.attrs["epoch"] = int(epoch)
        if extra is not None:
            f.attrs["extra"] = json.dumps(extra)

    atomic_write_h5(path, fill)


def load_checkpoint(path) -> dict:
    """Read a file written by save_checkpoint: dict with 'network' (config),
    'weights', and where present 'adam', 'epoch', 'extra'. Raises ValueError,
    naming the file, if it is not such a file or its content no longer matches
    the SHA-256 stored when it was written (files from before eventsim stored
    one are read unchecked)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _check_header(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({err}); it may be truncated "
                         "or not an eventsim checkpoint") from err
    with f:
        try:
            if "network" not in f.attrs or not isinstance(f.get("weights"), h5py.Group):
                raise ValueError(f"{path} is not an eventsim checkpoint (no network/weights)")
            if DIGEST not in f.attrs or f.attrs[DIGEST] == _content_digest(f):
                return _read_checkpoint(f)
        except (OSError, RuntimeError, KeyError, TypeError, json.JSONDecodeError) as err:
            # what h5py and json raise on damaged files
            raise ValueError(f"{path} could not be read as an eventsim checkpoint "
                             f"({type(err).__name__}: {err}); it may be damaged") from err
    raise ValueError(f"{path} is damaged: its content does not match the SHA-256 digest "
                     "stored when it was written; restore it from a copy or train again")


def _read_checkpoint(f) -> dict:
    out = {"network": json.loads(f.attrs["network"]), "weights": _read_arrays(f["weights"])}
    if "adam" in f:
        g = f["adam"]
        out["adam"] = {"step": int(g.attrs["step"]), "m": _read_arrays(g["m"]),
                       "v": _read_arrays(g["v"]), **json.loads(g.attrs["hyper"])}
    if "epoch" in f.attrs:
        out["epoch"] = int(f.attrs["epoch"])
    if "extra" in f.attrs:
        out["extra"] = json.loads(f.attrs["extra"])
    return out
