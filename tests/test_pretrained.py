"""The trained network shipped in data/models/ (paper protocol, seed 7): a regression
check of the whole forward pass against the accuracy and loss its training run logged."""

from pathlib import Path

import pytest

import eventsim as es
from eventsim._io import load_checkpoint
from eventsim._train import TrainConfig, saved_config

MODEL = Path(__file__).parents[1] / "data" / "models" / "mnist_multi_tau0.8_seed7.h5"


def test_shipped_model_reproduces_its_logged_test_metrics():
    saved = load_checkpoint(MODEL)
    assert saved_config(saved["extra"]["config"]) == TrainConfig(seed=7)   # the paper's protocol
    logged = saved["extra"]["history"][-1]
    assert saved["epoch"] == logged["epoch"] == 100

    net = es.Network.load(MODEL)
    data = es.mnist()
    m = es.evaluate(net, es.latency_encode(data.test_images), data.test_labels)
    assert m.accuracy == logged["test_acc"]
    assert m.cross_entropy == pytest.approx(logged["test_loss"], rel=1e-12)
