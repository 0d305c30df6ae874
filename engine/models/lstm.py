"""PyTorch LSTM regressor with scikit-learn estimator conventions."""

from __future__ import annotations

import copy

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from torch import nn

from lstmknn.engine.models.base import as_float32, check_is_fitted

# Bump when training or prediction code changes numerics: cached fold models are keyed by it.
MODEL_VERSION = "lstm-3"


class LSTMNet(nn.Module):
    """Stacked LSTM over a lookback window, then a small dense head."""

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, head_size: int,
                 dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        if head_size > 0:
            self.head = nn.Sequential(nn.Linear(hidden_size, head_size), nn.ReLU(),
                                      nn.Linear(head_size, 1))
        else:
            self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        # x: [batch, lookback, features]; masks: [passes, hidden] Monte-Carlo dropout masks
        out, _ = self.lstm(x)  # [batch, lookback, hidden]
        last = out[:, -1, :]  # [batch, hidden]
        if masks is None:
            return self.head(self.drop(last)).squeeze(-1)  # [batch]
        thinned = last.unsqueeze(0) * masks.unsqueeze(1)  # [passes, batch, hidden]
        return self.head(thinned).squeeze(-1)  # [passes, batch]


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("`lstm.device` is 'cuda' but no CUDA device is available")
    return torch.device(device)


