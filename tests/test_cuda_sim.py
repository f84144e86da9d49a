"""CUDA backend (eventsim._cuda) against the CPU backend (eventsim._layer).

The CUDA kernels run under numba's CUDA simulator, which must be switched on
before numba.cuda is first imported, so these tests run in their own process::

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/test_cuda_sim.py

In a normal run (no simulator) they are skipped; what runs instead is the check
that device="cuda" without a GPU fails with a clear error. That every kernel
compiles for a real GPU is checked by tests/test_ptx_compile.py.

The simulator runs each GPU thread as a Python thread, so inputs are tiny.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import eventsim as es
import naive
from eventsim import _layer
from eventsim._math import CLOSED_FORM, ROOT
from eventsim._train import TIMING_FIELDS, Dataset, TrainConfig, Trainer

SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
TOL = 1e-12


def sim_only(test):
    """Marks a test that runs CUDA kernels under the simulator (skipped without it)."""
    test = pytest.mark.skipif(not SIM, reason="needs NUMBA_ENABLE_CUDASIM=1 (own process)")(test)
    return pytest.mark.cudasim(test)


def _cuda_backend():
    from eventsim import _cuda
    return _cuda.backend()


def _close(got, want, tol=TOL):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    assert got.dtype.kind == want.dtype.kind
    finite = np.isfinite(want)
    assert np.array_equal(np.isfinite(got), finite)
    assert np.array_equal(got[~finite], want[~finite])
    scale = max(1.0, float(np.abs(want[finite]).max())) if finite.any() else 1.0
    err = float(np.abs(got[finite] - want[finite]).max()) if finite.any() else 0.0
    assert err <= tol * scale, f"max abs diff {err:.3e}"


def _layer_case(seed, n_samples=3, n_in=4, n_out=4, rate=3.0):
    """Input spike lists (~3-4 per sample) and weights that make neurons fire repeatedly."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n_samples, n_in))
    x[rng.random(x.shape) < 0.15] = np.inf
    x[0, 0] = 1.5                     # at/after t_end: dropped
    times, ids, ptr = _layer.dense_to_lists(x, 1.0)
    w = rng.normal(1.0, 1.5, (n_in, n_out)) * rate
    return x, times, ids, ptr, w


CASES = [  # (seed, tau_i, tau_v, method, single_spike)
    (0, 0.8, 0.4, CLOSED_FORM, False),   # p = 2, paper setting
    (1, 0.8, 0.8, ROOT, False),          # p = 1
    (2, 0.5, 0.8, ROOT, True),           # p < 1, TTFS
]


@sim_only
@pytest.mark.parametrize("seed,tau_i,tau_v,method,single", CASES)
def test_layer_kernels_match_cpu(seed, tau_i, tau_v, method, single):
    cu = _cuda_backend()
    lif = es.LIF(tau_i, tau_v)
    a, b, theta = lif.rate_i, lif.rate_v, lif.threshold
    x, times, ids, ptr, w = _layer_case(seed)

    # host bookkeeping (shared) and dense_to_lists
    for got, want in zip(cu.dense_to_lists(x, 1.0), (times, ids, ptr)):
        _close(got, want, 0.0)

    def forward_both(cap):
        fwd_cpu = _layer.layer_forward(times, ids, ptr, _layer.prepare_weights(w), 1.0, a, b,
                                       theta, single, method, 10_000, cap)
        fwd_gpu = cu.layer_forward(times, ids, ptr, cu.prepare_weights(w), 1.0, a, b, theta,
                                   single, method, 10_000, cap)
        for got, want in zip(fwd_gpu, fwd_cpu):
            _close(got, want)
        return fwd_cpu

    # a small buffer first, so some neurons overflow it and only count on
    counts = forward_both(3)[2]
    assert counts.sum() > 0 and (counts.max() > 1 or single)
    # rerun with a buffer that fits, as run_layer does
    cap = max(int(counts.max()), 1)
    out_t, out_dv, counts, v_end = forward_both(cap)

    merged_cpu = _layer.merge_spikes(out_t, counts)
    for got, want in zip(cu.merge_spikes(out_t, counts), merged_cpu):
        _close(got, want, 0.0)
    m_times, m_ids, m_ptr, src_n = merged_cpu

    rng = np.random.default_rng(seed + 7)
    g_spikes = rng.normal(size=m_times.shape[0])
    spk_g = _layer.scatter_spike_grads(g_spikes, m_ids, m_ptr, src_n, w.shape[1], cap)
    _close(cu.scatter_spike_grads(g_spikes, m_ids, m_ptr, src_n, w.shape[1], cap), spk_g, 0.0)

    nu = rng.normal(size=v_end.shape)
    nu[0, 0] = 0.0   # with no spikes either, (0, 0) is skipped if silent
    for want_input_grad in (True, False):
        bwd_cpu = _layer.layer_backward(times, ids, ptr, _layer.prepare_weights(w), 1.0, a, b,
                                        theta, out_t, out_dv, counts, merged_cpu, spk_g, nu,
                                        0.0, want_input_grad)
        bwd_gpu = cu.layer_backward(times, ids, ptr, cu.prepare_weights(w), 1.0, a, b, theta,
                                    out_t, out_dv, counts, merged_cpu, spk_g, nu, 0.0,
                                    want_input_grad)
        for got, want in zip(bwd_gpu, bwd_cpu):
            _close(got, want)
    # the slope clip goes through the same code
    bwd_cpu = _layer.layer_backward(times, ids, ptr, _layer.prepare_weights(w), 1.0, a, b,
                                    theta, out_t, out_dv, counts, merged_cpu, spk_g, nu, 5.0,
                                    True)
    bwd_gpu = cu.layer_backward(times, ids, ptr, cu.prepare_weights(w), 1.0, a, b, theta,
                                out_t, out_dv, counts, merged_cpu, spk_g, nu, 5.0, True)
    for got, want in zip(bwd_gpu, bwd_cpu):
        _close(got, want)

    phi = _layer.readout_features(m_times, m_ids, m_ptr, w.shape[1], 1.0, a, b)
    _close(cu.readout_features(m_times, m_ids, m_ptr, w.shape[1], 1.0, a, b), phi)
    h = rng.normal(size=phi.shape)
    _close(cu.readout_time_grads(m_times, m_ids, m_ptr, h, 1.0, a, b),
           _layer.readout_time_grads(m_times, m_ids, m_ptr, h, 1.0, a, b))


