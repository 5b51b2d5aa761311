"""The NVAE family (Vahdat & Kautz 2020): a bottom-up residual encoder, a top-down residual decoder over groups
of spatial latents at two scales, the residual normal posterior, spectral regularisation and KL balancing.

Written from the paper and ../shared/reference/model-families.md (NVlabs/NVAE's licence forbids copying its
code; it is read as a specification). Sized for a CPU here:

    image (C, H, W) -stem, stride 2-> H/2 -encoder cells-> features of the H/2 groups -down-> H/4 -> features
    of the H/4 groups. Top-down: a learned state at H/4; each group: prior from the state (the top group's is
    N(0, I)), posterior from the encoder feature plus the state, z joins the state ([s, z], 1x1 conv); decoder
    cells between groups, an upsampling cell between the scales, then up to H -> Bernoulli logits.

MNIST is read at 28x28 (not padded to 32 as NVAE does): the latent scales are 7x7 and 14x14. Groups are
numbered top first inside the model; as interface layers z1 is the last (the 14x14 group nearest the image).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..options import option
from .bounds import BatchStats, training_loss
from .interface import LayerPosterior, RunSettings
from .layers import fixed_or_drawn
from .topdown import TopDownHierarchy, balance_alphas

SIGMA_FLOOR = 0.01  # NVAE's Normal: sigma = exp(log sigma) + 0.01


@dataclass
class NVAEArch:
    """NVAE's architecture, sized for two CPU cores by default (NVAE's MNIST: 10 + 5 groups of 20 channels)."""
    groups: list[int] = option([2, 2], "latent groups per scale, the top (H/4) scale first, e.g. 2,2")
    latent_channels: int = option(4, "channels of each latent group")
    channels: int = option(32, "channels of the encoder and decoder")
    cells: int = option(1, "residual cells per group in the encoder and in the decoder")
    residual_normal: bool = option(True, "the residual normal posterior q = N(mu_p + d_mu, sigma_p d_sigma) "
                                         "(--no-residual-normal: q = N(d_mu, d_sigma))")
    squeeze_excitation: bool = option(True, "squeeze-and-excitation in the decoder cells")
    expand: int = option(3, "the decoder cells' 1x1 expansion (NVAE: 6; 3 halves a CPU step's decoder time)")
    spectral_reg: float = option(1e-2, "weight of the spectral regularisation (0: none)")
    kl_balance: bool = option(True, "NVAE's KL balancing across groups while the warm-up weight is below 1")
    LEGACY = {}
    FORM = {"groups": "Groups per scale (top first)", "latent_channels": "Latent channels per group"}

    @property
    def layers(self) -> int:
        return sum(self.groups)

    def completed(self, dataset: str) -> NVAEArch:
        if len(self.groups) != 2 or any(not isinstance(g, int) or g < 1 for g in self.groups):
            raise UserError("nvae: --groups takes two whole numbers of at least 1, the top scale's first, e.g. 2,2")
        if min(self.latent_channels, self.channels, self.cells, self.expand) < 1 or self.spectral_reg < 0:
            raise UserError("nvae: latent channels, channels, cells and expand must be at least 1, spectral-reg 0 "
                            "or more")
        return dataclasses.replace(self, groups=list(self.groups))

    def tags(self) -> list[str]:
        return ["BN"]

    def summary(self) -> str:
        return (f"{' + '.join(map(str, self.groups))} groups of {self.latent_channels} channels, {self.channels}-channel "
                f"cells" + ("" if self.residual_normal else ", plain normal posterior"))


def soft_clamp(x: torch.Tensor, bound: float = 5.0) -> torch.Tensor:
    """NVAE's soft clamp of means and log sigmas: bound * tanh(x / bound)."""
    return bound * torch.tanh(x / bound)


