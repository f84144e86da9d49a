"""Trainer, checkpoints and the train_mnist example, on small MNIST subsets."""

import json
import runpy
import signal
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

import eventsim as es
from eventsim import _io
from eventsim._train import TIMING_FIELDS, Dataset, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_data():
    data = es.mnist()
    return Dataset(es.latency_encode(data.train_images[:3000]), data.train_labels[:3000],
                   es.latency_encode(data.test_images[:1000]), data.test_labels[:1000])


def small_config(**kw):
    base = dict(hidden=(40,), epochs=1, train_subset=1000, seed=3, eval_batch_size=500)
    base.update(kw)
    return TrainConfig(**base)


def test_one_short_epoch_learns(small_data, tmp_path):
    trainer = Trainer(small_config(train_subset=3000, lr=1e-2), small_data, tmp_path,
                      progress=False)
    before = es.evaluate(trainer.net, small_data.x_test, small_data.y_test).accuracy
    first = trainer.net.loss(trainer.net.forward(small_data.x_train[:500]),
                             small_data.y_train[:500])[0]
    summary = trainer.fit()
    after = trainer.net.loss(trainer.net.forward(small_data.x_train[:500]),
                             small_data.y_train[:500])[0]
    assert after < first
    assert summary["test_accuracy"] > 0.6 > before + 0.2  # chance is 0.1
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == es._train.METRIC_FIELDS and len(rows) == 2
    assert (tmp_path / "checkpoint.h5").is_file() and (tmp_path / "model.h5").is_file()


def _strip_timing(history):
    return [{k: v for k, v in row.items() if k not in TIMING_FIELDS}
            for row in history]


class _InterruptedTrainer(Trainer):
    """Stops like Ctrl-C right after the first epoch's checkpoint is written."""

    def save(self, path=None):
        super().save(path)
        raise KeyboardInterrupt


@pytest.mark.parametrize("lr_schedule, val_size", [("constant", 0), ("cosine", 0),
                                                    ("constant", 400)])
def test_resume_equals_uninterrupted(small_data, tmp_path, lr_schedule, val_size):
    config = small_config(epochs=2, train_subset=600, lr_schedule=lr_schedule,
                          val_size=val_size)
    straight = Trainer(config, small_data, tmp_path / "a", progress=False)
    straight.fit()

    with pytest.raises(KeyboardInterrupt):
        _InterruptedTrainer(config, small_data, tmp_path / "b", progress=False).fit()
    resumed = Trainer(config, small_data, tmp_path / "b", progress=False)
    assert resumed.resume() and resumed.epoch == 1
    summary = resumed.fit()
    for w1, w2 in zip(straight.net.weights, resumed.net.weights):
        np.testing.assert_array_equal(w1, w2)
    assert _strip_timing(straight.history) == _strip_timing(resumed.history)
    # the wall time counts both sessions' epochs, each at least its training time
    walls = [row["wall_s"] for row in resumed.history]
    assert all(row["wall_s"] >= row["epoch_s"] > 0 for row in resumed.history)
    assert summary["wall_time_s"] == sum(walls) >= summary["train_time_s"]
    for m1, m2 in zip(straight.opt.m, resumed.opt.m):
        np.testing.assert_array_equal(m1, m2)
    for name in ("best.h5", "model.h5") if val_size else ("model.h5",):
        a, b = (_io.load_checkpoint(tmp_path / d / name) for d in "ab")
        assert a["epoch"] == b["epoch"]
        for w1, w2 in zip(a["weights"], b["weights"]):
            np.testing.assert_array_equal(w1, w2)
    if val_size:
        with pytest.raises(ValueError, match="val_size"):
            Trainer(replace(config, val_size=val_size + 100), small_data, tmp_path / "b",
                    progress=False).resume()


def test_resume_with_more_epochs_continues_constant_lr(small_data, tmp_path):
    config = small_config(epochs=2, train_subset=600)
    straight = Trainer(config, small_data, tmp_path / "a", progress=False)
    straight.fit()
    Trainer(replace(config, epochs=1), small_data, tmp_path / "b", progress=False).fit()
    resumed = Trainer(config, small_data, tmp_path / "b", progress=False)
    assert resumed.resume()
    resumed.fit()
    for w1, w2 in zip(straight.net.weights, resumed.net.weights):
        np.testing.assert_array_equal(w1, w2)
    # a cosine schedule spans all epochs, so changing them on resume is refused
    Trainer(small_config(train_subset=200, lr_schedule="cosine"), small_data, tmp_path / "c",
            progress=False).fit()
    with pytest.raises(ValueError, match="epochs"):
        Trainer(small_config(train_subset=200, lr_schedule="cosine", epochs=3), small_data,
                tmp_path / "c", progress=False).resume()


