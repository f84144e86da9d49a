"""es.evaluate against per-sample metrics computed directly from Network.forward."""

import re

import numpy as np
import pytest

import eventsim as es


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(4)
    net = es.Network([12, 9, 7, 4], es.LIF(0.8, 0.4), seed=2, init_std=0.4)
    x = rng.uniform(0.0, 1.0, (23, 12))
    y = rng.choice([0, 1, 3], size=23)          # label 2 never occurs
    return net, x, y


def test_matches_direct_metrics(setup):
    net, x, y = setup
    res = net.forward(x)
    predicted = res.v_out.argmax(axis=1)
    shifted = res.v_out - res.v_out.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    counts = np.concatenate(res.spike_counts, axis=1)       # (23, 16 hidden neurons)
    for batch_size in (1, 5, 23, 100):                      # uneven last batch included
        m = es.evaluate(net, x, y, batch_size=batch_size)
        assert m.samples == 23
        assert m.accuracy == np.mean(predicted == y)
        assert m.cross_entropy == pytest.approx(-log_p[np.arange(23), y].mean(), rel=1e-12)
        np.testing.assert_allclose(m.spikes_per_neuron, counts.mean(axis=0), rtol=1e-14)
        assert m.spikes_per_hidden_neuron == pytest.approx(counts.mean(), rel=1e-12)
        assert m.silent_hidden_fraction == np.mean(~(counts > 0).any(axis=0))
        for c in (0, 1, 3):
            assert m.per_class_accuracy[c] == np.mean(predicted[y == c] == c)
        assert np.isnan(m.per_class_accuracy[2])


def test_forward_override_is_used(setup):
    net, x, y = setup
    calls = []

    def forward(start, stop):
        calls.append((start, stop))
        return net.forward(x[start:stop])

    m = es.evaluate(net, x, y, batch_size=10, forward=forward)
    assert calls == [(0, 10), (10, 20), (20, 23)]
    assert m.accuracy == es.evaluate(net, x, y).accuracy


@pytest.mark.parametrize("labels, batch_size, message", [
    (np.zeros(22, int), 10, "labels must have shape (23,)"),
    (np.full(23, 4), 10, "labels must lie in [0, 4)"),
    (np.full(23, 1.0), 10, "labels must be integers"),
    (np.zeros(23, int), 0, "batch_size must be an integer >= 1"),
    (np.zeros(23, int), 2.5, "batch_size must be an integer >= 1"),
    (np.zeros(0, int), 10, "need at least one sample"),
])
def test_bad_input(setup, labels, batch_size, message):
    net, x, _ = setup
    x = x[:labels.shape[0]] if labels.shape[0] == 0 else x
    with pytest.raises(ValueError, match=re.escape(message)):
        es.evaluate(net, x, labels, batch_size=batch_size)


@pytest.mark.parametrize("args, message", [
    (lambda net, x, y: ("net", x, y), "net must be an eventsim.Network, got str"),
    (lambda net, x, y: (net, 0.5, [0]), "x must have shape (batch, 12), got ()"),
    (lambda net, x, y: (net, x[:, :5], y), "x must have shape (batch, 12), got (23, 5)"),
    (lambda net, x, y: (net, np.where(x > 0.5, np.nan, x), y), "x contains NaN"),
    (lambda net, x, y: (net, x.astype(str), y), "x must be real numbers"),
])
def test_bad_network_or_inputs(setup, args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        es.evaluate(*args(*setup))


def test_predict_batches_and_rejects_bad_batch_size(setup):
    net, x, _ = setup
    want = net.forward(x).v_out.argmax(axis=1)
    for batch_size in (1, 7, 23, 1000):
        np.testing.assert_array_equal(net.predict(x, batch_size=batch_size), want)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            net.predict(x, batch_size=bad)
    assert net.predict(x[:0]).shape == (0,) and net.predict(x[:0]).dtype == want.dtype
