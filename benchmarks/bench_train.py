"""Training throughput of eventsim vs. a dense NumPy version of the paper's Algorithm 1.

The paper's setup: 784-400-10, LIF(tau_i=0.8, tau_v=0.4) (p = 2), threshold 1,
t_out = 1, weights ~ Normal(0.03, variance 0.3) (seed 0), Adam (lr 1e-3), batch
100, latency-coded MNIST training images.

1. eventsim training step (forward + loss + backward + Adam update, i.e. the
   body of ``eventsim._train.Trainer.train_epoch``), samples/s, on cpu, and on
   cuda when ``eventsim._cuda.is_available()`` (skipped with a message otherwise):
   through ``Network``'s per-call cuda backend, and device-resident
   (``ResidentTrainer``, what the trainer runs for device="cuda").
2. ``dense_forward_algorithm1``: a straightforward NumPy implementation of the
   paper's Algorithm 1 (dense over batch x hidden neuron x input interval m',
   N_max spike iterations), FORWARD ONLY. Its v_out and hidden spikes are
   checked against eventsim's forward for the same weights and inputs, then
   it is timed on the same batch.
   ``dense_forward_rewritten``: the same with line 8 computed from a cumulative
   sum done once (the fastest dense NumPy forward we know), checked the same way.
3. The ratios eventsim-training-samples/s / dense-forward-samples/s.

Timings are interleaved (each repeat times every contender once) and reported
as best and median of ``--repeats``; ratios use the best times.

    python benchmarks/bench_train.py [--batch 100] [--repeats 3] [--nmax auto|N]
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
from _timing import interleaved

import eventsim as es
from eventsim._malloc import retain_freed_memory
from eventsim._optim import Adam

TAU_I, TAU_V, THETA, T_OUT = 0.8, 0.4, 1.0, 1.0


# ----------------------------------------------------------------------------- baseline
def dense_forward_algorithm1(x, w_in, w_out, tau_i=TAU_I, threshold=THETA, t_out=T_OUT,
                             n_max=16, n1=1, stable_root=True, literal_line11=False,
                             group_rows=1000):
    """Forward pass of the paper's Algorithm 1 (p = tau_I / tau_V = 2), dense NumPy, float64.

    Paper: Yamamoto, Sakemi, Aihara, "Timing-based backpropagation in spiking
    neural networks without single-spike restrictions", Algorithm 1 "Forward
    pass of multi-spiking neural networks" (eqs. 13-20). Line numbers below are
    the listing's. Everything is vectorised over the batch b, the hidden
    neurons j and the candidate input interval m' (arrays [B, J, M]), as the
    listing's "(Parallel)" loops intend; the spike index n' is a Python loop.

    - line 1: z^(m) = exp(t^(m) / tau_I) for each sample's inputs in global
      (time) order; inputs at or after t_out are dropped (as in eventsim).
      Samples have different input counts M_b. They are processed in groups of
      about ``group_rows`` (b, j) rows, sorted by M_b, and padded within a group
      to M = max M_b with w = 0 and z = z_out, which makes the padded intervals
      empty. (Grouping keeps the [B, J, M] arrays at a few MB instead of about
      1 GB for the whole batch; with it this baseline runs about 2x faster than
      one whole-batch pass, as a benchmark of the method should.)
    - line 2: z_j^(0) = 0 ("no previous spike": max(0, z^(m)) = z^(m)).
    - line 3: z_out = exp(t_out / tau_I); the last interval m' = M_b ends at
      z^(M_b + 1) := z_out.
    - line 7: A_j^(m') = tau_I sum_{m <= m'} w_ij^(m) z^(m)   (a cumsum over m;
      the prefactor tau_I tau_V / (tau_I - tau_V) of eq. 16 is tau_I for p = 2).
    - line 8: B_j^(m',n') = tau_I sum_{m <= m'} w_ij^(m) z^(m) max(z_j^(n'), z^(m)).
    - lines 9-10: if A, B, A^2 - 4 B V_th >= 0, the crossing of
      V(z) = A/z - B/z^2 (eq. 15) is eq. 19, z = (A - sqrt(A^2 - 4 B V_th)) / (2 V_th).
      With ``stable_root`` (default) the algebraically identical
      z = 2B / (A + sqrt(A^2 - 4 B V_th)) is used, which avoids the cancellation
      of eq. 19 when 4 B V_th << A^2.
    - lines 11-12: the root is kept only if it lies in the half-open interval
      [z^(m'), z^(m'+1)) (a spike at exactly t_out is not counted). In addition
      it must lie after the neuron's previous spike, z > z_j^(n') (the
      existence condition stated below eq. 19; line 11 alone does not check
      it, and eq. 15 with a reset at z_j^(n') is meaningless before z_j^(n')).
      ``literal_line11=True`` drops this extra check (for diagnosis).
    - line 18: z_j^(n'+1) = min over m' (inf = no further spike).
    - lines 19-20 (with the squares where eq. 20 needs them; the listing has
      them swapped): A_o += tau_I w_jo z_j^(n'+1), B_o += tau_I w_jo (z_j^(n'+1))^2.
    - lines 4 and 23-27 (the two stages): iterations n' < n1 process every
      (b, j); from n' = n1 on, only the rows whose last spike was finite (the
      2nd-loop set {j | z_j^(n1) < inf}, shrunk further at every iteration).
      n' runs up to n_max - 1 (the listing's N_2); a neuron that still fires at
      the last iteration may have been truncated (counted in ``at_limit``).
    - line 28: v_o = A_o / z_out - B_o / z_out^2 (eq. 20).

    Parameters: x (B, n_in) latency spike times (np.inf or >= t_out: no spike),
    w_in (n_in, J), w_out (J, O).
    Returns dict: v_out (B, O); z (B, J, n_max) hidden spike z's (inf padded);
    counts (B, J); at_limit (number of (b, j) that fired at the last iteration,
    so may have been truncated); m (the largest padded input count M).
    """
    return _in_groups(x, w_in.shape[1], w_out.shape[1], t_out, n_max, group_rows,
                      lambda xs: _dense_group(xs, w_in, w_out, tau_i, threshold, t_out, n_max,
                                              n1, stable_root, literal_line11))


def _in_groups(x, n_j, n_o, t_out, n_max, group_rows, forward_group):
    """Run ``forward_group(x[samples])`` on groups of about ``group_rows`` (b, j) rows,
    samples sorted by input count, and assemble the dense forwards' result dict."""
    x = np.asarray(x, np.float64)
    n_b = x.shape[0]
    out = {"v_out": np.zeros((n_b, n_o)), "z": np.full((n_b, n_j, n_max), np.inf),
           "counts": np.zeros((n_b, n_j), np.int64), "at_limit": 0, "m": 0}
    n_inputs = (x < t_out).sum(axis=1)
    by_input_count = np.argsort(n_inputs, kind="stable")
    per_group = max(1, group_rows // n_j)
    for start in range(0, n_b, per_group):
        samples = by_input_count[start:start + per_group]
        if n_inputs[samples[-1]] == 0:   # no input before t_out: no spike, v_out = 0
            continue
        part = forward_group(x[samples])
        for key in ("v_out", "z", "counts"):
            out[key][samples] = part[key]
        out["at_limit"] += part["at_limit"]
        out["m"] = max(out["m"], part["m"])
    return out


def _sorted_inputs(x, w_in, tau_i, t_out):
    """Line 1 for samples x padded together: (M, z^(m) (B, M), z^(m'+1) (B, M),
    w_ij^(m) z^(m) laid out [B, J, M] with m' contiguous)."""
    z_out = math.exp(t_out / tau_i)
    order = np.argsort(x, axis=1, kind="stable")     # global input order, ties by id
    t_sorted = np.take_along_axis(x, order, axis=1)
    valid = t_sorted < t_out
    m = int(valid.sum(axis=1).max())
    order, t_sorted, valid = order[:, :m], t_sorted[:, :m], valid[:, :m]
    z_in = np.where(valid, np.exp(np.where(valid, t_sorted, 0.0) / tau_i), z_out)
    z_next = np.concatenate([z_in[:, 1:], np.full((x.shape[0], 1), z_out)], axis=1)
    wz = np.ascontiguousarray((w_in[order] * (valid * z_in)[:, :, None]).transpose(0, 2, 1))
    return m, z_in, z_next, wz


def _dense_group(x, w_in, w_out, tau_i, threshold, t_out, n_max, n1, stable_root,
                 literal_line11):
    """dense_forward_algorithm1 on the samples x, padded together."""
    n_b = x.shape[0]
    n_j = w_in.shape[1]
    z_out = math.exp(t_out / tau_i)
    m, z_in, z_next, wz = _sorted_inputs(x, w_in, tau_i, t_out)                   # line 1
    big_a = tau_i * np.cumsum(wz, axis=2)                                           # line 7
    z_spk = np.full((n_b, n_j, n_max), np.inf)
    counts = np.zeros((n_b, n_j), np.int64)
    # active rows (b, j), flattened; compressed arrays follow them
    rows = np.arange(n_b * n_j)
    r_wz = wz.reshape(n_b * n_j, m)
    r_a = big_a.reshape(n_b * n_j, m)
    r_zin = np.repeat(z_in, n_j, axis=0)
    r_znext = np.repeat(z_next, n_j, axis=0)
    r_zprev = np.zeros(n_b * n_j)                                                   # line 2
    big_ao = np.zeros((n_b, w_out.shape[1]))
    big_bo = np.zeros((n_b, w_out.shape[1]))
    at_limit = 0
    for n in range(n_max):                                                          # lines 4, 23
        if rows.size == 0:
            break
        # line 8
        # (rows that stopped firing, z_prev = inf, are still here while n' < n1:
        # their B is +-inf, or NaN where w = 0, and fails line 9's test)
        with np.errstate(invalid="ignore"):
            big_b = tau_i * np.cumsum(r_wz * np.maximum(r_zprev[:, None], r_zin), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            disc = r_a * r_a - 4.0 * threshold * big_b
            ok = (r_a >= 0.0) & (big_b >= 0.0) & (disc >= 0.0)                       # line 9
            sq = np.sqrt(np.where(ok, disc, 0.0))
            if stable_root:
                root = 2.0 * big_b / (r_a + sq)
            else:
                root = (r_a - sq) / (2.0 * threshold)                                 # line 10
        keep = ok & (root >= r_zin) & (root < r_znext)                              # line 11
        if not literal_line11:
            keep &= root > r_zprev[:, None]
        z_new = np.where(keep, root, np.inf).min(axis=1)                            # line 18
        fired = np.isfinite(z_new)
        b_idx, j_idx = np.divmod(rows[fired], n_j)
        z_f = z_new[fired]
        z_spk[b_idx, j_idx, n] = z_f
        counts[b_idx, j_idx] += 1
        # lines 19-20 (A_o gets z, B_o gets z^2: eq. 20)
        contrib = tau_i * w_out[j_idx] * z_f[:, None]
        np.add.at(big_ao, b_idx, contrib)
        np.add.at(big_bo, b_idx, contrib * z_f[:, None])
        if n == n_max - 1:
            at_limit = int(fired.sum())
        r_zprev = z_new
        if n + 1 >= n1:  # 2nd loop process: only rows that are still firing
            rows, r_wz, r_a, r_zin, r_znext, r_zprev = (
                rows[fired], r_wz[fired], r_a[fired], r_zin[fired], r_znext[fired], z_f)
    v_out = big_ao / z_out - big_bo / z_out ** 2                                    # line 28
    return {"v_out": v_out, "z": z_spk, "counts": counts, "at_limit": at_limit, "m": m}


def dense_forward_rewritten(x, w_in, w_out, tau_i=TAU_I, threshold=THETA, t_out=T_OUT,
                            n_max=16, group_rows=1000):
    """Algorithm 1's forward with line 8 rewritten, the fastest dense NumPy form we know
    (from a benchmark audit): same inputs, outputs and grouping as
    ``dense_forward_algorithm1`` (with N_1 = 1 and the stable root).

    For the intervals m' that can hold the next spike (those from the previous
    spike's interval i on), max(z_prev, z^(m)) is z_prev for m <= i and z^(m)
    after, so B^(m',n') = C^(m') + D with C = tau_I cumsum(w z^2) computed once
    and D = z_prev A^(i) - C^(i) one number per (b, j) and spike. The intervals
    are ordered, so the first one that holds a root is the spike (argmax of the
    mask instead of a minimum over roots).
    """
    return _in_groups(x, w_in.shape[1], w_out.shape[1], t_out, n_max, group_rows,
                      lambda xs: _rewritten_group(xs, w_in, w_out, tau_i, threshold, t_out,
                                                  n_max))


def _rewritten_group(x, w_in, w_out, tau_i, threshold, t_out, n_max):
    """dense_forward_rewritten on the samples x, padded together."""
    n_b, n_j = x.shape[0], w_in.shape[1]
    z_out = math.exp(t_out / tau_i)
    m, z_in, z_next, wz = _sorted_inputs(x, w_in, tau_i, t_out)
    z_sum = np.zeros((n_b, n_j))        # sum of each neuron's spike z's, and of their squares
    z_sq_sum = np.zeros((n_b, n_j))
    counts = np.zeros((n_b, n_j), np.int64)
    z_spk = np.full((n_b, n_j, n_max), np.inf)
    at_limit = 0
    r_a = (tau_i * np.cumsum(wz, axis=2)).reshape(n_b * n_j, m)               # line 7
    r_c = (tau_i * np.cumsum(wz * z_in[:, None, :], axis=2)).reshape(n_b * n_j, m)
    r_disc0 = r_a * r_a - 4.0 * threshold * r_c    # discriminant for D = 0
    r_a_ok = r_a >= 0.0
    rows = np.arange(n_b * n_j)
    r_zin = np.repeat(z_in, n_j, axis=0)
    r_znext = np.repeat(z_next, n_j, axis=0)
    r_zprev = np.zeros(n_b * n_j)
    r_d = np.zeros(n_b * n_j)
    for n in range(n_max):
        if rows.size == 0:
            break
        big_b = r_c + r_d[:, None]                                             # line 8
        with np.errstate(invalid="ignore"):
            sq = np.sqrt(r_disc0 - 4.0 * threshold * r_d[:, None])  # NaN fails every test
            root = 2.0 * big_b / (r_a + sq)
        keep = ((big_b >= 0.0) & r_a_ok & (root >= r_zin) & (root < r_znext)
                & (root > r_zprev[:, None]))
        first = keep.argmax(axis=1)
        rr = np.arange(rows.size)
        fired = keep[rr, first]
        rr, first = rr[fired], first[fired]
        z_f = root[rr, first]
        b_idx, j_idx = np.divmod(rows[fired], n_j)
        z_spk[b_idx, j_idx, n] = z_f
        counts[b_idx, j_idx] += 1
        z_sum[b_idx, j_idx] += z_f
        z_sq_sum[b_idx, j_idx] += z_f * z_f
        if n == n_max - 1:
            at_limit = int(fired.sum())
        r_d = z_f * r_a[rr, first] - r_c[rr, first]
        rows, r_a, r_c, r_disc0, r_a_ok, r_zin, r_znext = (
            rows[fired], r_a[rr], r_c[rr], r_disc0[rr], r_a_ok[rr], r_zin[rr], r_znext[rr])
        r_zprev = z_f
    v_out = (tau_i * z_sum @ w_out) / z_out - (tau_i * z_sq_sum @ w_out) / z_out ** 2  # eq. 20
    return {"v_out": v_out, "z": z_spk, "counts": counts, "at_limit": at_limit, "m": m}


# ----------------------------------------------------------------------------- helpers
def load_batch(n, offset=0):
    data = es.mnist()
    x = es.latency_encode(data.train_images[offset:offset + n], T_OUT)
    return x, np.asarray(data.train_labels[offset:offset + n])


class TrainStep:
    """One step of Trainer.train_epoch: forward, loss, backward, Adam update.

    Every call trains from the same initial weights (restored from a copy, not
    timed), so that all repeats do the same work."""

    def __init__(self, device, x, y):
        self.net = es.Network([784, 400, 10], es.LIF(TAU_I, TAU_V), t_out=T_OUT, seed=0,
                              device=device)
        self.w0 = [w.copy() for w in self.net.weights]
        self.x, self.y = x, y
        self.reset()

    def reset(self):
        self.net.weights = self.w0
        self.opt = Adam([w.shape for w in self.w0], lr=1e-3)

    def __call__(self):
        net = self.net
        res = net.forward(self.x)
        loss, g_out, g_hidden = net.loss(res, self.y, 0.01, 1e-4)
        grads = net.backward(res, g_out, g_hidden)
        self.opt.update(net.weights, grads)
        return loss


class ResidentStep:
    """The device-resident cuda training step (``eventsim._cuda.ResidentTrainer``, what
    ``Trainer`` runs for device="cuda"), on the same batch. The weights keep
    training from step to step (re-uploading them would cost about as much as
    the step); the work per step stays the same to within a few percent."""

    def __init__(self, x, y):
        from eventsim._cuda import ResidentTrainer
        net = es.Network([784, 400, 10], es.LIF(TAU_I, TAU_V), t_out=T_OUT, seed=0,
                         device="cuda")
        self.trainer = ResidentTrainer(net, Adam([w.shape for w in net.weights], lr=1e-3),
                                       x, {"test": x[:1]})
        self.batch, self.y = np.arange(x.shape[0]), y

    def __call__(self):
        loss, _ = self.trainer.step(self.batch, self.y, 0.01, 1e-4, 1e-3)
        self.trainer.synchronize()
        return loss


def cuda_available() -> bool:
    try:
        from eventsim import _cuda
    except Exception as exc:  # numba.cuda import problems count as "no GPU"
        print(f"cuda: eventsim._cuda could not be imported ({exc!r})")
        return False
    return _cuda.is_available()


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--nmax", default="auto",
                    help="spike iterations of the dense baseline: 'auto' (= max spike count "
                         "eventsim finds on the batch + 1) or an integer, e.g. 16")
    ap.add_argument("--n1", type=int, default=1,
                    help="dense baseline: iterations over all neurons before restricting to "
                         "the still-firing ones (Algorithm 1's N_1)")
    args = ap.parse_args(argv)
    if args.batch < 1 or args.repeats < 1:
        ap.error("--batch and --repeats must be >= 1")

    x, y = load_batch(args.batch)
    retained = retain_freed_memory()  # as Trainer does
    n_in_spk = int((x < T_OUT).sum())
    print(f"eventsim {es.__version__}, numba threads {_threads()}, batch {args.batch}, "
          f"{n_in_spk / args.batch:.1f} input spikes/sample (t < {T_OUT}), float64, "
          f"freed memory kept in the heap: {retained}")

    # --- correctness of the dense baseline against eventsim's forward
    step_cpu = TrainStep("cpu", x, y)
    step_cpu()                                    # numba compile / warm-up
    step_cpu.reset()
    net = step_cpu.net
    res = net.forward(x)
    counts = res.spike_counts[0]
    n_max = int(counts.max()) + 1 if args.nmax == "auto" else int(args.nmax)
    print(f"eventsim hidden spikes: {counts.mean():.3f}/neuron, max {counts.max()} per neuron "
          f"-> dense N_max = {n_max}, N_1 = {args.n1}")
    w_in, w_out = net.weights
    dense = dense_forward_algorithm1(x, w_in, w_out, n_max=n_max, n1=args.n1)
    ok = check_against_eventsim(dense, res, n_max)
    lit = dense_forward_algorithm1(x, w_in, w_out, n_max=n_max, n1=args.n1,
                                   literal_line11=True)
    eq19 = dense_forward_algorithm1(x, w_in, w_out, n_max=n_max, n1=args.n1, stable_root=False)
    print(f"  variants: eq. 19 as printed (A - sqrt)/2V_th: max|dv_out| "
          f"{np.abs(eq19['v_out'] - res.v_out).max():.2e}, count mismatches "
          f"{int((eq19['counts'] != counts).sum())}; line 11 without the z > z_prev check: "
          f"max|dv_out| {np.abs(lit['v_out'] - res.v_out).max():.2e}, count mismatches "
          f"{int((lit['counts'] != counts).sum())}")
    ok &= check_against_eventsim(dense_forward_rewritten(x, w_in, w_out, n_max=n_max), res,
                                 n_max, "dense forward, line 8 rewritten,")

    # --- timing
    contenders = {"eventsim train step cpu": _resetting(step_cpu),
                  "dense Alg.1 forward": lambda: dense_forward_algorithm1(
                      x, w_in, w_out, n_max=n_max, n1=args.n1),
                  "dense forward, line 8 rewritten": lambda: dense_forward_rewritten(
                      x, w_in, w_out, n_max=n_max)}
    if cuda_available():
        step_gpu = TrainStep("cuda", x, y)
        step_gpu()
        step_gpu.reset()
        contenders["eventsim train step cuda"] = _resetting(step_gpu)
        step_resident = ResidentStep(x, y)
        step_resident()
        contenders["eventsim train step cuda resident"] = step_resident
    else:
        print("cuda: not available here (eventsim._cuda.is_available() is False), skipped")
    t = interleaved(contenders, args.repeats)
    print(f"\n{'contender':37s} {'best s':>9s} {'median s':>9s} {'samples/s':>10s}")
    for name, (best, med, _) in t.items():
        print(f"{name:37s} {best:9.4f} {med:9.4f} {args.batch / best:10.1f}")
    print()
    for name in contenders:
        if name.startswith("eventsim"):
            for base in (n for n in contenders if n.startswith("dense")):
                print(f"ratio ({name} samples/s) / ({base} samples/s) = "
                      f"{t[base][0] / t[name][0]:.2f}  "
                      f"(median-based {t[base][1] / t[name][1]:.2f})")
    print("(training = forward + backward + Adam; the dense baseline does the forward only)")
    return 0 if ok else 1


def _resetting(step):
    def run():
        step.reset()      # restores the initial weights and a fresh Adam: O(weights), ~1 ms
        step()
    return run


def _threads():
    import numba
    return numba.get_num_threads()


def check_against_eventsim(dense, res, n_max, label="dense Alg.1") -> bool:
    """Compare v_out, spike counts and spike times of the dense baseline with eventsim."""
    counts = res.spike_counts[0]
    hidden = res._layers[0]
    dv = np.abs(dense["v_out"] - res.v_out).max()
    rel = dv / np.abs(res.v_out).max()
    same = dense["counts"] == counts
    # spike times where the counts agree
    cap = min(n_max, hidden.out_t.shape[2])
    t_dense = TAU_I * np.log(dense["z"][:, :, :cap])
    t_ev = hidden.out_t[:, :, :cap]
    both = np.isfinite(t_dense) & np.isfinite(t_ev) & same[:, :, None]
    dt = np.abs(t_dense[both] - t_ev[both]).max() if both.any() else 0.0
    print(f"{label} vs eventsim forward (same weights, same {counts.shape[0]} samples, "
          f"M = {dense['m']} padded inputs):")
    print(f"  max|v_out diff| = {dv:.3e} (relative: {rel:.1e} of max|v_out|); hidden spike "
          f"counts differ for {int((~same).sum())} of {same.size} (sample, neuron); "
          f"max|spike time diff| = {dt:.3e}; (sample, neuron) with N_max = {n_max} spikes "
          f"in the dense run (possibly truncated): {dense['at_limit']}")
    if (~same).any():
        b, j = np.argwhere(~same)[0]
        print(f"  first count mismatch: sample {b} neuron {j}: eventsim {counts[b, j]} "
              f"spikes {hidden.out_t[b, j, :counts[b, j]]}, dense {dense['counts'][b, j]} "
              f"spikes {TAU_I * np.log(dense['z'][b, j, :dense['counts'][b, j]])}")
    good = dv <= 1e-9 and not (~same).any()
    print(f"  agreement {'OK' if good else 'FAILED'} (criterion: max|v_out diff| <= 1e-9 and "
          f"identical spike counts)" + ("" if good or dense["at_limit"] == 0 else
          "; some neurons reached N_max: raise --nmax"))
    return good


if __name__ == "__main__":
    sys.exit(main())