def _forward_backward(be, times, ids, ptr, w, lif, single, method, rng_seed):
    a, b, theta = lif.rate_i, lif.rate_v, lif.threshold
    wp = be.prepare_weights(w)
    cap = 1
    while True:
        fwd = be.layer_forward(times, ids, ptr, wp, 1.0, a, b, theta, single, method, 10_000, cap)
        if fwd[2].max(initial=0) <= cap:
            break
        cap = int(fwd[2].max())
    rng = np.random.default_rng(rng_seed)
    spk_g = np.where(np.isfinite(fwd[0]), rng.normal(size=fwd[0].shape), 0.0)
    nu = rng.normal(size=fwd[3].shape) * (rng.random(fwd[3].shape) < 0.7)
    bwd = be.layer_backward(times, ids, ptr, wp, 1.0, a, b, theta, fwd[0], fwd[1], fwd[2],
                            _layer.merge_spikes(fwd[0], fwd[2]), spk_g, nu, 0.0, True)
    return fwd + bwd


@sim_only
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n_in=st.integers(1, 5), n_out=st.integers(1, 4),
       batch=st.integers(1, 3), p=st.sampled_from([0.5, 1.0, 2.0, 3.0]), single=st.booleans(),
       grid=st.sampled_from([0.0, 0.125]), scale=st.floats(0.5, 6.0))
def test_random_layers_match_cpu(seed, n_in, n_out, batch, p, single, grid, scale):
    """Random small layers (with tied input times when grid > 0), forward and backward."""
    cu = _cuda_backend()
    lif = es.LIF(0.8, 0.8 / p)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.2, (batch, n_in))
    if grid:
        x = np.round(x / grid) * grid
    x[rng.random(x.shape) < 0.2] = np.inf
    times, ids, ptr = _layer.dense_to_lists(x, 1.0)
    w = rng.normal(0.5, 1.5, (n_in, n_out)) * scale
    method = CLOSED_FORM if p == 2.0 and rng.random() < 0.5 else ROOT
    want = _forward_backward(_layer, times, ids, ptr, w, lif, single, method, seed)
    got = _forward_backward(cu, times, ids, ptr, w, lif, single, method, seed)
    for g, wnt in zip(got, want):
        _close(g, wnt)


