"""MNIST loader (checksums, IDX parsing, data-dir resolution) and latency coding."""

import gzip
import os
import shutil

import numpy as np
import pytest

from eventsim import datasets
from eventsim.datasets import (ENV_VAR, MNIST_FILES, DataError, MissingDataError,
                               latency_encode, mnist)

REPO_DIR = datasets._REPO_DATA


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    """Tests start without EVENTSIM_DATA so the default resolution is exercised."""
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def fresh_cache():
    """Loads into other directories are dropped afterwards (each holds ~440 MB)."""
    keep = dict(datasets._CACHE)
    yield
    datasets._CACHE.clear()
    datasets._CACHE.update(keep)


def _link_all(dest, skip=()):
    """Populate dest with links (or copies) to the repo's MNIST files."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        if name in skip:
            continue
        try:
            os.symlink(REPO_DIR / name, dest / name)
        except OSError:
            shutil.copy(REPO_DIR / name, dest / name)
    return dest


def _rewrite(path, mutate):
    """Replace the gzip file at path by one whose decompressed bytes are mutate(raw)."""
    with gzip.open(REPO_DIR / path.name, "rb") as fh:
        raw = bytearray(fh.read())
    if path.is_symlink() or path.exists():
        path.unlink()
    with gzip.open(path, "wb") as fh:
        fh.write(bytes(mutate(raw)))


# --- the real files ---------------------------------------------------------

def test_real_files_checksum_shapes_dtypes():
    data = mnist()  # verify=True: all four SHA-256 checks pass
    assert data.data_dir == REPO_DIR
    assert data.train_images.shape == (60000, 784) and data.train_images.dtype == np.float64
    assert data.test_images.shape == (10000, 784) and data.test_images.dtype == np.float64
    assert data.train_labels.shape == (60000,) and data.train_labels.dtype == np.int64
    assert data.test_labels.shape == (10000,) and data.test_labels.dtype == np.int64
    for x in (data.train_images, data.test_images):
        assert x.min() == 0.0 and x.max() == 1.0
    for y in (data.train_labels, data.test_labels):
        assert set(np.unique(y)) == set(range(10))
    # well-known first labels of both splits
    assert data.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert data.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    # pixels are raw / 255 exactly
    assert np.all(np.isin(np.round(data.test_images[0] * 255), np.arange(256)))
    np.testing.assert_array_equal(np.round(data.test_images[0] * 255) / 255, data.test_images[0])


def test_cached_and_read_only():
    a = mnist()
    assert mnist() is a
    assert mnist(data_dir=REPO_DIR) is a
    assert mnist(verify=False) is a  # a verified load serves verify=False too
    with pytest.raises(ValueError):
        a.train_images[0, 0] = 0.5
    with pytest.raises(ValueError):
        a.test_labels[0] = 3


def test_data_dir_with_mnist_subdirectory(tmp_path, fresh_cache):
    _link_all(tmp_path / "mnist")
    data = mnist(data_dir=tmp_path)
    assert data.data_dir == (tmp_path / "mnist").resolve()
    np.testing.assert_array_equal(data.test_labels, mnist(data_dir=REPO_DIR).test_labels)


# --- errors -----------------------------------------------------------------

def test_missing_file_names_file_and_dir(tmp_path):
    _link_all(tmp_path, skip={"t10k-labels-idx1-ubyte.gz"})
    with pytest.raises(MissingDataError) as info:
        mnist(data_dir=tmp_path)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg
    assert str(tmp_path.resolve()) in msg
    assert ENV_VAR in msg and "data_dir" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_empty_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        mnist(data_dir=tmp_path)


def test_corrupt_file_fails_checksum(tmp_path):
    _link_all(tmp_path)
    target = tmp_path / "train-labels-idx1-ubyte.gz"

    def flip(raw):
        raw[100] = (raw[100] + 1) % 10  # still a valid label, so only the checksum catches it
        return raw

    _rewrite(target, flip)
    with pytest.raises(DataError) as info:
        mnist(data_dir=tmp_path)
    msg = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in msg and "SHA-256" in msg
    assert str(tmp_path.resolve()) in msg
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, FileNotFoundError)


def test_not_gzip(tmp_path):
    _link_all(tmp_path, skip={"train-images-idx3-ubyte.gz"})
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip data at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz.*gzip"):
        mnist(data_dir=tmp_path)


@pytest.mark.parametrize("verify", ["no", 0, None])
def test_verify_must_be_a_bool(verify):
    """verify="no" would otherwise read as True (a non-empty string)."""
    with pytest.raises(ValueError, match="verify must be True or False"):
        mnist(verify=verify)


def test_bad_magic_caught_without_verify(tmp_path):
    _link_all(tmp_path)

    def magic(raw):
        raw[3] = 0x03  # labels file claiming to be a 3-d array
        return raw

    _rewrite(tmp_path / "train-labels-idx1-ubyte.gz", magic)
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*magic"):
        mnist(data_dir=tmp_path, verify=False)


def test_truncated_caught_without_verify(tmp_path):
    _link_all(tmp_path)
    _rewrite(tmp_path / "train-labels-idx1-ubyte.gz", lambda raw: raw[:-7])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz.*bytes"):
        mnist(data_dir=tmp_path, verify=False)


# --- EVENTSIM_DATA ----------------------------------------------------------

def test_env_var_honoured(tmp_path, monkeypatch, fresh_cache):
    _link_all(tmp_path / "mnist")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    data = mnist()
    assert data.data_dir == (tmp_path / "mnist").resolve()
    assert data.train_images.shape == (60000, 784)


def test_env_var_not_silently_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(MissingDataError) as info:
        mnist()
    assert ENV_VAR in str(info.value) and str(tmp_path.resolve()) in str(info.value)


def test_explicit_dir_beats_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))  # empty: would fail if used
    assert mnist(data_dir=REPO_DIR).data_dir == REPO_DIR


def test_default_falls_back_to_data_mnist_of_the_current_directory(tmp_path, monkeypatch,
                                                                     fresh_cache):
    """A non-editable install has no data/mnist beside the package; run from a
    repository root, the default then finds ./data/mnist."""
    monkeypatch.setattr(datasets, "_REPO_DATA", tmp_path / "site-packages" / "data" / "mnist")
    _link_all(tmp_path / "repo" / "data" / "mnist")
    monkeypatch.chdir(tmp_path / "repo")
    data = mnist()
    assert data.data_dir == (tmp_path / "repo" / "data" / "mnist").resolve()
    assert data.test_labels.shape == (10000,)
    monkeypatch.chdir(tmp_path)  # neither default exists: the error names both
    with pytest.raises(MissingDataError) as info:
        mnist()
    msg = str(info.value)
    assert str(tmp_path / "site-packages" / "data" / "mnist") in msg
    assert str((tmp_path / "data" / "mnist").resolve()) in msg and ENV_VAR in msg


# --- latency coding ---------------------------------------------------------

def test_latency_values():
    x = np.array([[0.0, 0.25], [0.5, 1.0]])
    t = latency_encode(x)
    np.testing.assert_array_equal(t, [[1.0, 0.75], [0.5, 0.0]])
    np.testing.assert_allclose(latency_encode(x, t_max=2.0), 2.0 * (1 - x))
    assert latency_encode(x).dtype == np.float64
    assert latency_encode(np.zeros(3), t_max=0.7).tolist() == [0.7] * 3  # background at t_max
    assert latency_encode(np.empty((0, 784))).shape == (0, 784)


def test_latency_on_mnist():
    x = mnist().test_images[:5]
    t = latency_encode(x)
    assert t.shape == x.shape
    assert t.min() == 0.0 and t.max() == 1.0
    # brighter pixels fire no later
    row = x[0]
    order = np.argsort(-row, kind="stable")
    assert np.all(np.diff(t[0][order]) >= 0)


@pytest.mark.parametrize("bad", [np.array([-0.1, 0.5]), np.array([0.5, 1.5]),
                                 np.array([np.nan]), np.array([0, 255])])
def test_latency_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="images"):
        latency_encode(bad)


@pytest.mark.parametrize("t_max", [0.0, -1.0, np.inf, np.nan, "a"])
def test_latency_rejects_bad_t_max(t_max):
    with pytest.raises(ValueError, match="t_max"):
        latency_encode(np.zeros(2), t_max=t_max)


def test_latency_rejects_non_numeric():
    with pytest.raises(ValueError, match="images"):
        latency_encode(np.array(["a", "b"]))
