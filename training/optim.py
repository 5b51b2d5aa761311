"""The authors' update rule: Lasagne's Adam after total-norm and element-wise gradient clipping.

Sønderby et al.'s run_models.py (l.731-737) clips the gradient's total norm to 4
(lasagne.updates.total_norm_constraint), then every element to +-0.9, then
applies lasagne.updates.adam with epsilon 1e-4. Lasagne's Adam differs from
torch's in where epsilon sits:

    lasagne:  p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    torch:    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

so torch's Adam equals Lasagne's only with an epsilon of eps / sqrt(1 - b2^t),
which changes every step (2.2e-4 after one MNIST epoch for eps = 1e-4). At
1e-4 that damps the steps of weights with tiny gradients, such as those of
collapsed units, so it is implemented exactly here rather than approximated.

Every step takes `ok`, a 0-dim bool device tensor: where it is False (a
non-finite loss or gradient) the step leaves weights and moments untouched, so
one bad batch costs nothing and a CUDA graph never needs a host decision.
"""
from __future__ import annotations

import torch

LASAGNE_NORM_EPS = 1e-7  # total_norm_constraint's epsilon


def total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The gradients' joint L2 norm (non-finite if any element is)."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else torch.zeros(())


def clip_gradients(grads: list[torch.Tensor], norm: torch.Tensor, max_norm: float, max_value: float,
                   ok: torch.Tensor | None = None) -> None:
    """Zero the gradients where `ok` is False, scale their total norm (`norm`, from total_norm) to at
    most max_norm, then clip every element to +-max_value (0 turns either off), in place.
    ok None: the gradients are known to be finite.

    As lasagne.updates.total_norm_constraint: g *= min(norm, max_norm) / (norm + 1e-7).
    """
    safe = norm
    if ok is not None:
        for g in grads:
            g.masked_fill_(~ok, 0.0)  # NaN * 0 is NaN: non-finite gradients must be replaced, not scaled
        safe = torch.where(ok, norm, torch.zeros_like(norm))
    if max_norm:
        torch._foreach_mul_(grads, safe.clamp(max=max_norm) / (safe + LASAGNE_NORM_EPS))
    if max_value:
        torch._foreach_clamp_min_(grads, -max_value)
        torch._foreach_clamp_max_(grads, max_value)


class LasagneAdam(torch.optim.Optimizer):
    """Adam exactly as lasagne.updates.adam computes it (see the module docstring), with skippable steps.

    State per parameter has torch.optim.Adam's names (step, exp_avg, exp_avg_sq), so checkpoints
    of either load into the other. `step` is a device tensor and the learning rate may be one, so
    the whole update can be captured in a CUDA graph.
    """

    def __init__(self, params, lr: float = 2e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-4):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state saved on any device and by either Adam: moments and step go to each parameter's device."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for key in ("capturable", "foreach", "fused", "differentiable", "maximize", "amsgrad", "weight_decay"):
                group.pop(key, None)  # torch.optim.Adam's flags: they describe the device that saved it
            for p in group["params"]:
                st = self.state.get(p)
                if st:
                    for key in ("step", "exp_avg", "exp_avg_sq"):
                        if key in st:
                            st[key] = torch.as_tensor(st[key], dtype=torch.float32 if key == "step" else p.dtype).to(p.device)

    @torch.no_grad()
    def step(self, ok: torch.Tensor | None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            b1, b2 = group["betas"]
            for p in params:
                if not self.state[p]:
                    self.state[p] = {"step": torch.zeros((), device=p.device),
                                     "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
            st = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            m, v, steps = [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [s["step"] for s in st]
            if ok is None:
                self._update(params, grads, m, v, steps, group, b1, b2)
            else:
                self._masked_update(params, grads, m, v, steps, group, b1, b2, ok.to(torch.float32))

    @staticmethod
    def _update(params, grads, m, v, steps, group, b1: float, b2: float) -> None:
        """The plain step, with in-place fused foreach ops (as few passes over memory as torch's Adam)."""
        torch._foreach_add_(steps, 1.0)
        torch._foreach_lerp_(m, grads, 1 - b1)            # m = b1 m + (1 - b1) g
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        t = steps[0]  # all parameters of a group step together
        lr_t = group["lr"] * torch.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_div_(denom, -lr_t)                 # p += m / (-(sqrt(v) + eps) / lr_t)
        torch._foreach_addcdiv_(params, m, denom)

    @staticmethod
    def _masked_update(params, grads, m, v, steps, group, b1: float, b2: float, go: torch.Tensor) -> None:
        """The step decided on the device: with go = 0 (a bad step) nothing moves. Gradients must be finite."""
        torch._foreach_add_(steps, go)
        # m += go (1 - b1)(g - m), v += go (1 - b2)(g^2 - v)
        dm = torch._foreach_sub(grads, m)
        torch._foreach_mul_(dm, go * (1 - b1))
        torch._foreach_add_(m, dm)
        dv = torch._foreach_mul(grads, grads)
        torch._foreach_sub_(dv, v)
        torch._foreach_mul_(dv, go * (1 - b2))
        torch._foreach_add_(v, dv)
        t = steps[0].clamp(min=1.0)
        lr_t = group["lr"] * torch.sqrt(1 - b2 ** t) / (1 - b1 ** t) * go
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, group["eps"])
        update = torch._foreach_div(m, denom)
        torch._foreach_mul_(update, -lr_t)
        torch._foreach_add_(params, update)
