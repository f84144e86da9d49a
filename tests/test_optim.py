"""Adam (and its decoupled weight decay) against the textbook formulas in naive.py."""

import numpy as np
import pytest

from eventsim._optim import Adam

from naive import adam_steps


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_adam_matches_reference(weight_decay):
    rng = np.random.default_rng(5)
    shapes = [(7, 3), (3,)]
    params = [rng.normal(0.0, 1.0, s) for s in shapes]
    grads = [[rng.normal(0.0, 1.0, s) for s in shapes] for _ in range(6)]
    opt = Adam(shapes, lr=0.1, weight_decay=weight_decay)
    mine = [p.copy() for p in params]
    for step_grads in grads:
        opt.update(mine, step_grads)
    assert opt.step == 6
    for k, start in enumerate(params):
        want, m, v = adam_steps(start, [g[k] for g in grads], 0.1, weight_decay=weight_decay)
        np.testing.assert_allclose(mine[k], want, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(opt.m[k], m, rtol=1e-13)
        np.testing.assert_allclose(opt.v[k], v, rtol=1e-13)


def test_weight_decay_shrinks_towards_zero_without_gradient():
    """With g = 0 the Adam step vanishes and only the decay acts: p (1 - lr wd)^n."""
    p = [np.array([2.0, -3.0, 0.5])]
    opt = Adam([(3,)], lr=0.01, weight_decay=2.0)
    for _ in range(10):
        opt.update(p, [np.zeros(3)])
    np.testing.assert_allclose(p[0], np.array([2.0, -3.0, 0.5]) * 0.98 ** 10, rtol=1e-14)


@pytest.mark.parametrize("weight_decay", [-1e-3, np.nan, np.inf])
def test_adam_refuses_bad_weight_decay(weight_decay):
    with pytest.raises(ValueError, match="weight_decay"):
        Adam([(2,)], weight_decay=weight_decay)
