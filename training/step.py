"""One optimisation step on a fixed-shape batch: eager, compiled, and/or captured once as a CUDA graph.

At the paper's sizes a step is hundreds of tiny kernels, so on a GPU its time is
launch and host overhead, not arithmetic. Capturing forward, backward, clipping
and Adam into one CUDA graph removes the launch overhead; torch.compile fuses the
elementwise work (BN, activations, the merge, the KL) into fewer kernels, and its
kernels are captured in the same graph. The step reads its batch and the warm-up
weight beta from static device buffers, so one graph serves every step of every
epoch. On a CPU (or when capture fails) the same code runs without a graph.

Step modes: eager (plain PyTorch); graph (CUDA graph on a GPU); compile
(torch.compile, plus the CUDA graph on a GPU); auto (graph on a GPU, eager on a CPU).
"""
from __future__ import annotations

import sys

import torch

from .models import LatentHierarchy
from .objectives import BatchStats
from .optim import LasagneAdam, clip_gradients, total_norm

WARMUP_STEPS = 3  # eager steps on a side stream before capture, as torch.cuda.graphs requires


def make_optimizer(model: LatentHierarchy, lr: float, graph: bool = False, eps: float = 1e-4) -> LasagneAdam:
    """The authors' Adam (training/optim.py); its step counters live on the device, so it runs in a graph
    as it runs eagerly, and `graph` only decides whether the learning rate must be a device tensor."""
    opt = LasagneAdam(model.parameters(), lr=lr, eps=eps)
    set_lr(opt, lr, graph)
    return opt


def set_lr(optimizer: torch.optim.Optimizer, lr: float, graph: bool) -> None:
    """Set the learning rate; in a graph it must be a device tensor updated in place,
    since a Python float would be frozen into the captured kernels."""
    for group in optimizer.param_groups:
        if graph:
            if torch.is_tensor(group["lr"]):
                group["lr"].fill_(lr)
            else:
                group["lr"] = torch.tensor(lr, device=group["params"][0].device)
        else:
            group["lr"] = lr


def use_graph(mode: str, device: torch.device) -> bool:
    """CUDA graphs need a CUDA device; everywhere else the step runs without one."""
    return device.type == "cuda" and mode != "eager"


def use_compile(mode: str) -> bool:
    return mode == "compile"