def test_cosine_learning_rate():
    total = 600
    cosine = TrainConfig(lr=2e-3, lr_schedule="cosine")
    steps = np.arange(total)
    lrs = np.array([cosine.learning_rate(k, total) for k in steps])
    np.testing.assert_allclose(lrs, 1e-3 * (1 + np.cos(np.pi * steps / total)), rtol=1e-15)
    assert lrs[0] == 2e-3 and lrs[total // 2] == pytest.approx(1e-3, rel=1e-14)
    assert np.all(np.diff(lrs) < 0) and 0 < lrs[-1] < 1e-7
    assert TrainConfig(lr=2e-3).learning_rate(123, total) == 2e-3
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("batch_size", 0), ("train_subset", 0), ("val_size", -1),
    ("lr", 0.0), ("lr", np.inf), ("dead_penalty", -0.01), ("dead_penalty", np.nan),
    ("output_l2", np.inf), ("min_slope", -1.0), ("weight_decay", -1e-4), ("seed", -3),
    ("seed", 1.5), ("tau_i", 0.0), ("tau_i", np.nan), ("tau_v", -0.4), ("tau_v", 1e-310),
    ("t_out", 0.0), ("init_std", -0.1), ("hidden", (400, 0)), ("hidden", ()),
    ("hidden", (5.9,)), ("hidden", "400"), ("epochs", 1.5), ("batch_size", 2.5),
    ("train_subset", 10.0), ("device", "gpu"), ("penalty_reduction", "max"),
    ("lr", "1e-3"), ("tau_i", "0.8"), ("tau_v", "0.4"), ("t_out", "1"), ("init_std", "0.5"),
    ("dead_penalty", b"0.01"), ("weight_decay", 1j), ("single_spike", "yes"),
    ("single_spike", 1), ("init_mean", np.inf), ("init_mean", np.nan), ("init_mean", "0.03"),
    ("lr", True),
])
def test_config_refuses_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_trainer_applies_cosine_schedule(small_data, tmp_path):
    config = small_config(epochs=2, train_subset=300, batch_size=100, lr_schedule="cosine")
    trainer = Trainer(config, small_data, tmp_path, progress=False)
    trainer.fit()
    assert trainer.opt.step == 6
    assert trainer.opt.lr == pytest.approx(config.lr * (1 + np.cos(np.pi * 5 / 6)) / 2,
                                           rel=1e-14)


def test_resume_refuses_other_settings(small_data, tmp_path):
    Trainer(small_config(train_subset=200), small_data, tmp_path, progress=False).fit()
    other = Trainer(small_config(train_subset=200, lr=5e-3), small_data, tmp_path,
                    progress=False)
    with pytest.raises(ValueError, match="lr"):
        other.resume()
    longer = Trainer(small_config(train_subset=200, epochs=2), small_data, tmp_path,
                     progress=False)
    assert longer.resume() and longer.epoch == 1   # more epochs than saved: continues
    longer.fit()
    shorter = Trainer(small_config(train_subset=200, epochs=1), small_data, tmp_path,
                      progress=False)
    with pytest.raises(ValueError, match="already holds 2 epochs, more than --epochs 1"):
        shorter.resume()


def test_checkpoint_without_penalty_reduction_resumes_as_mean(small_data, tmp_path):
    """Checkpoints written before the option existed were trained with 'mean'."""
    Trainer(small_config(train_subset=200, penalty_reduction="mean"), small_data, tmp_path,
            progress=False).fit()
    with h5py.File(tmp_path / "checkpoint.h5", "r+") as f:   # as written back then:
        extra = json.loads(f.attrs["extra"])
        del extra["config"]["penalty_reduction"]
        f.attrs["extra"] = json.dumps(extra)
        del f.attrs[_io.DIGEST]                                 # nor had they digests
    drop_header(tmp_path / "checkpoint.h5")
    with pytest.raises(ValueError, match="penalty_reduction"):
        Trainer(small_config(train_subset=200), small_data, tmp_path, progress=False).resume()
    assert Trainer(small_config(train_subset=200, penalty_reduction="mean"), small_data,
                   tmp_path, progress=False).resume()


