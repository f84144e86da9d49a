"""examples/plot_traces.py: the Fig. 2-style figure for a random layer and for a saved model."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eventsim as es

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def traces(load_example):
    return load_example("plot_traces")


def assert_png(path):
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 20_000


def test_random_layer_figure(traces, tmp_path):
    out = traces.main(["--out", str(tmp_path / "fig" / "traces.png"), "--digit-index", "3"])
    assert_png(out)


@pytest.mark.parametrize("single_spike", [False, True])
def test_saved_model_figure(traces, tmp_path, single_spike):
    net = es.Network([784, 12, 10], es.LIF(tau_i=1.0, tau_v=0.5), single_spike=single_spike,
                     seed=1)
    net.save(tmp_path / "model.h5")
    out = traces.main(["--model", str(tmp_path / "model.h5"), "--out", str(tmp_path / "m.png")])
    assert_png(out)


@pytest.mark.parametrize("sizes, single_spike", [([30, 8, 4], False), ([30, 8, 6, 4], True)])
def test_model_traces_match_the_forward_pass(traces, sizes, single_spike):
    """The traces end where Network.forward ends: V_out(t_out) = v_out and the hidden
    V(t_out) = v_hidden."""
    net = es.Network(sizes, es.LIF(tau_i=0.8, tau_v=0.4), t_out=1.3,
                     single_spike=single_spike, seed=2)
    net.weights = [2.0 * w + 1.0 for w in net.weights]   # every hidden layer fires
    rng = np.random.default_rng(0)
    times = rng.uniform(0.0, 1.0, 20)
    ids = rng.choice(sizes[0], 20, replace=False)
    grid = np.linspace(0.0, net.t_out, 50)
    t_eval, hidden, V, I, V_out = traces.model_traces(net, times, ids, grid)

    x = np.full((1, sizes[0]), np.inf)
    x[0, ids] = times
    res = net.forward(x)
    assert t_eval[-1] == net.t_out and np.isin(hidden.times, t_eval).all()
    assert hidden == res.spikes(len(sizes) - 3, 0) and len(hidden) > 0
    np.testing.assert_allclose(V_out[-1], res.v_out[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(V[-1], res.v_hidden[-1][0], rtol=1e-12, atol=1e-12)
    assert V.shape == I.shape == (t_eval.size, sizes[-2])


def test_data_dir_is_used(traces, tmp_path):
    """MNIST is read from --data-dir (here: all files but one, copied from the
    repository), and the missing file's error says how to point the script at
    the data."""
    import shutil

    from eventsim.datasets import MNIST_FILES, mnist

    for name in list(MNIST_FILES)[:-1]:
        shutil.copy(mnist().data_dir / name, tmp_path / name)
    missing = list(MNIST_FILES)[-1]
    with pytest.raises(es.MissingDataError, match=f"{missing} not found in {tmp_path} "
                       r"\(directory chosen from the data_dir argument.* as --data-dir of "
                       "the example scripts"):
        traces.main(["--data-dir", str(tmp_path), "--out", str(tmp_path / "t.png")])
    assert not (tmp_path / "t.png").exists()


def test_digit_index_out_of_range(traces, tmp_path):
    with pytest.raises(ValueError, match="--digit-index must be in"):
        traces.main(["--out", str(tmp_path / "x.png"), "--digit-index", "10000"])


def test_out_and_model_are_checked_first(traces, tmp_path):
    assert traces.check_out(tmp_path / "a" / "fig") == tmp_path / "a" / "fig.png"
    assert (tmp_path / "a").is_dir()
    with pytest.raises(ValueError, match="is a directory"):
        traces.check_out(tmp_path)
    for sizes in ([100, 20, 10], [784, 10]):
        path = tmp_path / "net.h5"
        es.Network(sizes, es.LIF(0.8, 0.4)).save(path)
        with pytest.raises(ValueError, match="needs 784 inputs .* at least one hidden layer"):
            traces.main(["--model", str(path), "--out", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


def test_command_line_errors_are_one_line(tmp_path):
    script = Path(__file__).parents[1] / "examples" / "plot_traces.py"
    for args, message in ((["--model", str(tmp_path / "none.h5")], "error: no checkpoint at"),
                          (["--tau-i", "0"], "error: tau_i must be a positive finite number"),
                          (["--seed", "-1"], "error: --seed must be an integer >= 0, got -1"),
                          (["--data-dir", str(tmp_path / "nowhere")],
                           f"not found in {tmp_path / 'nowhere'} (directory chosen from "
                           "the data_dir argument")):
        run = subprocess.run([sys.executable, str(script), *args, "--out",
                              str(tmp_path / "x.png")], capture_output=True, text=True)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x.png").exists()


def test_rescaling_reaches_moderate_activity(traces):
    """Weights 100x too small are scaled up until the layer fires, and the scale is reported."""
    rng = np.random.default_rng(0)
    times = rng.uniform(0.0, 0.9, 150)
    ids = np.arange(150)
    w0 = rng.normal(0.03, np.sqrt(0.3), size=(150, 40)) / 100.0
    w, out, scale = traces.simulate_scaled(times, ids, w0, es.LIF(tau_i=0.8, tau_v=0.4))
    assert scale > 1.0
    np.testing.assert_array_equal(w, w0 * scale)
    assert traces.activity_ok(out.counts()) == 0
    assert out == es.simulate_layer(times, ids, w, es.LIF(tau_i=0.8, tau_v=0.4), t_end=1.0)


def test_with_resets_draws_each_spike_as_a_peak(traces):
    t = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    v = np.array([0.0, 0.6, 0.0, 0.4, 0.0])   # right-continuous: V(spike) == 0
    tt, vv = traces.with_resets(t, v, np.array([0.5, 1.0]), 1.0)
    np.testing.assert_array_equal(tt, [0.0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0])
    np.testing.assert_array_equal(vv, [0.0, 0.6, 1.0, 0.0, 0.4, 1.0, 0.0])


def test_rescaling_gives_up_with_an_error(traces):
    """A layer that no scale in reach makes fire is an error, not a figure whose
    title claims moderate activity."""
    times, ids = np.array([0.1, 0.5]), np.array([0, 1])
    w0 = np.full((2, 5), 1e-6)
    with pytest.raises(ValueError, match="no weight scale"):
        traces.simulate_scaled(times, ids, w0, es.LIF(tau_i=0.8, tau_v=0.4))
