"""A small gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders") over a
map of discrete codes: the prior of a VQ-VAE level, p(c) = prod over positions in raster order of p(c_ij | c_<ij, h).

Two stacks remove the blind spot of a plain masked convolution: the vertical stack at row i sees rows <= i and
reaches the horizontal stack only shifted down one row; the horizontal stack sees its row up to the position
(the first layer: strictly before it). Each layer is gated, tanh(a) * sigmoid(b), with an optional conditioning
map h (the level above) added to both stacks before the gate (their eq. 5, as a map).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def shift_down(t: torch.Tensor) -> torch.Tensor:
    return F.pad(t, (0, 0, 1, 0))[:, :, :-1]


def shift_right(t: torch.Tensor) -> torch.Tensor:
    return F.pad(t, (1, 0, 0, 0))[:, :, :, :-1]


def gate(t: torch.Tensor) -> torch.Tensor:
    a, b = t.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    def __init__(self, channels: int, kernel: int, first: bool, cond_channels: int = 0):
        super().__init__()
        self.k, self.first = kernel, first
        self.v = nn.Conv2d(channels, 2 * channels, (kernel // 2 + 1, kernel))
        self.h = nn.Conv2d(channels, 2 * channels, (1, kernel // 2 + 1))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_out = nn.Conv2d(channels, channels, 1)
        self.cond = nn.Conv2d(cond_channels, 4 * channels, 1) if cond_channels else None

    def forward(self, v: torch.Tensor, h: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.k
        v_pre = self.v(F.pad(v, (k // 2, k // 2, k // 2, 0)))  # row i: rows i-k//2 .. i
        h_src = shift_right(h) if self.first else h  # the first layer must not see its own position
        h_pre = self.h(F.pad(h_src, (k // 2, 0, 0, 0))) + self.v_to_h(shift_down(v_pre))
        if self.cond is not None and cond is not None:
            cv, ch = self.cond(cond).chunk(2, dim=1)
            v_pre, h_pre = v_pre + cv, h_pre + ch
        h_new = self.h_out(gate(h_pre))
        return gate(v_pre), h_new if self.first else h + h_new


class GatedPixelCNN(nn.Module):
    """Logits (N, K, H, W) of every code given the codes before it in raster order (and the conditioning map)."""

    def __init__(self, codes: int, channels: int = 64, layers: int = 5, kernel: int = 3, cond_channels: int = 0):
        super().__init__()
        self.codes = codes
        self.embed = nn.Embedding(codes, channels)
        self.layers = nn.ModuleList(GatedLayer(channels, kernel, i == 0, cond_channels) for i in range(layers))
        self.out = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, codes, 1))

    def logits_of_features(self, features: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The logits from the codes' embeddings (N, C, H, W) (the masks' gradient test reads this)."""
        v = h = features
        for layer in self.layers:
            v, h = layer(v, h, cond)
        return self.out(h)

    def forward(self, index: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.logits_of_features(self.embed(index).permute(0, 3, 1, 2), cond)

    def log_prob(self, index: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """log p(c_ij | c_<ij, h) of every position (N, H, W); their sum is log p(c | h)."""
        return -F.cross_entropy(self(index, cond), index, reduction="none")

    @torch.no_grad()
    def sample(self, n: int, shape: Sequence[int], cond: torch.Tensor | None = None, temperature: float = 1.0,
               fixed: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes (n, H, W) drawn position by position in raster order at a softmax temperature (0: the most
        likely code); where `fixed` (n or 1, H, W) holds a code (not -1) it is kept and the rest drawn given it."""
        h, w = shape
        device = self.embed.weight.device
        index = torch.zeros(n, h, w, dtype=torch.long, device=device)
        keep = None
        if fixed is not None:
            fixed = fixed.to(device).expand(n, h, w)
            keep = fixed >= 0
            index = torch.where(keep, fixed, index)
        gen_device = generator.device if generator is not None else device
        for i in range(h):
            # Row i depends on rows <= i only (both stacks are causal down the map; the conditioning is 1x1), so the
            # rows below are left out of the pass: on a 7x7 map 28 rows are passed where 49 were.
            rows, cond_rows = index[:, :i + 1], None if cond is None else cond[:, :, :i + 1]
            for j in range(w):
                if keep is not None and bool(keep[:, i, j].all()):
                    continue
                logits = self(rows, cond_rows)[:, :, i, j]
                if temperature <= 0:
                    pick = logits.argmax(1)
                else:
                    probs = torch.softmax(logits / temperature, dim=1).to(gen_device)
                    pick = torch.multinomial(probs, 1, generator=generator).view(-1).to(device)
                index[:, i, j] = pick if keep is None else torch.where(keep[:, i, j], index[:, i, j], pick)
        return index