def test_network_save_load_round_trip(tmp_path):
    net = es.Network([6, 5, 4, 3], es.LIF(0.7, 0.2, 1.5), t_out=2.0, single_spike=True,
                     seed=9, method="root", min_slope=0.1)
    path = tmp_path / "net.h5"
    net.save(path)
    back = es.Network.load(path)
    assert back.sizes == net.sizes and back.lif == net.lif and back.t_out == 2.0
    assert back.single_spike and back.method == "root" and back.min_slope == 0.1
    for w1, w2 in zip(net.weights, back.weights):
        np.testing.assert_array_equal(w1, w2)
    x = np.random.default_rng(0).uniform(0, 2, (3, 6))
    np.testing.assert_array_equal(net.forward(x).v_out, back.forward(x).v_out)


def test_interrupted_checkpoint_write_keeps_last_one(tmp_path):
    net = es.Network([4, 3, 2], es.LIF(), seed=1)
    path = tmp_path / "ckpt.h5"
    _io.save_checkpoint(path, net, epoch=1)

    def broken(f):
        f.create_dataset("half", data=np.zeros(3))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _io.atomic_write_h5(path, broken)
    assert _io.load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.h5"]
    with h5py.File(path) as f:
        assert "half" not in f


def _numba_style_interrupt():
    """A Ctrl-C that lands in a numba kernel: SystemError("... with an exception
    set") raised from the KeyboardInterrupt (as a real interrupted run showed)."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as interrupt:
        raise SystemError("CPUDispatcher(...) returned a result with an exception set") \
            from interrupt


def test_ctrl_c_inside_a_kernel_is_a_keyboard_interrupt(small_data, tmp_path, monkeypatch):
    trainer = Trainer(small_config(epochs=2), small_data, tmp_path, progress=False)
    real_epoch = trainer.train_epoch
    calls = []

    def second_epoch_interrupted():
        calls.append(1)
        if len(calls) == 2:
            _numba_style_interrupt()
        return real_epoch()

    monkeypatch.setattr(trainer, "train_epoch", second_epoch_interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert _io.load_checkpoint(tmp_path / "checkpoint.h5")["epoch"] == 1

    def other_system_error():
        raise SystemError("not an interrupt")

    monkeypatch.setattr(trainer, "train_epoch", other_system_error)
    with pytest.raises(SystemError):  # other SystemErrors are not swallowed
        trainer.fit()


def test_validation_split_holds_out_the_last_samples(small_data, tmp_path):
    """val_size=N trains exactly as if the last N training samples did not exist, records
    their accuracy every epoch and keeps the best epoch's network in best.h5."""
    config = small_config(epochs=3, train_subset=None, val_size=500, lr=1e-2)
    trainer = Trainer(config, small_data, tmp_path / "val", progress=False)
    assert trainer.n_train == 2500
    summary = trainer.fit()
    cut = Dataset(small_data.x_train[:2500], small_data.y_train[:2500], small_data.x_test,
                  small_data.y_test)
    plain = Trainer(replace(config, val_size=0), cut, tmp_path / "plain", progress=False)
    plain.fit()
    for w1, w2 in zip(trainer.net.weights, plain.net.weights):
        np.testing.assert_array_equal(w1, w2)

    x_val, y_val = small_data.x_train[2500:], small_data.y_train[2500:]
    val_accs = [row["val_acc"] for row in trainer.history]
    best_epoch = int(np.argmax(val_accs)) + 1
    assert summary["best_val_epoch"] == best_epoch and summary["val_size"] == 500
    assert summary["best_val_accuracy"] == max(val_accs) > 0.5
    assert summary["test_accuracy_at_best_val"] == trainer.history[best_epoch - 1]["test_acc"]
    best = es.Network.load(tmp_path / "val" / "best.h5")
    assert _io.load_checkpoint(tmp_path / "val" / "best.h5")["epoch"] == best_epoch
    best_metrics = es.evaluate(best, x_val, y_val)
    assert (best_metrics.accuracy, best_metrics.cross_entropy) == pytest.approx((max(val_accs),
                                         trainer.history[best_epoch - 1]["val_loss"]), rel=1e-12)
    final = es.evaluate(trainer.net, x_val, y_val)
    assert final.accuracy == pytest.approx(val_accs[-1], rel=1e-12)

    # without a validation set: empty val columns, no best.h5, None in the summary
    assert not (tmp_path / "plain" / "best.h5").exists()
    rows = (tmp_path / "plain" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert all(r.split(",")[header.index("val_acc")] == "" for r in rows[1:])


def test_load_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        es.Network.load(tmp_path / "missing.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("x", data=[1])
    with pytest.raises(ValueError, match="not an eventsim checkpoint"):
        es.Network.load(tmp_path / "other.h5")
    (tmp_path / "truncated.h5").write_bytes(b"\x89HDF\r\n")
    with pytest.raises(ValueError, match="not a readable HDF5 file"):
        es.Network.load(tmp_path / "truncated.h5")


def drop_header(path):
    """Blank the header that holds the file's SHA-256, as in files written before it
    existed (an all-zero user block, which HDF5 ignores)."""
    with open(path, "r+b") as fh:
        fh.write(bytes(_io.HEADER_SIZE))


def flip_one_bit(path, dataset, index):
    """Damage a saved file as a bad disk or copy would: one bit of one stored value."""
    with h5py.File(path, "r") as f:
        data = f[dataset]
        offset = data.id.get_offset() + index * data.dtype.itemsize
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0x10]))