class ModelStep:
    """One model's step on static buffers: its batch `x`, its warm-up weight `beta`.

    A step whose loss or gradient is not finite, or whose gradient norm is over skip_threshold (when
    positive: VDVAE's gradient skipping), changes nothing (weights, Adam moments, BN statistics, the
    moving average) and counts as skipped; `skipped` and `streak` (consecutive skips) live on the
    device and are read once per epoch. With `ema` (a copy of the model) and ema_rate, every good step
    moves ema's weights toward the model's: ema <- rate * ema + (1 - rate) * weights (VDVAE's update).
    """

    def __init__(self, model: LatentHierarchy, optimizer: LasagneAdam, batch_size: int,
                 iw_samples: int = 1, grad_clip: float = 0.0, compile: bool = False,
                 grad_clip_value: float = 0.0, mc_samples: int = 1, skip_threshold: float = 0.0,
                 ema: LatentHierarchy | None = None, ema_rate: float = 0.0):
        self.model, self.optimizer = model, optimizer
        self.skip_threshold, self.ema_rate = skip_threshold, ema_rate
        self.ema_params = list(ema.parameters()) if ema is not None else []
        self.ema_buffers = [b for b in ema.buffers() if b.is_floating_point()] if ema is not None else []
        self.loss = torch.compile(self._loss) if compile else self._loss
        self.iw_samples, self.mc_samples = iw_samples, mc_samples
        self.grad_clip, self.grad_clip_value = grad_clip, grad_clip_value
        p = next(model.parameters())
        self.x = torch.zeros(batch_size, model.cfg.input_dim, device=p.device)
        self.beta = torch.zeros((), device=p.device)
        self.buffers = [b for b in model.buffers() if b.is_floating_point()]
        self.saved = [torch.empty_like(b) for b in self.buffers]
        self.skipped = torch.zeros((), device=p.device)
        self.streak = torch.zeros((), device=p.device)
        self.max_streak = torch.zeros((), device=p.device)

    def _loss(self, x: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, BatchStats]:
        return self.model.loss(x, beta, self.iw_samples, self.mc_samples)

    def load(self, x: torch.Tensor, beta: float) -> None:
        self.x.copy_(x)
        self.beta.fill_(beta)

    def reset_counters(self) -> None:
        self.skipped.zero_()
        self.max_streak.copy_(self.streak)

    def step(self, on_device: bool = True) -> tuple[BatchStats, torch.Tensor]:
        """Forward, backward, clipping and Adam; gradients must be None (set) before. Returns (stats, ok).

        on_device: decide the skip without leaving the device (what a CUDA graph needs); otherwise read
        `ok` on the host and do the skip's work only when a step is bad (40% faster eagerly on a CPU).
        """
        if self.buffers:
            torch._foreach_copy_(self.saved, self.buffers)
        loss, stats = self.loss(self.x, self.beta)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        grads = [p.grad for p in params]
        norm = total_norm(grads)
        ok = torch.isfinite(norm) & torch.isfinite(loss)
        if self.skip_threshold > 0:
            ok = ok & (norm <= self.skip_threshold)
        if on_device:
            clip_gradients(grads, norm, self.grad_clip, self.grad_clip_value, ok)
            self.optimizer.step(ok)
            for b, saved in zip(self.buffers, self.saved):  # a skipped step leaves BN's statistics as they were
                b.copy_(torch.where(ok, b, saved))
            if self.ema_params:
                self.update_ema(ok.to(torch.float32) * (1 - self.ema_rate))
        elif bool(ok):
            clip_gradients(grads, norm, self.grad_clip, self.grad_clip_value)
            self.optimizer.step()
            if self.ema_params:
                self.update_ema(1 - self.ema_rate)
        elif self.buffers:  # skipped: no update at all, and BN's statistics as they were
            torch._foreach_copy_(self.buffers, self.saved)
        bad = (~ok).to(torch.float32)
        self.skipped.add_(bad)
        self.streak.add_(bad).mul_(bad)  # +1 on a skip, back to 0 on a good step
        torch.maximum(self.max_streak, self.streak, out=self.max_streak)
        return stats, ok

    def update_ema(self, weight: float | torch.Tensor) -> None:
        """ema <- ema + weight * (weights - ema), weight = 1 - rate (0 on a skipped step); BN's statistics copied."""
        with torch.no_grad():
            for e, p in zip(self.ema_params, self.model.parameters()):
                e.lerp_(p, weight)
            if self.ema_buffers:
                torch._foreach_copy_(self.ema_buffers, self.buffers)

    def eager(self) -> tuple[BatchStats, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        return self.step(on_device=False)


class GroupStep:
    """Several models' steps as one callable ([x], [beta]) -> [BatchStats]; on a GPU one CUDA graph.

    Models in a group are independent (own weights, optimizer, data): capturing
    all their steps in one graph pays the launch overhead once for the group.
    """

    def __init__(self, members: list[ModelStep], graph: bool = False):
        self.members = members
        self.graph_wanted = graph
        self.graph: torch.cuda.CUDAGraph | None = None
        self.stats: list[tuple[BatchStats, torch.Tensor]] | None = None
        self.calls = 0

    def _capture(self) -> None:
        for m in self.members:
            m.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.stats = [m.step() for m in self.members]
        self.graph = graph

    def __call__(self, xs: list[torch.Tensor], betas: list[float]) -> list[tuple[BatchStats, torch.Tensor]]:
        for m, x, beta in zip(self.members, xs, betas):
            m.load(x, beta)
        self.calls += 1
        if not self.graph_wanted:
            return [m.eager() for m in self.members]
        if self.graph is None:
            if self.calls <= WARMUP_STEPS:  # real steps, on a side stream so capture sees a warm allocator
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    stats = [m.eager() for m in self.members]
                torch.cuda.current_stream().wait_stream(side)
                return stats
            try:
                self._capture()
            except Exception as e:  # capture is an optimisation: never lose a run over it
                print(f"warning: CUDA graph capture failed ({str(e).splitlines()[0]}); training eagerly",
                      file=sys.stderr)
                self.graph_wanted, self.graph = False, None
                return [m.eager() for m in self.members]
        assert self.graph is not None and self.stats is not None
        self.graph.replay()
        return self.stats


class TrainStep(GroupStep):
    """A group of one: (x_batch, beta) -> BatchStats that trains the model one step."""

    def __init__(self, model: LatentHierarchy, optimizer: LasagneAdam, batch_size: int,
                 iw_samples: int = 1, grad_clip: float = 0.0, graph: bool = False, compile: bool = False,
                 grad_clip_value: float = 0.0, mc_samples: int = 1):
        super().__init__([ModelStep(model, optimizer, batch_size, iw_samples, grad_clip, compile,
                                    grad_clip_value, mc_samples)], graph)

    def __call__(self, x: torch.Tensor, beta: float) -> BatchStats:  # type: ignore[override]
        return super().__call__([x], [beta])[0][0]
