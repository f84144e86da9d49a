"""Test configuration: hypothesis profiles and import paths.

Profiles (select with the environment variable HYPOTHESIS_PROFILE):

* ``dev`` (default): deadline=None (numba compiles on first call), 40 examples.
* ``ci``: deadline=None, 12 examples, for a fast CI run.
* ``thorough``: deadline=None, 300 examples, for a local soak.

Tests that call the slow solve_ivp reference cap their example count with
``strategies.few(n)`` so they stay cheap in every profile.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

_HERE = Path(__file__).resolve().parent
for p in (str(_HERE.parent), str(_HERE)):  # `validation` package and `naive` helpers
    if p not in sys.path:
        sys.path.insert(0, p)

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("dev", max_examples=40, **_common)
settings.register_profile("ci", max_examples=12, **_common)
settings.register_profile("thorough", max_examples=300, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def load_example():
    """load_example("plot_traces") imports examples/plot_traces.py as a module."""
    def load(name):
        spec = importlib.util.spec_from_file_location(name, _HERE.parent / "examples" /
                                                      f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def sigterm_after_first_checkpoint(monkeypatch):
    """Makes Trainer.save send this process SIGTERM, as ``kill`` would, right
    after the first checkpoint is written (later saves are left alone). If the
    script under test has not installed a SIGTERM handler of its own by then,
    the test fails instead of pytest being killed. Returns the SIGTERM handler
    that was in place before."""
    from eventsim._train import Trainer

    real_save = Trainer.save
    before = signal.getsignal(signal.SIGTERM)

    def save_then_sigterm(self, path=None):
        real_save(self, path)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.SIG_IGN, before):
            raise AssertionError("training runs without its own SIGTERM handler")
        monkeypatch.setattr(Trainer, "save", real_save)   # only once
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Trainer, "save", save_then_sigterm)
    return before