def test_damaged_files_are_refused(small_data, tmp_path):
    """A file whose weights, optimiser state or settings changed after it was
    written no longer matches its SHA-256 digest and is refused, not loaded."""
    trainer = Trainer(small_config(train_subset=200), small_data, tmp_path, progress=False)
    trainer.fit()
    for name, dataset in (("model.h5", "weights/0"), ("checkpoint.h5", "adam/v/1")):
        path = tmp_path / name
        good = _io.load_checkpoint(path)
        for check in ("header", "content digest"):
            copy = tmp_path / f"damaged_{name}"
            copy.write_bytes(path.read_bytes())
            if check == "content digest":
                drop_header(copy)
                assert _io.load_checkpoint(copy)["epoch"] == good["epoch"]
            flip_one_bit(copy, dataset, 17)
            with h5py.File(copy, "r") as f:   # the damage is there and h5py reads it silently
                stored = good["weights"][0] if name == "model.h5" else good["adam"]["v"][1]
                assert f[dataset][()].flat[17] != stored.flat[17]
            with pytest.raises(ValueError, match=f"{copy.name} is damaged"):
                _io.load_checkpoint(copy)
    with h5py.File(tmp_path / "model.h5", "r+") as f:   # settings edited by hand
        f.attrs["network"] = f.attrs["network"].replace('"tau_i": 0.8', '"tau_i": 0.9')
    with pytest.raises(ValueError, match="is damaged"):
        es.Network.load(tmp_path / "model.h5")
    with pytest.raises(ValueError, match="is damaged"):   # resuming from a damaged one
        flip_one_bit(tmp_path / "checkpoint.h5", "weights/1", 3)
        Trainer(small_config(train_subset=200, epochs=2), small_data, tmp_path,
                progress=False).resume()


def test_every_damaged_byte_is_refused_or_harmless(tmp_path):
    """Flip one bit of each byte of a saved network in turn (bit k % 8 of byte k,
    so every bit position is tried): every copy is refused with a
    ValueError before h5py parses it (some damaged HDF5 metadata makes the HDF5
    library loop forever), or loads the very same network (a bit of the header's
    magic line: read as a file without header, checked by its content digest)."""
    net = es.Network([3, 2, 2], es.LIF(0.8, 0.4), seed=1)
    net.save(tmp_path / "net.h5")
    data = (tmp_path / "net.h5").read_bytes()
    copy = tmp_path / "copy.h5"
    refused = 0
    for byte in range(len(data)):
        damaged = bytearray(data)
        damaged[byte] ^= 1 << (byte % 8)
        copy.write_bytes(damaged)
        try:
            back = es.Network.load(copy)
        except ValueError as err:
            assert "copy.h5" in str(err)
            refused += 1
            continue
        assert byte < len(_io.HEADER_MAGIC)
        for w1, w2 in zip(net.weights, back.weights):
            np.testing.assert_array_equal(w1, w2)
    assert refused >= len(data) - len(_io.HEADER_MAGIC)


