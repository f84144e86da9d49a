"""examples/summarize_runs.py: statistics over seeds, checked against the runs' metrics.csv."""

import csv
import json
import statistics
from dataclasses import replace

import h5py
import pytest

import eventsim as es
from eventsim import _io
from eventsim._train import Dataset, TrainConfig, Trainer


@pytest.fixture(scope="module")
def script(load_example):
    return load_example("summarize_runs")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data = es.mnist()
    tiny = Dataset(es.latency_encode(data.train_images[:700]), data.train_labels[:700],
                   es.latency_encode(data.test_images[:300]), data.test_labels[:300])
    root = tmp_path_factory.mktemp("runs")
    base = TrainConfig(hidden=(12,), epochs=2, train_subset=300, eval_batch_size=300,
                       init_std=0.3, lr=0.01)
    configs = {
        "a_s0": replace(base, seed=0),
        "a_s1": replace(base, seed=1),
        # the same per-sample penalty weights written the other way: the same setting
        "a_s2": replace(base, seed=2, penalty_reduction="mean", dead_penalty=0.01 * 100,
                        output_l2=1e-4 * 100),
        "b_s0": replace(base, seed=0, init_std=0.2, val_size=200),
        "b_s4": replace(base, seed=4, init_std=0.2, val_size=200),
        "cut": replace(base, seed=5),
    }
    for name, config in configs.items():
        Trainer(config, tiny, root / "sub" / name, progress=False).fit()
    # a_s0's setting tested on fewer images: accuracies not comparable, another group
    fewer = Dataset(tiny.x_train, tiny.y_train, tiny.x_test[:200], tiny.y_test[:200])
    Trainer(replace(base, seed=3), fewer, root / "sub" / "a_s3_test200", progress=False).fit()
    with h5py.File(root / "sub" / "cut" / "checkpoint.h5", "r+") as f:   # as if stopped
        extra = json.loads(f.attrs["extra"])
        extra["config"]["epochs"] = 5
        f.attrs["extra"] = json.dumps(extra)
        f.attrs[_io.DIGEST] = _io._content_digest(f)
    _io.stamp_header(root / "sub" / "cut" / "checkpoint.h5")
    return root


def metrics(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: float(v) if v else None for k, v in row.items()} for row in csv.DictReader(f)]


def test_groups_and_statistics(script, runs):
    records, unreadable = script.read_records(script.find_runs([runs]))
    assert unreadable == []
    groups = script.summarize(records)
    assert [g["runs"] for g in groups] == [1, 3, 2, 0]
    fewer, a, b, cut = groups
    common = "--hidden 12 --epochs 2 --lr 0.01 --train-subset 300"
    assert a["setting"] == f"{common} --init-std 0.3 (tested on 300 images)"  # a_s0/1's flags
    assert fewer["setting"] == f"{common} --init-std 0.3 (tested on 200 images)"
    assert fewer["complete"][0]["seed"] == 3
    assert b["setting"] == f"{common} --val-size 200 --init-std 0.2 (tested on 300 images)"
    for group, names in ((a, ["a_s0", "a_s1", "a_s2"]), (b, ["b_s0", "b_s4"])):
        rows = [metrics(runs / "sub" / n) for n in names]
        finals = [r[-1]["test_acc"] for r in rows]
        seeds = [r["seed"] for r in group["complete"]]
        assert seeds == sorted(seeds) and len(set(seeds)) == len(names)
        assert [r["final"] for r in group["complete"]] == finals
        assert group["final_mean"] == pytest.approx(statistics.mean(finals), abs=1e-15)
        assert group["final_se"] == pytest.approx(statistics.stdev(finals) / len(finals) ** 0.5,
                                                  rel=1e-12)
        assert group["best_mean"] == pytest.approx(
            statistics.mean(max(row["test_acc"] for row in r) for r in rows), abs=1e-15)
    picked = []
    for name in ("b_s0", "b_s4"):
        rows = metrics(runs / "sub" / name)
        best = max(rows, key=lambda row: (row["val_acc"], -row["epoch"]))
        picked.append(best["test_acc"])
    assert b["test_at_best_val_mean"] == pytest.approx(statistics.mean(picked), abs=1e-15)
    assert a["test_at_best_val_mean"] is None
    assert a["incomplete"] == b["incomplete"] == cut["complete"] == []
    assert cut["incomplete"] == [{"run": str(runs / "sub" / "cut"), "seed": 5, "epochs_done": 2}]
    assert cut["final_mean"] is None


def test_table_and_errors(script, runs, tmp_path, capsys):
    assert script.main([str(runs)]) == 0
    table = capsys.readouterr().out
    # the setting whose only run is unfinished gets no row, only the line below
    assert table.count("\n| --hidden") == 3 and "| 3 |" in table and "| 2 |" in table
    assert "2 of 5 epochs" in table
    assert script.main([str(runs), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 4
    assert script.main([str(tmp_path / "none")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert script.main([str(tmp_path)]) == 2
    assert "no checkpoint.h5 found" in capsys.readouterr().err


def test_copies_and_unreadable_runs_are_left_out(script, runs, tmp_path, capsys):
    """A copy of a run is the same seed again: counting it would shrink the
    standard error. An unreadable checkpoint is reported, not fatal."""
    import shutil
    root = tmp_path / "runs"
    shutil.copytree(runs / "sub", root)
    shutil.copytree(root / "a_s1", root / "a_s1_copy")
    (root / "broken").mkdir()
    (root / "broken" / "checkpoint.h5").write_bytes(b"not hdf5")
    assert script.main([str(root)]) == 0
    cap = capsys.readouterr()
    assert f"skipped {root / 'broken'}: " in cap.err and "not a readable HDF5 file" in cap.err
    assert f"not counted: {root / 'a_s1_copy'}" in cap.out and "seed 1 again" in cap.out
    records, unreadable = script.read_records(script.find_runs([root]))
    assert len(records) == 8 and len(unreadable) == 1
    a = script.summarize(records)[1]
    assert a["runs"] == 3 and [r["seed"] for r in a["complete"]] == [0, 1, 2]
    assert a["duplicates"] == [{"run": str(root / "a_s1_copy"), "seed": 1,
                                "final": a["complete"][1]["final"]}]
    (root / "only").mkdir()
    (root / "only" / "checkpoint.h5").write_bytes(b"not hdf5")
    assert script.main([str(root / "only")]) == 2
    assert "error: no readable run" in capsys.readouterr().err


def test_sum_and_mean_penalties_are_one_setting_only_with_full_batches(script):
    """With a last, partial batch, "sum" weights its penalties by its own size and
    "mean" by the full batch's, so the runs differ (only full batches merge)."""
    for subset, batch, same in ((300, 100, True), (450, 64, False), (None, 100, True),
                                (None, 128, False)):
        summed = TrainConfig(train_subset=subset, batch_size=batch)
        averaged = replace(summed, penalty_reduction="mean", dead_penalty=0.01 * batch,
                           output_l2=1e-4 * batch)
        assert (script.setting_key(summed) == script.setting_key(averaged)) is same