class LSTMRegressor(RegressorMixin, BaseEstimator):
    """Next-period return forecaster over windows ``X[n_samples, lookback, n_features]``.

    Inputs and target are standardised with statistics of the training samples
    only. The last ``val_fraction`` of the (time-ordered) training samples is a
    validation tail for early stopping; the best epoch's weights are kept.
    ``fit(X, y, init_params=...)`` warm-starts from another fit's
    ``params_`` (an explicit choice, used by the walk-forward) and then trains
    for ``warm_epochs`` epochs instead of ``epochs``.
    """

    def __init__(self, *, hidden_size: int = 32, num_layers: int = 1, head_size: int = 16,
                 dropout: float = 0.1, epochs: int = 40, warm_epochs: int = 1,
                 batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-2,
                 patience: int = 5, val_fraction: float = 0.15, mc_passes: int = 0,
                 random_state: int = 0, device: str = "cpu") -> None:
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.head_size = head_size
        self.dropout = dropout
        self.epochs = epochs
        self.warm_epochs = warm_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.mc_passes = mc_passes
        self.random_state = random_state
        self.device = device

    def fit(self, X: np.ndarray, y: np.ndarray, init_params: dict | None = None) -> LSTMRegressor:
        X = as_float32(X)
        y = as_float32(y).reshape(-1)
        if X.ndim != 3 or len(X) != len(y):
            raise ValueError(f"X must be [n_samples, lookback, features] matching y (got {X.shape}, {y.shape})")
        device = resolve_device(self.device)
        n, _, n_feat = X.shape
        n_val = max(1, int(round(n * self.val_fraction)))
        n_tr = n - n_val
        if n_tr < 2:
            raise ValueError(f"too few training samples for the LSTM ({n})")
        last = X[:n_tr, -1, :]
        self.x_mean_ = last.mean(axis=0)
        self.x_std_ = last.std(axis=0) + 1e-8
        self.y_mean_ = float(y[:n_tr].mean())
        self.y_std_ = float(y[:n_tr].std() + 1e-12)
        Xs = torch.from_numpy((X - self.x_mean_) / self.x_std_).to(device)
        ys = torch.from_numpy((y - self.y_mean_) / self.y_std_).to(device)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.random_state)
            net = LSTMNet(n_feat, self.hidden_size, self.num_layers, self.head_size, self.dropout)
            if init_params is not None:
                net.load_state_dict(init_params)
            net = net.to(device)
            epochs = self.warm_epochs if init_params is not None else self.epochs
            self.history_ = self._train(net, Xs[:n_tr], ys[:n_tr], Xs[n_tr:], ys[n_tr:], epochs)
        self.module_ = net.eval()
        self.n_features_in_ = n_feat
        self.lookback_ = X.shape[1]
        return self

    def _train(self, net: nn.Module, Xt: torch.Tensor, yt: torch.Tensor, Xv: torch.Tensor,
               yv: torch.Tensor, epochs: int) -> list[tuple[float, float]]:
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay,
                               foreach=False, fused=next(net.parameters()).device.type in ("cpu", "cuda"))
        loss_fn = nn.MSELoss()
        gen = torch.Generator().manual_seed(self.random_state)
        net.eval()
        with torch.no_grad():
            best = float(loss_fn(net(Xv), yv))  # the starting weights are a candidate too
        best_state, bad = copy.deepcopy(net.state_dict()), 0
        history = [(float("nan"), best)]
        for _ in range(epochs):
            net.train()
            order = torch.randperm(len(Xt), generator=gen).to(Xt.device)
            total = 0.0
            for i in range(0, len(Xt), self.batch_size):
                idx = order[i:i + self.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(net(Xt[idx]), yt[idx])
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                total += float(loss.detach()) * len(idx)
            net.eval()
            with torch.no_grad():
                val = float(loss_fn(net(Xv), yv))
            history.append((total / len(Xt), val))
            if val < best - 1e-6:
                best, best_state, bad = val, copy.deepcopy(net.state_dict()), 0
            else:
                bad += 1
                if self.patience and bad >= self.patience:
                    break
        net.load_state_dict(best_state)
        return history

    @property
    def params_(self) -> dict[str, torch.Tensor]:
        """The fitted weights as a CPU state dict (for warm starts and caching)."""
        check_is_fitted(self, "module_")
        return {k: v.detach().cpu().clone() for k, v in self.module_.state_dict().items()}

    def get_state(self) -> dict[str, torch.Tensor]:
        """Weights plus scaling statistics: everything ``predict`` needs, as tensors."""
        state = {f"module.{k}": v for k, v in self.params_.items()}
        state["x_mean"] = torch.from_numpy(self.x_mean_.copy())
        state["x_std"] = torch.from_numpy(self.x_std_.copy())
        state["y_stats"] = torch.tensor([self.y_mean_, self.y_std_], dtype=torch.float64)
        return state

    def state_layout(self, n_features: int) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Shape and dtype of every tensor :meth:`get_state` returns for ``n_features`` inputs."""
        with torch.device("meta"):  # shapes only: no memory, no draw from the global RNG
            net = LSTMNet(n_features, self.hidden_size, self.num_layers, self.head_size,
                          self.dropout)
        layout = {f"module.{k}": (tuple(v.shape), v.dtype) for k, v in net.state_dict().items()}
        layout["x_mean"] = layout["x_std"] = ((n_features,), torch.float32)
        layout["y_stats"] = ((2,), torch.float64)
        return layout

    def state_problem(self, state: object, n_features: int | None = None, *,
                      finite: bool = True) -> str | None:
        """Why ``state`` cannot be restored into this estimator, or None if it can.

        Checks the names, shapes and dtypes against a network built from this
        estimator's parameters (``n_features`` defaults to the length of
        ``x_mean``) and, with ``finite``, that every value is finite and the
        scales are positive.
        """
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            return "the state is not a dict of tensors"
        if n_features is None:
            if not isinstance(state.get("x_mean"), torch.Tensor):
                return "the state has no x_mean"
            n_features = int(state["x_mean"].numel())
        layout = self.state_layout(n_features)
        if set(state) != set(layout):
            diff = sorted(set(state) ^ set(layout))
            return f"tensor names do not match the model (differ: {', '.join(diff[:4])})"
        for name, (shape, dtype) in layout.items():
            got = state[name]
            if tuple(got.shape) != shape or got.dtype != dtype:
                return (f"`{name}` is {tuple(got.shape)} {got.dtype}, the model needs {shape} {dtype}")
            if finite and not bool(torch.isfinite(got).all()):
                return f"`{name}` has non-finite values"
        if finite and not (bool((state["x_std"] > 0).all()) and float(state["y_stats"][1]) > 0):
            return "scales (x_std, y_std) must be positive"
        return None

    def set_state(self, state: dict[str, torch.Tensor]) -> LSTMRegressor:
        """Restore a fitted model from :meth:`get_state` (no training).

        A state whose tensor names, shapes or dtypes do not fit this estimator
        (see :meth:`state_problem`) is a ``ValueError`` before any weight is
        loaded. Values are not judged here: a diverged fit restores as it is.
        """
        problem = self.state_problem(state, finite=False)
        if problem is not None:
            raise ValueError(f"cannot restore {type(self).__name__}: {problem}")
        weights = {k[len("module."):]: v for k, v in state.items() if k.startswith("module.")}
        n_feat = int(state["x_mean"].numel())
        net = LSTMNet(n_feat, self.hidden_size, self.num_layers, self.head_size, self.dropout)
        net.load_state_dict(weights)
        self.module_ = net.to(resolve_device(self.device)).eval()
        self.x_mean_ = state["x_mean"].numpy().astype(np.float32)
        self.x_std_ = state["x_std"].numpy().astype(np.float32)
        self.y_mean_, self.y_std_ = (float(v) for v in state["y_stats"])
        self.n_features_in_ = n_feat
        return self

    def _forward(self, X: np.ndarray, masks: torch.Tensor | None = None) -> np.ndarray:
        device = next(self.module_.parameters()).device
        Xs = torch.from_numpy(as_float32((as_float32(X) - self.x_mean_) / self.x_std_)).to(device)
        self.module_.eval()
        with torch.no_grad():
            m = None if masks is None else masks.to(device)
            out = self.module_(Xs, m).cpu().numpy().astype(np.float64)
        return out * self.y_std_ + self.y_mean_

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "module_")
        return self._forward(X)

    def predict_with_confidence(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Point forecast and confidence ``-log(std of mc_passes dropout passes)``.

        Each Monte-Carlo pass drops hidden units with one mask drawn for the
        pass (a thinned network), so a row's confidence does not depend on
        which other rows are predicted with it. Higher means the passes agree
        more. NaN when ``mc_passes`` < 2 or dropout is 0.
        """
        pred = self.predict(X)
        if self.mc_passes < 2 or self.dropout <= 0:
            return pred, np.full(len(pred), np.nan)
        gen = torch.Generator().manual_seed(self.random_state + 1)
        keep = 1.0 - self.dropout
        masks = torch.bernoulli(torch.full((self.mc_passes, self.hidden_size), keep), generator=gen)
        passes = self._forward(X, masks / keep)  # [passes, n]
        return pred, -np.log(passes.std(axis=0) + 1e-12)