def test_files_that_are_not_checkpoints_are_refused(small_data, tmp_path):
    trainer = Trainer(small_config(train_subset=200), small_data, tmp_path, progress=False)
    trainer.fit()
    (tmp_path / "checkpoint.h5").write_bytes((tmp_path / "model.h5").read_bytes())
    with pytest.raises(ValueError, match="not the optimiser state"):
        Trainer(small_config(train_subset=200, epochs=2), small_data, tmp_path,
                progress=False).resume()
    path = tmp_path / "odd.h5"

    def settings(f, network):
        f.attrs["network"] = json.dumps(network)
        f.create_group("weights")

    for network, reason in (({"sizes": [3, 2]}, "KeyError"),
                            ({"sizes": [3, 2], "tau_i": 1.0, "tau_v": 0.5, "threshold": 1.0,
                              "colour": "red"}, "TypeError")):
        _io.atomic_write_h5(path, lambda f: settings(f, network))
        with pytest.raises(ValueError, match=rf"odd.h5 holds network settings .* \({reason}"):
            es.Network.load(path)


@pytest.mark.parametrize("change, message", [
    (dict(y_train=np.zeros(4, np.int64)), r"y_train must have shape \(5,\)"),
    (dict(y_test=np.zeros(3)), "y_test must be integers"),
    (dict(x_test=np.zeros((3, 4))), "x_test must be a non-empty 2-D array"),
    (dict(x_train=np.zeros((0, 5)), y_train=np.zeros(0, np.int64)), "x_train must be a non-"),
    (dict(y_train=np.full(5, 10)), r"y_train must lie in \[0, 10\)"),
    (dict(x_train=np.full((5, 5), np.nan)), r"x_train contains NaN \(sample 0, input 0\)"),
    (dict(x_test=-np.ones((3, 5))), r"x_test must be >= 0 \(spike times\)"),
    (dict(x_train=np.full((5, 5), "0.5")), "x_train must be real numbers .* dtype <U3"),
    (dict(x_test=np.zeros((3, 5)) + 1j), "x_test must be real numbers .* dtype complex128"),
    (dict(x_train=np.zeros((5, 5), bool)), "x_train must be real numbers .* dtype bool"),
    (dict(n_classes=2.0), "n_classes must be an integer >= 1, got 2.0"),
    (dict(n_classes="10"), "n_classes must be an integer"),
])
def test_dataset_refuses_mismatched_arrays(change, message):
    arrays = dict(x_train=np.zeros((5, 5)), y_train=np.zeros(5, np.int64),
                  x_test=np.zeros((3, 5)), y_test=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=message):
        Dataset(**{**arrays, **change})


def test_trainer_needs_a_config_and_a_dataset(tmp_path):
    x, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    data = Dataset(x, y, x, y, n_classes=2)
    with pytest.raises(ValueError, match="data must be an eventsim.Dataset, got tuple"):
        Trainer(TrainConfig(hidden=(4,)), (x, y), tmp_path)
    with pytest.raises(ValueError, match="config must be an eventsim.TrainConfig, got dict"):
        Trainer({"hidden": (4,)}, data, tmp_path)


def test_trainer_refuses_an_empty_or_file_out_dir(tmp_path, monkeypatch):
    """An empty out_dir would train into the current directory and a file cannot
    hold checkpoints: both are refused by the constructor, not at the first save."""
    monkeypatch.chdir(tmp_path)
    x, y = np.zeros((4, 3)), np.array([0, 1, 0, 1])
    data = Dataset(x, y, x, y, n_classes=2)
    (tmp_path / "afile").write_text("")
    for out, message in (("", "empty name"), (" ", "empty name"),
                         ("afile", "afile: it is a file, not a directory"),
                         (tmp_path / "afile", "it is a file")):
        with pytest.raises(ValueError, match=message):
            Trainer(TrainConfig(hidden=(2,), epochs=1), data, out, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]
    trainer = Trainer(TrainConfig(hidden=(2,), epochs=1), data, tmp_path / "new" / "run",
                      progress=False)
    assert trainer.out_dir == tmp_path / "new" / "run" and not (tmp_path / "new").exists()


