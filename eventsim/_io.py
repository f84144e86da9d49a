"""HDF5 persistence of networks and training checkpoints, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import h5py
import numpy as np

FORMAT_VERSION = 1


def network_config(net) -> dict:
    """Everything needed to rebuild a Network, as JSON-able values."""
    return {"sizes": list(net.sizes), "tau_i": net.lif.tau_i, "tau_v": net.lif.tau_v,
            "threshold": net.lif.threshold, "t_out": net.t_out,
            "single_spike": net.single_spike, "method": net.method, "seed": net.seed,
            "max_spikes_per_neuron": net.max_spikes, "min_slope": net.min_slope}


def writable_dir(path) -> Path:
    """Create ``path`` (and its parents) if needed and check that files can be
    written in it, so that a run fails at its start, not after its first epoch.
    Raises ValueError naming the directory and the reason."""
    path = Path(path)
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
    (see ``replacing``)."""
    with replacing(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        fill(f)


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
    'weights', and where present 'adam', 'epoch', 'extra'."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path} is not a readable HDF5 file ({err}); it may be truncated "
                         "or not an eventsim checkpoint") from err
    with f:
        if "network" not in f.attrs or "weights" not in f:
            raise ValueError(f"{path} is not an eventsim checkpoint (no network/weights)")
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