@sim_only
def test_sample_groups_split_scratch(monkeypatch):
    """Backward in several sample groups (small scratch budget) gives the same gradients."""
    from eventsim import _cuda
    cu = _cuda_backend()
    lif = es.LIF(0.8, 0.4)
    a, b, theta = lif.rate_i, lif.rate_v, lif.threshold
    _, times, ids, ptr, w = _layer_case(3)
    counts = _layer.layer_forward(times, ids, ptr, _layer.prepare_weights(w), 1.0, a, b,
                                  theta, False, CLOSED_FORM, 10_000, 1)[2]
    out_t, out_dv, counts, v_end = _layer.layer_forward(
        times, ids, ptr, _layer.prepare_weights(w), 1.0, a, b, theta, False, CLOSED_FORM,
        10_000, int(counts.max()))
    rng = np.random.default_rng(0)
    spk_g = np.where(np.isfinite(out_t), rng.normal(size=out_t.shape), 0.0)
    nu = rng.normal(size=v_end.shape)
    merged = _layer.merge_spikes(out_t, counts)
    want = _layer.layer_backward(times, ids, ptr, _layer.prepare_weights(w), 1.0, a, b, theta,
                                 out_t, out_dv, counts, merged, spk_g, nu, 0.0, True)
    monkeypatch.setattr(_cuda, "SCRATCH_BYTES", 1)   # one sample per group
    assert len(_cuda._sample_groups(ptr, 2 * 8 * w.shape[1], 1)) == ptr.shape[0] - 1
    got = cu.layer_backward(times, ids, ptr, cu.prepare_weights(w), 1.0, a, b, theta,
                            out_t, out_dv, counts, merged, spk_g, nu, 0.0, True)
    for g, wnt in zip(got, want):
        _close(g, wnt)


@sim_only
def test_empty_inputs():
    cu = _cuda_backend()
    lif = es.LIF(0.8, 0.4)
    a, b, theta = lif.rate_i, lif.rate_v, lif.threshold
    x = np.full((2, 3), np.inf)
    x[1, 2] = 0.3     # sample 0 has no input at all
    times, ids, ptr = cu.dense_to_lists(x, 1.0)
    w = np.full((3, 2), 50.0)
    fwd_cpu = _layer.layer_forward(times, ids, ptr, _layer.prepare_weights(w), 1.0, a, b, theta,
                                   False, CLOSED_FORM, 10_000, 16)
    fwd_gpu = cu.layer_forward(times, ids, ptr, cu.prepare_weights(w), 1.0, a, b, theta,
                               False, CLOSED_FORM, 10_000, 16)
    for got, want in zip(fwd_gpu, fwd_cpu):
        _close(got, want)
    times0, ids0, ptr0 = cu.dense_to_lists(np.full((2, 3), np.inf), 1.0)
    out = cu.layer_forward(times0, ids0, ptr0, cu.prepare_weights(w), 1.0, a, b, theta,
                           False, CLOSED_FORM, 10_000, 16)
    assert out[2].sum() == 0 and np.all(out[3] == 0.0) and np.all(np.isinf(out[0]))
    zeros = np.zeros((2, 2, 16))
    gw, gi = cu.layer_backward(times0, ids0, ptr0, cu.prepare_weights(w), 1.0, a, b, theta,
                               out[0], out[1], out[2], _layer.merge_spikes(out[0], out[2]),
                               zeros, np.ones((2, 2)), 0.0, True)
    assert gw.shape == (3, 2) and np.all(gw == 0.0) and gi.shape == (0,)
    _close(cu.readout_features(times0, ids0, ptr0, 3, 1.0, a, b), np.zeros((2, 3)))


@sim_only
def test_spikes_after_intervals_of_thousands_of_time_constants():
    """Decay factors that underflow to 0 must not hide a spike (needs_exact once
    read an end state of exactly 0 as 'still rising'); two inputs 2,000 tau_I
    apart each fire the neuron as if alone (eq. 19's single-input solution)."""
    cu = _cuda_backend()
    lif = es.LIF(0.8, 0.4)
    a, b, theta = lif.rate_i, lif.rate_v, lif.threshold
    t_end = 3200.0
    times, ids, ptr = np.array([0.0, 1600.0]), np.array([0, 1]), np.array([0, 2])
    w = np.array([[6.0], [6.0]])
    one = naive.p2_single_input_spikes(6.0, 0.0, 0.8, 1.0, t_end=1600.0)
    expected = np.concatenate([one, 1600.0 + one])
    for be in (_layer, cu):
        out_t, _, counts, _ = be.layer_forward(times, ids, ptr, be.prepare_weights(w), t_end,
                                               a, b, theta, False, CLOSED_FORM, 10_000, 4)
        assert counts[0, 0] == expected.size
        np.testing.assert_allclose(out_t[0, 0, :expected.size], expected, rtol=1e-14)