def test_odd_files_and_paths_are_refused(tmp_path):
    """Saving onto a directory, and loading HDF5 files whose settings are not a
    mapping or whose weights are not a group, give ValueErrors naming the path."""
    net = es.Network([3, 2], es.LIF(0.8, 0.4))
    (tmp_path / "adir").mkdir()
    with pytest.raises(ValueError, match="adir is a directory; give the name of a file"):
        net.save(tmp_path / "adir")
    assert list((tmp_path / "adir").iterdir()) == []
    for name, fill, message in (
            ("list.h5", lambda f: (f.attrs.update(network=json.dumps([1, 2])),
                                   f.create_group("weights")),
             r"list.h5 holds network settings \[1, 2\] that do not make a Network"),
            ("flat.h5", lambda f: (f.attrs.update(network=json.dumps({"sizes": [3, 2]})),
                                   f.create_dataset("weights", data=np.zeros(3))),
             r"flat.h5 is not an eventsim checkpoint \(no network/weights\)")):
        with h5py.File(tmp_path / name, "w") as f:
            fill(f)
        with pytest.raises(ValueError, match=message):
            es.Network.load(tmp_path / name)


def test_dataset_stores_checked_spike_times():
    """Integer times become float64, +inf ('no spike') is allowed, float64 input is
    not copied (MNIST-sized sets stay single) and the labels are kept."""
    x_train = np.array([[0, 1], [2, 0]])
    x_test = np.array([[0.5, np.inf]])
    data = Dataset(x_train, [0, 1], x_test, np.array([1]), n_classes=np.int64(2))
    assert data.x_train.dtype == np.float64 and data.x_test is x_test
    np.testing.assert_array_equal(data.x_train, x_train)
    np.testing.assert_array_equal(data.y_train, [0, 1])
    assert type(data.n_classes) is int


def test_config_validation():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")
    assert TrainConfig(tau_i=0.6).tau_v == 0.3
    with pytest.raises(ValueError, match="penalty_reduction"):
        TrainConfig(penalty_reduction="max")
    with pytest.raises(ValueError, match="val_size must be an integer >= 0"):
        TrainConfig(val_size=-1)


def test_config_stores_the_checked_values():
    """Numbers are stored as Python floats, ints and bools (numpy scalars and ints
    for float fields converted), so what the trainer and the checkpoints use is
    what was checked."""
    cfg = TrainConfig(hidden=[np.int64(5)], tau_i=np.float32(0.5), lr=1, t_out=np.int64(2),
                      epochs=np.int64(3), seed=np.uint8(4), single_spike=np.bool_(True),
                      init_mean=0, init_std=np.float64(0.25), min_slope=0)
    assert cfg.hidden == (5,) and cfg.tau_v == 0.25
    for name, kind in (("tau_i", float), ("tau_v", float), ("lr", float), ("t_out", float),
                       ("init_mean", float), ("init_std", float), ("min_slope", float),
                       ("epochs", int), ("seed", int), ("single_spike", bool)):
        assert type(getattr(cfg, name)) is kind, name
    assert cfg == TrainConfig(hidden=(5,), tau_i=0.5, tau_v=0.25, lr=1.0, t_out=2.0, epochs=3,
                              seed=4, single_spike=True, init_mean=0.0, init_std=0.25)


def test_summed_penalties_equal_batch_scaled_means(small_data, tmp_path):
    """penalty_reduction='sum' with (lambda, sigma) trains exactly like 'mean' with
    (lambda * B, sigma * B): the regularisers are summed over each batch of B."""
    batch = 50
    summed = Trainer(small_config(batch_size=batch, train_subset=200, dead_penalty=0.3,
                                  output_l2=1e-3), small_data, tmp_path / "sum", progress=False)
    mean = Trainer(small_config(batch_size=batch, train_subset=200, dead_penalty=0.3 * batch,
                                output_l2=1e-3 * batch, penalty_reduction="mean"),
                   small_data, tmp_path / "mean", progress=False)
    unscaled = Trainer(small_config(batch_size=batch, train_subset=200, dead_penalty=0.3,
                                    output_l2=1e-3, penalty_reduction="mean"),
                       small_data, tmp_path / "unscaled", progress=False)
    rows = [t.train_epoch() for t in (summed, mean, unscaled)]
    assert rows[0]["train_loss"] == pytest.approx(rows[1]["train_loss"], rel=1e-12)
    for a, b in zip(summed.net.weights, mean.net.weights):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert not np.allclose(summed.net.weights[0], unscaled.net.weights[0])


def run_example(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["train_mnist.py", *args])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "examples" / "train_mnist.py"), run_name="__main__")
    return stop.value.code, capsys.readouterr()


