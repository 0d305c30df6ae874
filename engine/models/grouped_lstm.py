"""Many independent :class:`LSTMRegressor` fits as one batched computation.

``GroupedLSTM`` trains ``G`` LSTMs of one architecture and one set of hyperparameters
on ``G`` data sets of the same shape (the per-symbol models of one walk-forward fold)
with grouped weights: every weight has a leading group axis, matrix products are
batched (``torch.bmm``: one per time step, ``[x_t; h_t-1; 1]`` against the input weights,
recurrent weights and bias side by side), and the gradients are written out by hand
(backpropagation through time, the gate derivatives of all steps computed at once), so one
training step of all ``G`` models costs a few hundred tensor operations instead of ``G``
times that. On a CPU the gain is the per-model overhead of many small fits (the arithmetic
is the same): about 1.3-2x less time per sample than ``torch.lstm`` at hidden size 32, about
3x at hidden size 16.

Each group follows :meth:`LSTMRegressor.fit` step by step: its own input/target
standardisation and validation tail, the same initial weights (or its own warm-start
weights), the same shuffles and dropout masks (drawn from the same seeded generators in
the same order), Adam with L2 weight decay, gradient clipping at norm 1 *per group*,
early stopping *per group* (a stopped group leaves the batch with its best weights).
The states it returns are :meth:`LSTMRegressor.get_state` dicts, so a fitted group
restores into an ``LSTMRegressor`` and the fold cache stores them as before.

The numbers are not bit-identical to ``LSTMRegressor`` (``torch.lstm`` and the fused
Adam kernel round differently: about 1e-6 on the weights after a few epochs), but a
group's numbers never depend on which other groups are batched with it, nor on their
count or order: every elementwise operation reads and writes one contiguous block per
group whose inner loop never spans two groups (:func:`_blocks`), matrix products run one
kernel per group (one group alone is given a passenger: ``bmm`` of a single matrix takes
other kernels), reductions run over a group's own rows. Intra-op threads are set to one
while a grouped computation runs (threads would split the work differently for different
batch sizes); use processes for cores.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch

from lstmknn.engine.models.base import as_float32
from lstmknn.engine.models.lstm import LSTMNet, LSTMRegressor, resolve_device

# Bump when the grouped training or prediction changes numerics: fold cache keys include it.
GROUPED_VERSION = "grouped-2"
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
MAX_NORM = 1.0


@contextmanager
def one_thread():
    """One intra-op thread inside the block (a group's rounding must not depend on the batch)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _gate_order(hidden: int) -> torch.Tensor:
    """Row permutation from torch's gate order (i, f, g, o) to ours (g, i, f, o): one tanh and
    one sigmoid per step, and the three gates fed by the cell gradient side by side."""
    h = hidden
    return torch.cat([torch.arange(2 * h, 3 * h), torch.arange(0, 2 * h), torch.arange(3 * h, 4 * h)])


class _Params:
    """Grouped weights in our layout: per layer ``w_l{l} [G, 4H, in + H]`` (input and recurrent
    weights side by side, gates in our order), ``b_ih_l{l}``, ``b_hh_l{l} [G, 4H]``; head
    ``w1 [G, K, H]``, ``b1 [G, K]``, ``w2 [G, 1, K or H]``, ``b2 [G, 1]``."""

    def __init__(self, tensors: dict[str, torch.Tensor], layers: int, head: bool) -> None:
        self.t = tensors
        self.layers = layers
        self.head = head

    def subset(self, keep: torch.Tensor) -> _Params:
        return _Params({k: v[keep] for k, v in self.t.items()}, self.layers, self.head)


def _to_grouped(states: Sequence[dict[str, torch.Tensor]], layers: int, hidden: int,
                head: bool) -> _Params:
    """Stack ``LSTMNet`` state dicts (names as ``net.state_dict()``) into our layout."""
    perm = _gate_order(hidden)
    t: dict[str, torch.Tensor] = {}
    for layer in range(layers):
        t[f"w_l{layer}"] = torch.stack(
            [torch.cat([s[f"lstm.weight_ih_l{layer}"], s[f"lstm.weight_hh_l{layer}"]], 1)[perm]
             for s in states]).float().contiguous()
        for kind in ("ih", "hh"):
            t[f"b_{kind}_l{layer}"] = torch.stack(
                [s[f"lstm.bias_{kind}_l{layer}"][perm] for s in states]).float().contiguous()
    names = ("head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias") if head else \
        (None, None, "head.weight", "head.bias")
    for ours, theirs in zip(("w1", "b1", "w2", "b2"), names, strict=True):
        if theirs is not None:
            t[ours] = torch.stack([s[theirs] for s in states]).float().contiguous()
    return _Params(t, layers, head)


def _from_grouped(p: _Params, g: int, hidden: int) -> dict[str, torch.Tensor]:
    """Group ``g``'s weights as an ``LSTMNet`` state dict (torch's names and gate order)."""
    inv = torch.argsort(_gate_order(hidden))
    out: dict[str, torch.Tensor] = {}
    for layer in range(p.layers):
        w = p.t[f"w_l{layer}"][g][inv]
        out[f"lstm.weight_ih_l{layer}"] = w[:, : w.shape[1] - hidden].clone()
        out[f"lstm.weight_hh_l{layer}"] = w[:, w.shape[1] - hidden:].clone()
        out[f"lstm.bias_ih_l{layer}"] = p.t[f"b_ih_l{layer}"][g][inv].clone()
        out[f"lstm.bias_hh_l{layer}"] = p.t[f"b_hh_l{layer}"][g][inv].clone()
    names = ("head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias") if p.head else \
        (None, None, "head.weight", "head.bias")
    for ours, theirs in zip(("w1", "b1", "w2", "b2"), names, strict=True):
        if theirs is not None:
            out[theirs] = p.t[ours][g].clone()
    return out


_LOCAL = threading.local()  # the workspace of the grouped computation running in this thread


@contextmanager
def workspace():
    """Reuse buffers across the steps of a fit, and across fits inside the block (fresh large
    buffers cost page faults, and their churn fragments the heap); an inner block reuses an
    outer one's buffers."""
    if getattr(_LOCAL, "ws", None) is not None:
        yield
        return
    _LOCAL.ws = {}
    try:
        yield
    finally:
        _LOCAL.ws = None


def _blocks(lead: int, G: int, rows: int, B: int, name: str = "") -> torch.Tensor:
    """An uninitialised ``[lead, G, rows, B]``, each group's ``[rows, B]`` block contiguous and
    the group stride padded past a multiple of 32 floats, so elementwise kernels never merge
    groups into one loop: each group's block is one inner loop, vectorised the same way
    whatever the number of groups. ``name``: reuse the workspace buffer of that name and shape."""
    ws = getattr(_LOCAL, "ws", None)
    key = (name, B)  # one buffer per name and batch width: the latest group count only
    if ws is not None and name and key in ws and ws[key].shape == (lead, G, rows, B):
        return ws[key]
    n = rows * B
    stride = n + 32 - n % 32
    buf = torch.empty(lead, G, stride)[:, :, :n].view(lead, G, rows, B)
    if ws is not None and name:
        ws[key] = buf
    return buf


class _Trace:
    """What a training forward pass keeps for the backward pass (time-major blocks)."""

    def __init__(self) -> None:
        self.xh: list[torch.Tensor] = []  # per layer [L + 1, G, in + H + 1, B]: [x_t; h_t-1; 1]
        self.acts: list[torch.Tensor] = []  # activated gates [L, G, 4H, B] (g, i, f, o)
        self.coef: list[torch.Tensor] = []  # d pre / d c for (g, i, f), d pre / d h for o
        self.dcell: list[torch.Tensor] = []  # o (1 - tanh(c)^2): d c / d h at each step
        self.layer_masks: list[torch.Tensor | None] = []  # inter-layer dropout [L, 1, H, B]
        self.head_mask: torch.Tensor | None = None  # [H, B], scaled
        self.last: torch.Tensor | None = None  # [G, H, B] top layer's last output, dropped out
        self.z: torch.Tensor | None = None  # head pre-activation [G, K, B]
        self.r: torch.Tensor | None = None  # head activation


_ONE = torch.ones(())


def _layer_forward(p: _Params, layer: int, x: torch.Tensor, trace: _Trace | None) -> torch.Tensor:
    """One LSTM layer over ``x [L, G, in, B]``; its outputs ``[L, G, H, B]``.

    Every elementwise operation reads and writes one block per group (see :func:`_blocks`),
    so a group's rounding never depends on the number of groups. One matrix product per step
    (``[x_t; h_t-1; 1]`` against the input and recurrent weights and the bias side by side)."""
    w = p.t[f"w_l{layer}"]
    L, G, n_in, B = x.shape
    H = w.shape[1] // 4
    bias = (p.t[f"b_ih_l{layer}"] + p.t[f"b_hh_l{layer}"]).unsqueeze(2)  # [G, 4H, 1]
    w_one = torch.cat([w, bias], 2)  # the bias as the weight of a constant input of 1
    xh = _blocks(L + 1, G, n_in + H + 1, B, f"xh{layer}")  # rows: x_t, h_t-1, 1
    xh[:L, :, :n_in] = x
    xh[0, :, n_in:n_in + H] = 0.0
    xh[:, :, n_in + H] = 1.0
    acts = _blocks(L, G, 4 * H, B, f"acts{layer}")
    cells = _blocks(L, G, H, B, f"cells{layer}")
    tanh_c = _blocks(L, G, H, B, f"tanh_c{layer}")
    pre = _blocks(1, G, 4 * H, B, "pre")[0]
    for t in range(L):
        torch.bmm(w_one, xh[t], out=pre)
        a = acts[t]
        torch.tanh(pre[:, :H], out=a[:, :H])
        torch.sigmoid(pre[:, H:], out=a[:, H:])
        g, i, f, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c = cells[t]
        if t == 0:
            torch.mul(i, g, out=c)
        else:
            torch.mul(f, cells[t - 1], out=c)
            c.addcmul_(i, g)
        torch.tanh(c, out=tanh_c[t])
        torch.mul(o, tanh_c[t], out=xh[t + 1, :, n_in:n_in + H])
    if trace is not None:  # derivatives of every step at once
        g, i, f, o = acts[:, :, :H], acts[:, :, H:2 * H], acts[:, :, 2 * H:3 * H], acts[:, :, 3 * H:]
        coef = _blocks(L, G, 4 * H, B, f"coef{layer}")
        torch.addcmul(_ONE, g, g, value=-1.0, out=coef[:, :, :H])
        coef[:, :, :H].mul_(i)  # d pre_g = dc * i * (1 - g^2)
        torch.addcmul(acts[:, :, H:], acts[:, :, H:], acts[:, :, H:], value=-1.0, out=coef[:, :, H:])
        coef[:, :, H:2 * H].mul_(g)  # d pre_i = dc * g * i (1 - i)
        coef[1:, :, 2 * H:3 * H].mul_(cells[:-1])  # d pre_f = dc * c_prev * f (1 - f)
        coef[0, :, 2 * H:3 * H].zero_()  # c_-1 = 0
        coef[:, :, 3 * H:].mul_(tanh_c)  # d pre_o = dh * tanh(c) * o (1 - o)
        dcell = _blocks(L, G, H, B, f"dcell{layer}")
        torch.addcmul(_ONE, tanh_c, tanh_c, value=-1.0, out=dcell)
        dcell.mul_(o)
        trace.xh.append(xh)
        trace.acts.append(acts)
        trace.coef.append(coef)
        trace.dcell.append(dcell)
    return xh[1:, :, n_in:n_in + H]


def _head(p: _Params, last: torch.Tensor, trace: _Trace | None = None) -> torch.Tensor:
    """The dense head on ``last [G, H, N]``: ``[G, N]``."""
    if p.head:
        z = torch.baddbmm(p.t["b1"].unsqueeze(2), p.t["w1"], last)
        r = torch.relu(z)
        if trace is not None:
            trace.z, trace.r = z, r
    else:
        r = last
    return torch.baddbmm(p.t["b2"].unsqueeze(2), p.t["w2"], r).squeeze(1)


def _forward(p: _Params, x: torch.Tensor, *, dropout: float = 0.0, train: bool = False,
             trace: _Trace | None = None) -> torch.Tensor:
    """Forecasts ``[G, B]`` of windows ``x [L, G, F, B]`` (standardised).

    In training, dropout masks come from the global generator in ``LSTMNet``'s order
    (inter-layer masks first, then the head's, each drawn in the batch-first shape torch
    draws it in), one mask shared by every group (the groups of a fit share a seed)."""
    keep = 1.0 - dropout
    inp = x
    out = x
    B = x.shape[3]
    for layer in range(p.layers):
        out = _layer_forward(p, layer, inp, trace)
        if layer < p.layers - 1:
            mask = None
            inp = out
            if train and dropout > 0:
                L, H = out.shape[0], out.shape[2]
                mask = torch.empty(B, L, H).bernoulli_(keep).div_(keep).permute(1, 2, 0).unsqueeze(1)
                inp = out * mask
            if trace is not None:
                trace.layer_masks.append(mask)
    last = out[-1]
    mask = None
    if train and dropout > 0:
        mask = torch.empty(B, last.shape[1]).bernoulli_(keep).div_(keep).t()
        last = last * mask
    else:
        last = last.contiguous()
    if trace is not None:
        trace.head_mask, trace.last = mask, last
    return _head(p, last, trace)


def _backward(p: _Params, trace: _Trace, dout: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of every weight given ``dout [G, B]`` (backpropagation through time)."""
    grads: dict[str, torch.Tensor] = {}
    r = trace.r if p.head else trace.last
    d1 = dout.unsqueeze(1)  # [G, 1, B]
    grads["w2"] = torch.bmm(d1, r.transpose(1, 2))
    grads["b2"] = dout.sum(1, keepdim=True)
    if p.head:
        dz = (p.t["w2"].transpose(1, 2) * d1) * (trace.z > 0)  # [G, K, B]
        grads["w1"] = torch.bmm(dz, trace.last.transpose(1, 2))
        grads["b1"] = dz.sum(2)
        dlast = torch.bmm(p.t["w1"].transpose(1, 2), dz)
    else:
        dlast = p.t["w2"].transpose(1, 2) * d1
    if trace.head_mask is not None:
        dlast = dlast * trace.head_mask
    G, B = dout.shape
    d_above: torch.Tensor | None = None  # gradient w.r.t. the layer's outputs [L, G, H, B]
    for layer in reversed(range(p.layers)):
        xh, acts, coef, dcell = trace.xh[layer], trace.acts[layer], trace.coef[layer], trace.dcell[layer]
        w = p.t[f"w_l{layer}"]
        L, H = acts.shape[0], acts.shape[2] // 4
        n_in = w.shape[2] - H
        w_t = w.transpose(1, 2)  # [G, in + H, 4H]
        dw = torch.zeros(G, 4 * H, n_in + H + 1)  # the last column: the bias (input of 1)
        d = _blocks(1, G, 4 * H, B, "d")[0]
        d_in = _blocks(L, G, n_in, B, f"d_in{layer}") if layer > 0 else None
        dc = _blocks(1, G, H, B, "dc")[0]
        dh = dlast if d_above is None else d_above[L - 1]
        for t in reversed(range(L)):
            if t == L - 1:
                torch.mul(dh, dcell[t], out=dc)
            else:
                dc.addcmul_(dh, dcell[t])  # dc held the next step's dc * f
            torch.mul(dc.unsqueeze(1), coef[t, :, :3 * H].unflatten(1, (3, H)),
                      out=d[:, :3 * H].unflatten(1, (3, H)))
            torch.mul(dh, coef[t, :, 3 * H:], out=d[:, 3 * H:])
            dw.baddbmm_(d, xh[t].transpose(1, 2))
            if d_in is not None or t > 0:
                back = torch.bmm(w_t, d)  # [G, in + H, B]: to the input and to h_t-1
                if d_in is not None:
                    d_in[t] = back[:, :n_in]
                if t > 0:
                    dc.mul_(acts[t, :, 2 * H:3 * H])
                    dh = back[:, n_in:]
                    if d_above is not None:
                        dh = dh + d_above[t - 1]
        grads[f"w_l{layer}"] = dw[..., :-1].contiguous()
        grads[f"b_ih_l{layer}"] = dw[..., -1].contiguous()
        grads[f"b_hh_l{layer}"] = grads[f"b_ih_l{layer}"]
        if d_in is not None:
            mask = trace.layer_masks[layer - 1]
            d_above = d_in * mask if mask is not None else d_in
    return grads


class _Adam:
    """Adam with L2 weight decay (``torch.optim.Adam``'s rule), one step count for all groups."""

    def __init__(self, p: _Params, lr: float, weight_decay: float) -> None:
        self.lr, self.wd = lr, weight_decay
        self.m = {k: torch.zeros_like(v) for k, v in p.t.items()}
        self.v = {k: torch.zeros_like(v) for k, v in p.t.items()}
        self.steps = 0

    def subset(self, keep: torch.Tensor) -> None:
        self.m = {k: v[keep] for k, v in self.m.items()}
        self.v = {k: v[keep] for k, v in self.v.items()}

    def step(self, p: _Params, grads: dict[str, torch.Tensor]) -> None:
        b1, b2 = ADAM_BETAS
        self.steps += 1
        bc1 = 1.0 - b1 ** self.steps
        bc2_sqrt = (1.0 - b2 ** self.steps) ** 0.5
        step_size = self.lr / bc1
        for k, w in p.t.items():
            g = grads[k]
            if self.wd:
                g = g + w * self.wd
            m = self.m[k] = self.m[k] * b1 + g * (1.0 - b1)
            v = self.v[k] = self.v[k] * b2 + (g * g) * (1.0 - b2)
            denom = torch.sqrt(v) / bc2_sqrt + ADAM_EPS
            p.t[k] = w - (m / denom) * step_size


def _clip(grads: dict[str, torch.Tensor]) -> None:
    """Scale each group's gradients to a total norm of at most ``MAX_NORM`` (in place)."""
    sq = [(g * g).flatten(1).sum(1) for k, g in grads.items() if not k.startswith("b_hh")]
    # b_ih and b_hh are two weights with the same gradient: count it twice, as torch would
    sq += [(g * g).flatten(1).sum(1) for k, g in grads.items() if k.startswith("b_hh")]
    total = torch.sqrt(torch.stack(sq, 1).sum(1))
    coef = torch.clamp(MAX_NORM / (total + 1e-6), max=1.0)
    for k, g in grads.items():
        if k.startswith("b_hh"):
            continue  # the same tensor as b_ih's
        grads[k] = g * coef.view(-1, *([1] * (g.dim() - 1)))
    for k in list(grads):
        if k.startswith("b_hh"):
            grads[k] = grads["b_ih" + k[4:]]


def _mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error per group: ``[G]``."""
    d = pred - y
    return (d * d).mean(1)


def _time_major(X: np.ndarray) -> torch.Tensor:
    """``[G, n, L, F]`` windows as an ``[L, G, F, n]`` tensor."""
    return torch.from_numpy(X).permute(2, 0, 3, 1).contiguous()


def _sample_major(X: np.ndarray) -> torch.Tensor:
    """``[G, n, L, F]`` windows as ``[n, L, G, F]`` (a batch of samples is a row gather)."""
    return torch.from_numpy(X).permute(1, 2, 0, 3).contiguous()


def _batch(Xn: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Samples ``idx`` of ``Xn [n, L, G, F]`` as ``[L, G, F, B]``."""
    n, L, G, F = Xn.shape
    return Xn.view(n, -1).index_select(0, idx).t().contiguous().view(L, G, F, len(idx))


class GroupedLSTM:
    """Fit and predict ``G`` LSTMs of one :class:`LSTMRegressor` configuration at once.

    ``estimator``: an (unfitted) ``LSTMRegressor`` giving the architecture, the training
    hyperparameters and ``random_state`` (one seed for every group, as the per-symbol
    models of a fold share it). CPU only.
    """

    def __init__(self, estimator: LSTMRegressor) -> None:
        self.est = estimator

    # -- fitting ------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray,
            init_params: Sequence[dict[str, torch.Tensor] | None] | None = None
            ) -> list[dict[str, torch.Tensor]]:
        """Fit on ``X [G, n, lookback, features]``, ``y [G, n]``; one
        :meth:`LSTMRegressor.get_state` dict per group.

        ``init_params``: per group, warm-start weights (``LSTMRegressor.params_``) or None;
        all groups warm-start or none does (a fit's epochs depend on it).
        """
        e = self.est
        if resolve_device(e.device).type != "cpu":
            raise ValueError("GroupedLSTM runs on the CPU")
        X = as_float32(X)
        y = as_float32(y)
        if X.ndim != 4 or y.shape != X.shape[:2]:
            raise ValueError(f"X must be [groups, n, lookback, features] matching y [groups, n] "
                             f"(got {X.shape}, {y.shape})")
        G, n, L, n_feat = X.shape
        warm = init_params is not None and any(w is not None for w in init_params)
        if warm and any(w is None for w in init_params):  # type: ignore[union-attr]
            raise ValueError("either every group warm-starts or none does")
        n_val = max(1, int(round(n * e.val_fraction)))
        n_tr = n - n_val
        if n_tr < 2:
            raise ValueError(f"too few training samples for the LSTM ({n})")
        stats = []
        Xs = np.empty_like(X)
        ys = np.empty_like(y)
        for g in range(G):  # exactly LSTMRegressor.fit's statistics, one group at a time
            last = X[g, :n_tr, -1, :]
            x_mean = last.mean(axis=0)
            x_std = last.std(axis=0) + 1e-8
            y_mean = float(y[g, :n_tr].mean())
            y_std = float(y[g, :n_tr].std() + 1e-12)
            Xs[g] = (X[g] - x_mean) / x_std
            ys[g] = (y[g] - y_mean) / y_std
            stats.append((x_mean, x_std, y_mean, y_std))
        with torch.random.fork_rng(devices=[]), torch.no_grad(), one_thread(), workspace():
            torch.manual_seed(e.random_state)
            net = LSTMNet(n_feat, e.hidden_size, e.num_layers, e.head_size, e.dropout)
            start = list(init_params) if warm else [net.state_dict()] * G  # type: ignore[arg-type]
            # one group alone would take other kernels (matrix-vector products): add a passenger
            rows = [0, 0] if G == 1 else list(range(G))
            params = _to_grouped([start[g] for g in rows], e.num_layers, e.hidden_size,
                                 e.head_size > 0)
            yt = torch.from_numpy(ys[rows])
            epochs = e.warm_epochs if warm else e.epochs
            Xr = Xs[rows] if G == 1 else Xs
            best = self._train(params, _sample_major(Xr[:, :n_tr]), yt[:, :n_tr],
                               _time_major(Xr[:, n_tr:]), yt[:, n_tr:].contiguous(), epochs)
        states = []
        for g in range(G):
            st = {f"module.{k}": v for k, v in _from_grouped(best, g, e.hidden_size).items()}
            x_mean, x_std, y_mean, y_std = stats[g]
            st["x_mean"] = torch.from_numpy(x_mean.copy())
            st["x_std"] = torch.from_numpy(x_std.copy())
            st["y_stats"] = torch.tensor([y_mean, y_std], dtype=torch.float64)
            states.append(st)
        return states

    def _train(self, p: _Params, Xn: torch.Tensor, yt: torch.Tensor, Xv: torch.Tensor,
               yv: torch.Tensor, epochs: int) -> _Params:
        """Train every group; the best weights (by validation loss) of each group.

        ``Xn [n, L, G, F]`` training windows, ``Xv [L, G, F, n_val]``. A group that stops early leaves the batch; while fewer than two
        groups would be left, one stopped group stays on as a passenger (slot owner -1)."""
        e = self.est
        G = Xn.shape[2]
        gen = torch.Generator().manual_seed(e.random_state)
        best_val = _mse(_forward(p, Xv), yv).tolist()  # the starting weights are a candidate too
        best = _Params({k: v.clone() for k, v in p.t.items()}, p.layers, p.head)
        bad = [0] * G
        owner = list(range(G))  # group of each slot of the batch (-1: a passenger)
        opt = _Adam(p, e.lr, e.weight_decay)
        n = Xn.shape[0]
        for _ in range(epochs):
            order = torch.randperm(n, generator=gen)
            for s in range(0, n, e.batch_size):
                idx = order[s:s + e.batch_size]
                trace = _Trace()
                pred = _forward(p, _batch(Xn, idx), dropout=e.dropout, train=True, trace=trace)
                dout = (pred - yt[:, idx]) * (2.0 / len(idx))
                grads = _backward(p, trace, dout)
                _clip(grads)
                opt.step(p, grads)
            val = _mse(_forward(p, Xv), yv).tolist()
            improved, stopped = [], []
            for j, g in enumerate(owner):
                if g < 0 or (j > 0 and g in owner[:j]):
                    continue
                if val[j] < best_val[g] - 1e-6:
                    best_val[g], bad[g] = val[j], 0
                    improved.append(j)
                else:
                    bad[g] += 1
                    if e.patience and bad[g] >= e.patience:
                        stopped.append(j)
            if improved:
                slots = torch.tensor(improved)
                dest = torch.tensor([owner[j] for j in improved])
                for k, v in p.t.items():
                    best.t[k][dest] = v[slots]
            if stopped:
                keep = [j for j, g in enumerate(owner) if g >= 0 and j not in stopped]
                if not keep:
                    break
                if len(keep) == 1:
                    passenger = stopped[0]
                    keep = sorted([keep[0], passenger])
                    owner[passenger] = -1
                owner = [owner[j] for j in keep]
                rows = torch.tensor(keep)
                p = p.subset(rows)
                opt.subset(rows)
                Xn, yt = Xn[:, :, rows].contiguous(), yt[rows]
                Xv, yv = Xv[:, rows].contiguous(), yv[rows]
        return best

    # -- prediction ---------------------------------------------------------------------
    def predict_with_confidence(self, states: Sequence[dict[str, torch.Tensor]],
                                X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forecasts and MC-dropout confidences ``[G, T]`` of ``X [G, T, lookback, features]``
        by the fitted ``states`` (as :meth:`LSTMRegressor.predict_with_confidence`)."""
        e = self.est
        X = as_float32(X)
        G = X.shape[0]
        rows = [0, 0] if G == 1 else list(range(G))
        Xs = np.empty_like(X)
        ys = []
        for g, st in enumerate(states):
            x_mean = st["x_mean"].numpy().astype(np.float32)
            x_std = st["x_std"].numpy().astype(np.float32)
            Xs[g] = as_float32((X[g] - x_mean) / x_std)
            ys.append([float(v) for v in st["y_stats"]])
        y_mean, y_std = (np.array(c)[:, None] for c in zip(*ys, strict=True))
        weights = [{k[len("module."):]: v for k, v in states[g].items() if k.startswith("module.")}
                   for g in rows]
        with torch.no_grad(), one_thread(), workspace():
            p = _to_grouped(weights, e.num_layers, e.hidden_size, e.head_size > 0)
            out = _time_major(Xs[rows] if G == 1 else Xs)
            for layer in range(p.layers):
                out = _layer_forward(p, layer, out, None)
            last = out[-1].contiguous()  # [G, H, T]
            pred = _head(p, last)[:G].numpy().astype(np.float64) * y_std + y_mean
            if e.mc_passes < 2 or e.dropout <= 0:
                return pred, np.full(pred.shape, np.nan)
            gen = torch.Generator().manual_seed(e.random_state + 1)
            keep = 1.0 - e.dropout
            masks = torch.bernoulli(torch.full((e.mc_passes, e.hidden_size), keep), generator=gen)
            T = last.shape[2]
            # [G, H, P, T]: pass q scales hidden unit h by masks[q, h] / keep
            thinned = last.unsqueeze(2) * (masks / keep).t().unsqueeze(2)
            passes = _head(p, thinned.reshape(len(rows), e.hidden_size, e.mc_passes * T))
            passes = passes[:G].view(G, e.mc_passes, T).numpy().astype(np.float64)
            passes = passes * y_std[:, :, None] + y_mean[:, :, None]
        conf = np.stack([-np.log(passes[g].std(axis=0) + 1e-12) for g in range(G)])
        return pred, conf