def _tiny_net(device, p=2.0, single_spike=False):
    net = es.Network([6, 5, 4, 3], es.LIF(0.8, 0.8 / p), single_spike=single_spike, seed=1,
                     device=device)
    rng = np.random.default_rng(5)
    net.weights = [rng.normal(1.0, 1.5, w.shape) * 6.0 / np.sqrt(w.shape[0])
                   for w in net.weights]
    return net


@sim_only
@pytest.mark.parametrize("p,single", [(2.0, False), (0.5, True)])
def test_network_end_to_end(p, single):
    cpu, gpu = _tiny_net("cpu", p, single), _tiny_net("cuda", p, single)
    rng = np.random.default_rng(11)
    x = rng.uniform(0.0, 1.0, (2, 6))
    x[rng.random(x.shape) < 0.2] = np.inf
    labels = np.array([0, 2])
    rc, rg = cpu.forward(x), gpu.forward(x)
    _close(rg.v_out, rc.v_out)
    for hc, hg in zip(rc.v_hidden, rg.v_hidden):
        _close(hg, hc)
    for cc, cg in zip(rc.spike_counts, rg.spike_counts):
        assert np.array_equal(cg, cc)
    assert sum(int(c.sum()) for c in rc.spike_counts) > 0
    loss_c, grads_c, gx_c = cpu.loss_and_grad(x, labels, wrt_inputs=True)
    loss_g, grads_g, gx_g = gpu.loss_and_grad(x, labels, wrt_inputs=True)
    assert abs(loss_g - loss_c) <= TOL * max(1.0, abs(loss_c))
    for gg, gc in zip(grads_g, grads_c):
        _close(gg, gc)
    _close(gx_g, gx_c)


@pytest.mark.skipif(SIM, reason="checks the no-GPU error, not the simulator")
def test_cuda_without_gpu_raises_clear_error():
    from numba import cuda
    if cuda.is_available():
        pytest.skip("a CUDA GPU is available here")
    with pytest.raises(RuntimeError, match=r"device='cuda' was requested but no CUDA GPU.*"
                                           r"device='cpu'"):
        es.Network([4, 3, 2], es.LIF(0.8, 0.4), device="cuda")
    from eventsim import _cuda
    assert _cuda.is_available() is False


def _tiny_dataset():
    rng = np.random.default_rng(2)
    x = rng.uniform(0.0, 1.0, (12, 6))
    x[rng.random(x.shape) < 0.3] = np.inf
    x_test = rng.uniform(0.0, 1.0, (4, 6))
    return Dataset(x, rng.integers(0, 3, 12), x_test, rng.integers(0, 3, 4), n_classes=3)


def _tiny_trainer(device, out, single_spike, epochs=2, val_size=0, weight_decay=0.0,
                  lr_schedule="constant", trainer=Trainer):
    config = TrainConfig(hidden=(5,), epochs=epochs, batch_size=5, seed=4, device=device,
                         single_spike=single_spike, init_mean=6.0, init_std=3.0,
                         eval_batch_size=3, lr=0.05, val_size=val_size,
                         weight_decay=weight_decay, lr_schedule=lr_schedule)
    return trainer(config, _tiny_dataset(), out, progress=False)


@sim_only
@pytest.mark.parametrize("single, weight_decay", [(False, 0.0), (True, 0.0), (False, 0.5)])
def test_resident_trainer_matches_cpu_trainer(tmp_path, single, weight_decay):
    """device="cuda" training (data, weights and Adam on the GPU) = device="cpu" training."""
    cpu = _tiny_trainer("cpu", tmp_path / "cpu", single, weight_decay=weight_decay)
    gpu = _tiny_trainer("cuda", tmp_path / "gpu", single, weight_decay=weight_decay)
    assert gpu._resident is not None
    gpu._resident.cap = 1                       # the spike buffer must grow on the way
    cpu.fit()
    gpu.fit()
    for got, want in zip(gpu.history, cpu.history):
        assert got.keys() == want.keys()
        for key in ("train_loss", "train_acc", "test_acc", "test_loss",
                    "spikes_per_hidden_neuron", "dead_fraction"):
            _close(got[key], want[key], 1e-10)
    assert cpu.history[-1]["spikes_per_hidden_neuron"] > (0.2 if single else 1.0)
    assert (gpu._resident.cap == 1) if single else (gpu._resident.cap > 1)
    for got, want in zip(gpu.net.weights, cpu.net.weights):
        _close(got, want, 1e-10)
    for got, want in zip(gpu.opt.m + gpu.opt.v, cpu.opt.m + cpu.opt.v):
        _close(got, want, 1e-10)
    assert gpu.opt.step == cpu.opt.step == 6
    assert np.abs(gpu.net.weights[0] - _tiny_trainer("cpu", tmp_path / "x", single)
                  .net.weights[0]).max() > 1e-3      # it trained