def test_train_mnist_example_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    common = ["--hidden", "30", "--train-subset", "300", "--out", str(out), "--no-progress",
              "--seed", "2"]
    code, cap = run_example(["--epochs", "1", "--resume", *common], monkeypatch, capsys)
    assert code == 0 and "no checkpoint in" in cap.out   # --resume on a fresh --out
    summary = json.loads(cap.out.strip().splitlines()[-1])
    assert summary["epochs"] == 1 and summary["device"] == "cpu"
    assert json.loads((out / "summary.json").read_text()) == summary
    code, cap = run_example(["--epochs", "1", *common], monkeypatch, capsys)
    assert code == 2 and "--resume" in cap.err
    code, cap = run_example(["--epochs", "2", "--resume", *common], monkeypatch, capsys)
    assert code == 0 and "resumed" in cap.out
    assert json.loads(cap.out.strip().splitlines()[-1])["epochs"] == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 3
    for flags, message in ((["--epochs", "1"], "already holds 2 epochs, more than --epochs 1"),
                           (["--epochs", "3", "--lr", "0.002"], "trained with lr=0.001")):
        code, cap = run_example([*flags, "--resume", *common], monkeypatch, capsys)
        assert code == 2 and cap.err.startswith("error:") and message in cap.err
        assert "Traceback" not in cap.err
    net = es.Network.load(out / "model.h5")
    assert net.sizes == [784, 30, 10]
    saved = _io.load_checkpoint(out / "model.h5")
    assert saved["extra"]["config"]["lr"] == 1e-3 and saved["epoch"] == 2


def test_train_mnist_example_stops_on_sigterm(tmp_path, monkeypatch, capsys,
                                              sigterm_after_first_checkpoint):
    """SIGTERM after the first epoch's checkpoint stops the script like Ctrl-C:
    exit code 130, a note on --resume, the previous SIGTERM handler back in
    place, that checkpoint intact and no temp files; --resume then finishes."""
    out = tmp_path / "run"
    flags = ["--epochs", "2", "--hidden", "20", "--train-subset", "200", "--out", str(out),
             "--no-progress"]
    code, cap = run_example(flags, monkeypatch, capsys)
    assert code == 130 and "Traceback" not in cap.err
    assert "the last complete epoch (1) is saved" in cap.err and "--resume" in cap.err
    assert signal.getsignal(signal.SIGTERM) == sigterm_after_first_checkpoint
    assert _io.load_checkpoint(out / "checkpoint.h5")["epoch"] == 1
    assert {p.name for p in out.iterdir()} <= {"checkpoint.h5", "metrics.csv"}
    code, cap = run_example([*flags, "--resume"], monkeypatch, capsys)
    assert code == 0 and json.loads(cap.out.strip().splitlines()[-1])["epochs"] == 2
    assert len((out / "metrics.csv").read_text().splitlines()) == 3


def test_train_mnist_example_interrupted_in_first_epoch(tmp_path, monkeypatch, capsys):
    """Ctrl-C before any epoch has finished: the note says nothing was saved
    (rather than pointing at a checkpoint that does not exist)."""
    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_epoch", interrupt)
    out = tmp_path / "run"
    code, cap = run_example(["--hidden", "20", "--train-subset", "200", "--out", str(out),
                             "--no-progress"], monkeypatch, capsys)
    assert code == 130 and "nothing was saved" in cap.err and "--resume" not in cap.err
    assert not (out / "checkpoint.h5").exists()


def test_train_mnist_example_keeps_finished_runs(tmp_path, monkeypatch, capsys):
    """Without its checkpoint, a finished run's model and summary are not
    overwritten by a new run in the same --out."""
    out = tmp_path / "run"
    flags = ["--epochs", "1", "--hidden", "20", "--train-subset", "200", "--out", str(out),
             "--no-progress"]
    assert run_example(flags, monkeypatch, capsys)[0] == 0
    model = (out / "model.h5").read_bytes()
    (out / "checkpoint.h5").unlink()
    for extra in ([], ["--resume"], ["--seed", "5"]):
        code, cap = run_example([*flags, *extra], monkeypatch, capsys)
        assert code == 2 and cap.err.startswith("error:") and "holds a finished run" in cap.err
        assert "Traceback" not in cap.err and cap.out == ""
    assert (out / "model.h5").read_bytes() == model


