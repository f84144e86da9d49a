"""examples/tau_sweep.py: a tiny sweep writes sweep.csv and Figs. 3-5, replots, resumes."""

import csv
import json
import signal

import numpy as np
import pytest

import eventsim as es
from eventsim import _io


@pytest.fixture(scope="module")
def sweep(load_example):
    return load_example("tau_sweep")


def read_rows(out):
    with open(out / "sweep.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_tau_sweep_end_to_end(sweep, tmp_path, capsys):
    out = tmp_path / "sweep"
    args = ["--taus", "0.4", "0.8", "--epochs", "1", "--train-subset", "300",
            "--eval-subset", "200", "--hidden", "20", "--out", str(out)]
    assert sweep.main(args) == 0
    printed = capsys.readouterr().out
    assert printed.count("trained epoch 1;") == 4   # one progress line per run
    assert printed.count("epoch   1  loss") == 4    # and each run's per-epoch lines

    for name in sweep.FIGURES:
        assert (out / name).stat().st_size > 10_000
    assert not list(out.rglob("*.tmp"))   # every file is written via a temp file
    rows = read_rows(out)
    data = es.mnist()
    x_eval, y_eval = es.latency_encode(data.test_images[:200]), data.test_labels[:200]
    assert list(rows[0])[:8] == ["mode", "tau_i", "tau_v", "seed", "test_acc",
                                 "mean_spikes_per_neuron", "epochs", "train_samples"]
    assert [(r["mode"], float(r["tau_i"]), float(r["tau_v"]), int(r["seed"])) for r in rows] \
        == [("multi", 0.4, 0.2, 0), ("multi", 0.8, 0.4, 0),
            ("single", 0.4, 0.2, 0), ("single", 0.8, 0.4, 0)]
    for r in rows:
        assert int(r["epochs"]) == 1 and int(r["train_samples"]) == 300
        assert int(r["eval_samples"]) == 200 and r["hidden"] == "20"
        assert 0.0 <= float(r["test_acc"]) <= 1.0
        run = out / f"{r['mode']}_tau{float(r['tau_i']):g}_seed0"
        counts = np.load(run / "spike_counts.npy")
        assert counts.shape == (20,) and (counts >= 0).all()
        res = es.Network.load(run / "model.h5").forward(x_eval)
        np.testing.assert_allclose(counts, res.spike_counts[0].mean(axis=0), rtol=1e-14)
        assert float(r["test_acc"]) == np.mean(res.v_out.argmax(axis=1) == y_eval)
        assert float(r["mean_spikes_per_neuron"]) == pytest.approx(counts.mean())
        assert json.loads((run / "summary.json").read_text())["epochs"] == 1
        if r["mode"] == "single":
            assert counts.max() <= 1.0   # at most one spike per neuron and sample

    # --plot-only rebuilds the csv and figures from the run directories alone
    for name in (*sweep.FIGURES, "sweep.csv"):
        (out / name).unlink()
    assert sweep.main(["--out", str(out), "--plot-only"]) == 0
    assert all((out / name).is_file() for name in sweep.FIGURES)
    assert read_rows(out) == rows
    capsys.readouterr()

    # a rerun skips the finished runs (model files untouched) and only adds the new seed
    stamp = (out / "multi_tau0.4_seed0" / "model.h5").stat().st_mtime_ns
    assert sweep.main(args[:-2] + ["--modes", "multi", "--seeds", "0", "1",
                                   "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("skipped (done)") == 2 and printed.count("trained epoch 1;") == 2
    assert (out / "multi_tau0.4_seed0" / "model.h5").stat().st_mtime_ns == stamp
    assert len(read_rows(out)) == 6


def test_tau_sweep_refuses_other_settings(sweep, tmp_path, capsys):
    out = tmp_path / "sweep"
    base = ["--taus", "0.8", "--modes", "single", "--epochs", "1", "--train-subset", "100",
            "--eval-subset", "100", "--out", str(out)]
    assert sweep.main(base + ["--hidden", "10"]) == 0
    assert sweep.main(base + ["--hidden", "12"]) == 2
    assert "hidden" in capsys.readouterr().err


def test_plot_only_on_empty_dir_fails(sweep, tmp_path):
    assert sweep.main(["--out", str(tmp_path), "--plot-only"]) == 1
    assert not (tmp_path / "sweep.csv").exists()


def test_fig3_tau_choice(sweep):
    assert sweep.pick_fig3_taus([0.2, 0.4, 0.8, 6.4], [0.2, 0.4, 6.4]) == [0.2, 0.4, 6.4]
    assert sweep.pick_fig3_taus([0.2, 0.8, 3.2], [0.2, 0.4, 6.4]) == [0.2, 0.8, 3.2]
    assert sweep.pick_fig3_taus([0.1, 0.2, 0.8, 1.6, 3.2], [0.4]) == [0.1, 0.8, 3.2]


def test_tau_sweep_resumes_from_checkpoint(sweep, tmp_path, capsys):
    out = tmp_path / "sweep"
    base = ["--taus", "0.8", "--modes", "multi", "--train-subset", "100", "--eval-subset", "100",
            "--hidden", "10", "--out", str(out)]
    assert sweep.main(base + ["--epochs", "1"]) == 0
    run = out / "multi_tau0.8_seed0"
    (run / "summary.json").unlink()            # as if killed after the epoch's checkpoint
    (run / "eval.json").unlink()
    capsys.readouterr()
    assert sweep.main(base + ["--epochs", "2"]) == 0
    assert "resumed after epoch 1, trained epoch 2;" in capsys.readouterr().out
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    assert [int(r["epochs"]) for r in read_rows(out)] == [2]
    assert sweep.main(base + ["--epochs", "1"]) == 2   # fewer epochs than trained: refused
    assert "more than --epochs 1" in capsys.readouterr().err


def test_tau_sweep_stops_on_sigterm(sweep, tmp_path, capsys, sigterm_after_first_checkpoint):
    """SIGTERM during a run stops the sweep like Ctrl-C, keeping that run's last
    checkpoint; the same command then resumes and finishes it."""
    out = tmp_path / "sweep"
    argv = ["--taus", "0.8", "--modes", "multi", "--train-subset", "100", "--eval-subset",
            "100", "--hidden", "10", "--epochs", "2", "--out", str(out)]
    assert sweep.main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted: the last complete epoch (1) is saved" in err and "rerun" in err
    assert signal.getsignal(signal.SIGTERM) == sigterm_after_first_checkpoint
    run = out / "multi_tau0.8_seed0"
    assert _io.load_checkpoint(run / "checkpoint.h5")["epoch"] == 1
    assert not (run / "summary.json").exists()
    assert sweep.main(argv) == 0
    assert "resumed after epoch 1, trained epoch 2;" in capsys.readouterr().out


def test_sweep_passes_training_flags_to_its_runs(sweep):
    """The sweep's runs get the same TrainConfig fields as train_mnist.py's flags."""
    from eventsim._cli import training_config
    from eventsim._train import TrainConfig

    args = sweep.parse_args(["--penalty-reduction", "mean", "--init-mean", "0.01",
                             "--init-std", "0.25", "--min-slope", "0.1", "--hidden", "30,20",
                             "--output-l2", "0.002", "--train-subset", "50"])
    config = training_config(args, tau_i=0.8, tau_v=0.4, single_spike=True, seed=3)
    assert config == TrainConfig(hidden=(30, 20), tau_i=0.8, tau_v=0.4, single_spike=True,
                                 seed=3, penalty_reduction="mean", init_mean=0.01,
                                 init_std=0.25, min_slope=0.1, output_l2=0.002,
                                 train_subset=50)
    assert training_config(sweep.parse_args([]), tau_i=0.8, seed=0) == TrainConfig()


@pytest.mark.parametrize("argv", [["--taus", "0.8", "-1"], ["--taus", "nan"], ["--p", "0"],
                                  ["--seeds", "0", "-2"], ["--eval-subset", "0"]])
def test_bad_arguments_are_refused(sweep, argv, capsys):
    with pytest.raises(SystemExit):
        sweep.parse_args(argv)
    assert "must be" in capsys.readouterr().err


def test_p_equal_to_one_is_allowed(sweep):
    """tau_I = tau_V (p = 1) has its own exact formula in the engine."""
    args = sweep.parse_args(["--p", "1", "--taus", "0.8"])
    assert args.p == 1.0 and args.taus == [0.8]


def test_a_diverged_run_does_not_stop_the_sweep(sweep, tmp_path, capsys, monkeypatch):
    """Runaway firing in one run (SpikeLimitError) marks it FAILED; the others
    are trained and plotted, and the exit status says that one failed."""
    from eventsim._train import Trainer

    fit = Trainer.fit

    def fit_or_diverge(self):
        if self.config.tau_i == 0.4:
            raise es.SpikeLimitError("neuron 3 (sample 0) fired more than 10000 times")
        return fit(self)

    monkeypatch.setattr(Trainer, "fit", fit_or_diverge)
    out = tmp_path / "sweep"
    assert sweep.main(["--taus", "0.4", "0.8", "--modes", "multi", "--epochs", "1",
                       "--train-subset", "100", "--eval-subset", "100", "--hidden", "10",
                       "--out", str(out), "--quiet"]) == 1
    cap = capsys.readouterr()
    assert "tau_i=0.4   tau_v=0.2    seed=0: FAILED: neuron 3" in cap.out
    assert "trained epoch 1;" in cap.out and "epoch   1  loss" not in cap.out   # --quiet
    assert "1 run(s) failed: multi_tau0.4_seed0" in cap.err
    assert [float(r["tau_i"]) for r in read_rows(out)] == [0.8]


def test_missing_data_is_one_error_line(sweep, tmp_path, capsys):
    assert sweep.main(["--data-dir", str(tmp_path / "nowhere"), "--out",
                       str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "not found" in err and "Traceback" not in err


@pytest.mark.parametrize("plot_only", [[], ["--plot-only"]])
def test_empty_or_file_out_is_refused(sweep, tmp_path, monkeypatch, capsys, plot_only):
    """--out "" would mean the current directory (as train_mnist.py refuses too) and
    --out naming a file cannot hold runs: both stop at once, nothing written."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    for out, message in (("", "the output directory is an empty name"),
                         ("  ", "the output directory is an empty name"),
                         ("afile", "cannot write to the output directory afile: it is a file")):
        assert sweep.main(["--taus", "0.8", "--epochs", "1", "--train-subset", "10",
                           "--out", out, *plot_only]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]