@sim_only
def test_resident_trainer_validation_matches_cpu_trainer(tmp_path):
    """The held-out set is evaluated on the GPU like the test set; best.h5 agrees."""
    cpu = _tiny_trainer("cpu", tmp_path / "cpu", False, epochs=3, val_size=4)
    gpu = _tiny_trainer("cuda", tmp_path / "gpu", False, epochs=3, val_size=4)
    assert set(gpu._resident.eval_sets) == {"test", "val"}
    cpu_summary, gpu_summary = cpu.fit(), gpu.fit()
    for got, want in zip(gpu.history, cpu.history):
        _close(got["val_acc"], want["val_acc"], 1e-10)
        _close(got["val_loss"], want["val_loss"], 1e-10)
    assert gpu_summary["best_val_epoch"] == cpu_summary["best_val_epoch"]
    best = [es.Network.load(d / "best.h5").weights for d in (tmp_path / "cpu", tmp_path / "gpu")]
    for want, got in zip(*best):
        _close(got, want, 1e-10)
    assert gpu.opt.step == 6                    # 8 training samples, batches of 5, 3 epochs


@sim_only
def test_resident_trainer_train_epoch_shares_state_with_net_and_opt(tmp_path):
    """Trainer.train_epoch on device="cuda" starts from trainer.net.weights as set on
    the host and leaves the trained weights and Adam moments in trainer.net and
    trainer.opt, as on the CPU (they once stayed on the GPU until a checkpoint, and
    weights set before training were ignored)."""
    cpu = _tiny_trainer("cpu", tmp_path / "cpu", False)
    gpu = _tiny_trainer("cuda", tmp_path / "gpu", False)
    rng = np.random.default_rng(8)
    start = [rng.normal(2.0, 2.0, w.shape) for w in cpu.net.weights]
    for trainer in (cpu, gpu):
        trainer.net.weights = start
    rows = [trainer.train_epoch() for trainer in (cpu, gpu)]
    _close(rows[1]["train_loss"], rows[0]["train_loss"], 1e-10)
    for got, want in zip(gpu.net.weights + gpu.opt.m + gpu.opt.v,
                         cpu.net.weights + cpu.opt.m + cpu.opt.v):
        _close(got, want, 1e-10)
    assert np.abs(gpu.net.weights[0] - start[0]).max() > 1e-3      # it trained


class _StopAfterFirstCheckpoint(Trainer):
    def save(self, path=None):
        super().save(path)
        raise KeyboardInterrupt


@sim_only
@pytest.mark.parametrize("lr_schedule", ["constant", "cosine"])
def test_resident_trainer_resume_equals_uninterrupted(tmp_path, lr_schedule):
    """Interrupted after its first epoch's checkpoint and resumed: the same weights
    and history as one uninterrupted run (a cosine rate resumes mid-schedule)."""
    kw = dict(weight_decay=0.1, lr_schedule=lr_schedule)
    straight = _tiny_trainer("cuda", tmp_path / "straight", False, **kw)
    straight.fit()
    with pytest.raises(KeyboardInterrupt):
        _tiny_trainer("cuda", tmp_path / "resumed", False, trainer=_StopAfterFirstCheckpoint,
                      **kw).fit()
    resumed = _tiny_trainer("cuda", tmp_path / "resumed", False, **kw)
    assert resumed.resume() and resumed.epoch == 1
    resumed.fit()
    for got, want in zip(resumed.net.weights, straight.net.weights):
        assert np.array_equal(got, want)
    def untimed(history):
        return [{k: v for k, v in row.items() if k not in TIMING_FIELDS}
                for row in history]
    assert untimed(resumed.history) == untimed(straight.history)


@sim_only
def test_resident_trainer_rejects_bad_inputs(tmp_path):
    data = _tiny_dataset()
    data.x_train[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Trainer(TrainConfig(hidden=(5,), device="cuda"), data, tmp_path, progress=False)
    data = _tiny_dataset()
    data.x_test[0, 1] = -0.5
    with pytest.raises(ValueError, match=">= 0"):
        Trainer(TrainConfig(hidden=(5,), device="cuda"), data, tmp_path, progress=False)