def test_train_mnist_example_reports_divergence(tmp_path, monkeypatch, capsys):
    """Runaway firing (here from a huge learning rate) ends the run with one
    error line that names the flags to change, not a traceback."""
    code, cap = run_example(["--epochs", "1", "--hidden", "20", "--train-subset", "300",
                             "--lr", "1e6", "--out", str(tmp_path / "run"), "--no-progress"],
                            monkeypatch, capsys)
    assert code == 2 and "Traceback" not in cap.err
    assert cap.err.startswith("error: training diverged in epoch 1 (neuron")
    assert "max_spikes_per_neuron" in cap.err and "--lr or --init-std" in cap.err


def test_train_mnist_example_reports_missing_data(tmp_path, monkeypatch, capsys):
    code, cap = run_example(["--data-dir", str(tmp_path / "nowhere"), "--out",
                             str(tmp_path / "run")], monkeypatch, capsys)
    assert code == 2 and "error:" in cap.err and "not found" in cap.err


def test_train_mnist_defaults_are_the_paper_protocol():
    from eventsim._cli import training_config

    script = runpy.run_path(str(ROOT / "examples" / "train_mnist.py"), run_name="train_mnist")
    args = script["parse_args"]([])
    config = training_config(args, tau_i=args.tau_i, tau_v=args.tau_v,
                             single_spike=args.single_spike, seed=args.seed)
    assert config == TrainConfig()
    assert (config.hidden, config.tau_i, config.tau_v, config.epochs, config.batch_size,
            config.lr, config.dead_penalty, config.output_l2) == \
        ((400,), 0.8, 0.4, 100, 100, 1e-3, 0.01, 1e-4)
    assert (config.init_mean, config.init_std ** 2) == (0.03, pytest.approx(0.3))


def test_train_mnist_help_states_the_defaults(monkeypatch, capsys):
    code, cap = run_example(["--help"], monkeypatch, capsys)
    options = " ".join(cap.out.split("options:")[1].split())  # argparse wraps lines
    assert code == 0
    for flag, default in (("--epochs", "100"), ("--batch-size", "100"), ("--lr", "0.001"),
                          ("--hidden", "400"), ("--dead-penalty", "0.01"),
                          ("--output-l2", "0.0001"), ("--tau-i", "0.8"), ("--device", "cpu")):
        flag_help = options.split(f"{flag} ", 1)[1].split(" --", 1)[0]
        assert f"(default: {default})" in flag_help, flag
    assert "(default: None)" not in options and "(default: False)" not in options


def test_train_mnist_example_reports_bad_settings(tmp_path, monkeypatch, capsys):
    for flags, message in ((["--epochs", "0"], "epochs must be an integer >= 1"),
                           (["--init-std", "-1"], "init_std must be a finite number >= 0"),
                           (["--tau-i", "0"], "tau"),
                           (["--val-size", "60000"], "val_size must be in [0, 60000)"),
                           (["--train-subset", "58000", "--val-size", "5000"],
                            "train_subset must be <= 55000")):
        code, cap = run_example([*flags, "--out", str(tmp_path / "run")], monkeypatch, capsys)
        assert code == 2 and cap.err.startswith("error:") and message in cap.err
        assert "Traceback" not in cap.err


def test_command_line_hidden_sizes():
    from argparse import ArgumentTypeError

    from eventsim._cli import parse_hidden

    assert parse_hidden("400") == (400,) and parse_hidden(" 400, 300 ") == (400, 300)
    for bad in ("", "400,,10", "400,", "0", "-5", "4.5", "a"):
        with pytest.raises(ArgumentTypeError, match="comma-separated positive integers"):
            parse_hidden(bad)


def test_train_mnist_example_reports_unwritable_out(tmp_path, monkeypatch, capsys):
    """An --out that cannot be created (here: below a file) stops the script at
    once with a clear error, before any data is loaded or epoch trained."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, cap = run_example(["--out", str(blocker / "run"), "--data-dir",
                             str(tmp_path / "nowhere")], monkeypatch, capsys)
    assert code == 2 and cap.err.startswith("error: cannot write to the output directory")
    assert str(blocker / "run") in cap.err and "Traceback" not in cap.err
    code, cap = run_example(["--out", ""], monkeypatch, capsys)
    assert code == 2 and cap.err.startswith("error: the output directory is an empty name")
    assert _io.writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list((tmp_path / "a" / "b").iterdir()) == []
