"""Hypothesis strategies for random layers (built on validation.cases.random_case)."""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

import eventsim as es
from validation.cases import TAUS, Case, random_case

ALL_P = tuple(TAUS)  # 2, 1, 0.5, 3.7, 1.0001


def few(n: int) -> int:
    """max_examples for an expensive test: at most n, never more than the loaded profile's."""
    return max(1, min(n, settings().max_examples))


def lif_of(case: Case) -> es.LIF:
    return es.LIF(case.tau_i, case.tau_v, case.threshold)


@st.composite
def layers(draw, ps=ALL_P, max_out=8, max_in=12, max_spikes=40, thresholds=(1.0, 0.3, 2.5),
           max_drive=5.0) -> Case:
    """A random layer: p from ``ps``, threshold from ``thresholds``; the rest from a seed.

    Weights are drawn by ``random_case`` so neurons fire 0-10 times typically.
    Half of the cases round input times to a 1/32 grid (ties, inputs at 0).
    """
    p = draw(st.sampled_from(ps))
    theta = draw(st.sampled_from(thresholds))
    n_out = draw(st.integers(1, max_out))
    n_in = draw(st.integers(1, max_in))
    n_spikes = draw(st.integers(0, max_spikes))
    ties = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    tau_i, tau_v = TAUS[p]
    rng = np.random.default_rng(seed)
    return random_case(rng, tau_i, tau_v, n_in=n_in, n_out=n_out, n_spikes=n_spikes,
                       threshold=theta, ties=ties, max_drive=max_drive)
