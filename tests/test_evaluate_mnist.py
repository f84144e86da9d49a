"""examples/evaluate_mnist.py: metrics of a saved network on MNIST, and its errors."""

import json

import numpy as np
import pytest

import eventsim as es


@pytest.fixture(scope="module")
def script(load_example):
    return load_example("evaluate_mnist")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    net = es.Network([784, 25, 10], es.LIF(0.8, 0.4), seed=5, init_std=0.2)
    path = tmp_path_factory.mktemp("model") / "model.h5"
    net.save(path)
    return path, net


def test_metrics_of_a_saved_network(script, model, capsys):
    path, net = model
    assert script.main([str(path), "--batch-size", "700"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    data = es.mnist()
    x = es.latency_encode(data.test_images)
    predicted = net.predict(x)
    assert out["samples"] == 10_000 and out["split"] == "test"
    assert out["accuracy"] == pytest.approx(np.mean(predicted == data.test_labels), abs=1e-15)
    class_sizes = np.bincount(data.test_labels, minlength=10)
    np.testing.assert_allclose(out["per_class_accuracy"],
                               [np.mean(predicted[data.test_labels == c] == c)
                                for c in range(10)], atol=1e-6)
    assert np.dot(out["per_class_accuracy"], class_sizes) / 10_000 == \
        pytest.approx(out["accuracy"], abs=1e-5)
    counts = np.concatenate([net.forward(x[i:i + 2500]).spike_counts[0]
                             for i in range(0, 10_000, 2500)])
    assert out["spikes_per_hidden_neuron"] == pytest.approx(counts.mean(), rel=1e-12)
    assert out["silent_hidden_fraction"] == np.mean(~(counts > 0).any(axis=0))
    v_out = np.concatenate([net.forward(x[i:i + 2500]).v_out for i in range(0, 10_000, 2500)])
    shifted = v_out - v_out.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    assert out["cross_entropy"] == pytest.approx(
        -log_p[np.arange(10_000), data.test_labels].mean(), rel=1e-12)


def test_errors(script, model, tmp_path, capsys):
    assert script.main([str(tmp_path / "missing.h5")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    small = tmp_path / "small.h5"
    es.Network([20, 5, 10], es.LIF(0.8, 0.4)).save(small)
    assert script.main([str(small)]) == 2
    assert "784 inputs and 10 outputs" in capsys.readouterr().err
    assert script.main([str(model[0]), "--batch-size", "0"]) == 2
    assert "batch_size must be an integer >= 1" in capsys.readouterr().err