def residual_normal(mu_p: torch.Tensor, log_sigma_p: torch.Tensor, d_mu: torch.Tensor,
                    d_log_sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """NVAE's residual normal (Vahdat & Kautz 2020, eq. 2): q = N(mu_p + d_mu, sigma_p * d_sigma), as
    (mean, log sigma); its KL to p is 1/2 (d_mu^2 / sigma_p^2 + d_sigma^2 - log d_sigma^2 - 1) (eq. 3)."""
    return mu_p + d_mu, log_sigma_p + d_log_sigma


def normal_variance(log_sigma: torch.Tensor) -> torch.Tensor:
    return (torch.exp(log_sigma) + SIGMA_FLOOR) ** 2


def spectral_norm_power_iteration(weight: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                                  steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The largest singular value of weight (C_out, rest) by power iteration from the kept vectors u, v
    (Miyato et al. 2018; NVAE's spectral regularisation): (sigma with its gradient, new u, new v)."""
    w = weight.reshape(weight.shape[0], -1)
    with torch.no_grad():
        for _ in range(steps):
            v = F.normalize(w.t() @ u, dim=0, eps=1e-12)
            u = F.normalize(w @ v, dim=0, eps=1e-12)
    return u @ w @ v, u, v


class SqueezeExcitation(nn.Module):
    def __init__(self, c: int, reduction: int = 4):
        super().__init__()
        hidden = max(4, c // reduction)
        self.fc = nn.Sequential(nn.Linear(c, hidden), nn.ReLU(), nn.Linear(hidden, c), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean((2, 3)))[:, :, None, None]


class EncoderCell(nn.Module):
    """NVAE's encoder cell: two BN-Swish-Conv3x3, output = skip + 0.1 * branch; stride 2 halves the map."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.branch = nn.Sequential(nn.BatchNorm2d(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, stride, 1),
                                    nn.BatchNorm2d(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, 1, 1))
        self.skip = nn.Identity() if stride == 1 and c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + 0.1 * self.branch(x)


class DecoderCell(nn.Module):
    """NVAE's decoder cell: BN, 1x1 expand x6 + BN-Swish, depthwise 5x5 + BN-Swish, 1x1, BN, squeeze-and-
    excitation; output = skip + 0.1 * branch. upsample doubles the map first (nearest)."""

    def __init__(self, c: int, se: bool, upsample: bool = False, expand: int = 6):
        super().__init__()
        e = c * expand
        self.upsample = upsample
        self.branch = nn.Sequential(
            nn.BatchNorm2d(c), nn.Conv2d(c, e, 1), nn.BatchNorm2d(e), nn.SiLU(),
            nn.Conv2d(e, e, 5, 1, 2, groups=e), nn.BatchNorm2d(e), nn.SiLU(),
            nn.Conv2d(e, c, 1), nn.BatchNorm2d(c), *([SqueezeExcitation(c)] if se else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x + 0.1 * self.branch(x)


class NVAE(TopDownHierarchy):
    family = "nvae"
    Arch = NVAEArch
    # NVAE's evaluate.py scores the test set with training's BN running averages (it readjusts BN only
    # for sampling at a temperature).
    eval_bn_stats = "running"
    # 0.44 ms an image-sample at 128 rows, 1.0 at 2048, 1.7 at 8192 (IW-200 on 50-100 images, two threads).
    cpu_rows_per_pass = 128

    def __init__(self, cfg: RunSettings):
        super().__init__(cfg)
        a: NVAEArch = cfg.arch
        c, zc = a.channels, a.latent_channels
        image_c, h, w = self.image_shape
        if h % 4 or w % 4:
            raise UserError(f"nvae needs image sides divisible by 4, not {h}x{w}")
        self.sides = [h // 4, h // 2]  # top scale first
        self.scale_of = [s for s, n in enumerate(a.groups) for _ in range(n)]  # per group, top first
        self.stem = nn.Conv2d(image_c, c, 3, 2, 1)
        # Encoder, bottom-up: the H/2 groups' cells, a stride-2 cell, the H/4 groups' cells.
        self.enc_bottom = nn.ModuleList(nn.Sequential(*[EncoderCell(c, c) for _ in range(a.cells)])
                                        for _ in range(a.groups[1]))
        self.down = EncoderCell(c, c, stride=2)
        self.enc_top = nn.ModuleList(nn.Sequential(*[EncoderCell(c, c) for _ in range(a.cells)])
                                     for _ in range(a.groups[0]))
        groups = sum(a.groups)
        self.s0 = nn.Parameter(torch.zeros(1, c, h // 4, w // 4))
        # Per group (top first): decoder cells before it (none before the first; the first of the lower scale
        # upsamples), its prior (none for the top: N(0, I)), its posterior from [feature + state], z into s.
        self.dec_cells = nn.ModuleList(
            nn.Sequential(*[DecoderCell(c, a.squeeze_excitation, upsample=(g == a.groups[0] and j == 0), expand=a.expand)
                            for j in range(a.cells)]) if g else nn.Identity()
            for g in range(groups))
        self.priors = nn.ModuleList(nn.Sequential(nn.ELU(), nn.Conv2d(c, 2 * zc, 1)) for _ in range(groups))
        self.state_to_q = nn.ModuleList(nn.Conv2d(c, c, 1) for _ in range(groups))
        self.posteriors = nn.ModuleList(nn.Sequential(nn.ELU(), nn.Conv2d(c, 2 * zc, 3, 1, 1)) for _ in range(groups))
        self.combine = nn.ModuleList(nn.Conv2d(c + zc, c, 1) for _ in range(groups))
        # The last cell at H/2, then a plain upsampling to the image: a depthwise 5x5 over 6c channels at full
        # size cost 1.3 s of a 2.7 s CPU step (measured, batch 128 of MNIST).
        self.post = nn.Sequential(DecoderCell(c, a.squeeze_excitation, expand=a.expand), nn.Upsample(scale_factor=2), nn.ELU(),
                                  nn.Conv2d(c, image_c, 3, 1, 1))
        self.register_buffer("alpha", balance_alphas(a.groups, self.sides))
        # Spectral regularisation's kept power-iteration vectors, one pair per convolution (saved with the
        # weights: a resumed run goes on from the same vectors).
        self.convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for i, conv in enumerate(self.convs):
            rows, cols = conv.weight.shape[0], conv.weight[0].numel()
            self.register_buffer(f"sr_u{i}", F.normalize(torch.randn(rows), dim=0))
            self.register_buffer(f"sr_v{i}", F.normalize(torch.randn(cols), dim=0))
        self.register_buffer("sr_steps_done", torch.zeros((), dtype=torch.long))
        # channels_last: mkldnn's depthwise and 1x1 convolutions run 2-8x faster so on a CPU (measured).
        self.to(memory_format=torch.channels_last)
        self._sr_started: bool | None = None  # whether the vectors have had their first 40 steps (from the buffer)

    # ---- the top-down pass (training/models/topdown.py turns it into the interface) ---------------

    def _sides(self) -> list[int]:
        return [self.sides[s] for s in self.scale_of]

    def _features(self, x: torch.Tensor, n_samples: int) -> list[torch.Tensor]:
        """The encoder's feature for every group, top first."""
        h = self.stem(self.images_in(x).contiguous(memory_format=torch.channels_last))
        bottom = []
        for cells in self.enc_bottom:
            h = cells(h)
            bottom.append(h)
        h = self.down(h)
        top = []
        for cells in self.enc_top:
            h = cells(h)
            top.append(h)
        return [f.repeat(n_samples, 1, 1, 1) for f in top[::-1] + bottom[::-1]]

    def _prior(self, g: int, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu_p, log sigma_p) of group g at the decoder state s; the top group's is N(0, I)."""
        if g == 0:
            zeros = s.new_zeros(s.shape[0], self.cfg.arch.latent_channels, *s.shape[2:])
            return zeros, torch.full_like(zeros, math.log(1.0 - SIGMA_FLOOR))  # sigma exactly 1
        mu, log_sigma = self.priors[g](s).chunk(2, dim=1)
        return soft_clamp(mu), soft_clamp(log_sigma)

    def _top_down(self, n: int, feats: list[torch.Tensor] | None, fixed: dict[int, torch.Tensor],
                  draw) -> tuple[list[LayerPosterior | torch.Tensor], torch.Tensor]:
        """One top-down pass: per group its posterior (with feats) or its code (without), and the logits."""
        s = self.s0.expand(n, -1, -1, -1)
        out: list = []
        groups = self.n_layers
        for g in range(groups):
            layer = groups - 1 - g  # the interface's numbering: z1 nearest the image
            s = self.dec_cells[g](s)
            mu_p, log_sigma_p = self._prior(g, s)
            if feats is not None:
                d_mu, d_log_sigma = self.posteriors[g](feats[g] + self.state_to_q[g](s)).chunk(2, dim=1)
                d_mu, d_log_sigma = soft_clamp(d_mu), soft_clamp(d_log_sigma)
                mu_q, log_sigma_q = residual_normal(mu_p, log_sigma_p, d_mu, d_log_sigma) \
                    if self.cfg.arch.residual_normal else (d_mu, d_log_sigma)
                var_q = normal_variance(log_sigma_q)
                z = fixed_or_drawn(layer, fixed, draw, mu_q, var_q)
                out.append(LayerPosterior(z, mu_q, var_q, mu_p, normal_variance(log_sigma_p), True))
            else:
                z = fixed_or_drawn(layer, fixed, draw, mu_p, normal_variance(log_sigma_p))
                out.append(z)
            s = self.combine[g](torch.cat([s, z.expand(n, *z.shape[1:])], dim=1))
        return out[::-1], self.post(s)

    # ---- training: KL balancing and spectral regularisation -------------------------------------

    def spectral_loss(self) -> torch.Tensor:
        """Sum of every convolution's largest singular value (power iteration from the kept vectors: 40 steps
        the first time, 4 after, as NVAE) plus every BN layer's largest |gamma|."""
        if self._sr_started is None:  # read once, before any CUDA graph is captured (its eager warm-up steps)
            self._sr_started = bool(int(self.sr_steps_done))
        steps = 4 if self._sr_started else 40
        self._sr_started = True
        total = self.s0.new_zeros(())
        for i, conv in enumerate(self.convs):
            sigma, u, v = spectral_norm_power_iteration(conv.weight, getattr(self, f"sr_u{i}"),
                                                        getattr(self, f"sr_v{i}"), steps)
            getattr(self, f"sr_u{i}").copy_(u)
            getattr(self, f"sr_v{i}").copy_(v)
            total = total + sigma
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                total = total + m.weight.abs().max()
        self.sr_steps_done.add_(1)
        return total

    def loss(self, x, beta, iw_samples=1, mc_samples=1, generator=None) -> tuple[torch.Tensor, BatchStats]:
        """-ELBO with warm-up weight beta and, while beta < 1, NVAE's KL balancing across groups; plus the
        spectral regularisation. With importance samples, the IW bound (no balancing)."""
        a: NVAEArch = self.cfg.arch
        if iw_samples > 1 or mc_samples > 1 or not (a.kl_balance or a.spectral_reg):
            loss, stats = training_loss(self, x, beta, iw_samples, mc_samples, generator)
        else:
            loss, stats = self.balanced_loss(x, beta, self.alpha.flip(0) if a.kl_balance else None, generator)
        if a.spectral_reg and self.training:
            loss = loss + a.spectral_reg * self.spectral_loss()
        return loss, stats
