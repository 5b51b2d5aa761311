"""The VDVAE family (Child 2021): a very deep top-down hierarchy of small latent maps over several resolutions.

Written from the paper and ../shared/reference/model-families.md, after the structure of openai/vdvae's
vae.py (Block, the encoder's activations per resolution, DecBlock, a learned bias starting each resolution).

    image, zero-padded to a power of two (MNIST: 28 -> 32; the likelihood is scored on the 28x28 inside)
    -> 3x3 conv (stride 2 for MNIST: the top resolution is 16) -> residual bottleneck blocks, average-pooled between resolutions; the last activation at each
    resolution is what the decoder's posteriors read.
    Top-down, block after block (each with one latent layer): the state at the block's resolution (a learned
    bias at first, plus the upsampled state of the lower resolution where one begins) gives the prior
    (mean, log sd) and a feature added back to the state; the posterior reads [state, encoder activation];
    z, projected by a 1x1 conv, joins the state; a residual block. Then a 1x1 conv to Bernoulli logits (with
    the stride-2 stem: upsampled by 2, a 3x3 conv).

Block strings as openai/vdvae's: "RxN" is N blocks at resolution R, "RdK" a block that then average-pools by
K (encoder), "RmS" a decoder block at R that first adds the state of resolution S, upsampled (its first at R).
Layers are numbered in the interface as everywhere: z1 is the last decoder block (nearest the image).
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
from .topdown import TopDownHierarchy, alphas_by_side

# (encoder blocks, decoder blocks, image stride) per dataset where the options are not given. MNIST: Efficient-
# VDVAE's binarized-MNIST layout (5 layers at 1x1, 5 at 4x4, 10 at 8x8, 2 at 16x16, 1 at 32x32) cut for two CPU
# cores: its 32x32 layer moves to 16x16 (24 layers: 5, 5, 10, 4) and a stride-2 stem reads the padded 32x32 image
# into 16x16: 1.1 s a step instead of 1.7 (batch 128, one thread beside a training run, measured).
LAYOUTS = {
    "digits": ("8x1,8d2,4x1,4d4,1x1", "1x2,4m1,4x1,8m4,8x1", 1),  # 8x8 images: 6 layers, for tests
    "mnist": ("16x1,16d2,8x2,8d2,4x2,4d4,1x2", "1x5,4m1,4x4,8m4,8x9,16m8,16x3", 2),
}
LAYOUTS["fashion-mnist"] = LAYOUTS["omniglot"] = LAYOUTS["mnist"]


def parse_blocks(s: str) -> list[tuple[int, int | None]]:
    """openai/vdvae's block string -> [(resolution, down rate or mixin resolution or None)]."""
    out: list[tuple[int, int | None]] = []
    try:
        for part in s.split(","):
            if "x" in part:
                res, count = (int(a) for a in part.split("x"))
                out += [(res, None)] * count
            elif "d" in part or "m" in part:
                res, other = (int(a) for a in part.replace("m", "d").split("d"))
                out.append((res, other))
            else:
                out.append((int(part), None))
    except ValueError:
        raise UserError(f"vdvae: cannot read the block string {s!r} (e.g. 8x2,8d2,4x2)") from None
    return out


@dataclass
class VDVAEArch:
    """VDVAE's architecture, sized for two CPU cores by default (VDVAE's CIFAR-10: width 384, zdim 16)."""
    width: int = option(32, "channels of the state and of every block")
    latent_channels: int = option(8, "channels of each latent layer (VDVAE: zdim 16)")
    bottleneck: float = option(0.25, "a block's middle width as a fraction of its width (VDVAE: 0.25)")
    enc_blocks: str = option("", "encoder blocks, e.g. 32x1,32d2,16x1 (default: the dataset's layout)")
    dec_blocks: str = option("", "decoder blocks, one latent layer each, e.g. 1x5,4m1,4x4 (default: the dataset's "
                                 "layout; MNIST: 24 layers at 1, 4, 8 and 16 px)")
    image_stride: int = option(0, "the stem's stride: 2 reads the (padded) image into the top resolution at half its "
                                  "side and the output upsamples back, a CPU-sized cut of the largest maps' cost "
                                  "(0: the dataset's; MNIST: 2)")
    kl_balance: bool = option(True, "Efficient-VDVAE's early NVAE-style KL balancing across layers while the warm-up "
                                    "weight is below 1")
    LEGACY = {}
    FORM = {"width": "Width (channels)", "latent_channels": "Latent channels per layer"}
    # The family's defaults for common run settings (the CLI's `train --family vdvae`): VDVAE evaluates a moving
    # average of the weights and skips updates with an outlying gradient norm: 10,000 is about four times the
    # first steps' norms on MNIST (1,500-2,800 nats per image, batch 32, measured), so only outliers are skipped.
    # The gradient norm is clipped at half that (VDVAE: clip 200, skip 400) and never element by element (the
    # LVAE authors' 0.9). KL warm-up a step at a time over 2 epochs (938 steps at batch 128) with NVAE's KL
    # balancing meanwhile (Efficient-VDVAE's MNIST: 500 steps of warm-up, 1,000 of balancing). Measured on MNIST:
    # with VDVAE's own beta 1 from the first step, 21 of the 24 layers carried under 0.03 nats after 3 epochs;
    # a whole first epoch near beta 0 (warm-up by epochs) let the KL reach 5,210 nats, after which every step of
    # the second epoch had a gradient norm over the skip threshold and training stopped.
    RUN_DEFAULTS = {"ema_rate": 0.999, "skip_threshold": 10_000.0, "grad_clip": 5_000.0, "grad_clip_value": 0.0,
                    "warmup_epochs": 2, "warmup_per_step": True}

    @property
    def layers(self) -> int:
        return len(parse_blocks(self.dec_blocks)) if self.dec_blocks else 0

    def completed(self, dataset: str) -> VDVAEArch:
        enc, dec, stride = LAYOUTS.get(dataset, LAYOUTS["mnist"])
        done = dataclasses.replace(self, enc_blocks=self.enc_blocks or enc, dec_blocks=self.dec_blocks or dec,
                                   image_stride=self.image_stride or stride)
        if min(done.width, done.latent_channels, done.image_stride) < 1 or not 0 < done.bottleneck <= 1:
            raise UserError("vdvae: width, latent channels and image stride must be at least 1, the bottleneck in (0, 1]")
        enc = parse_blocks(done.enc_blocks)
        enc_res = {r for r, _ in enc} | {r // d for r, d in enc if d}
        for res, mixin in parse_blocks(done.dec_blocks):
            if res not in enc_res:
                raise UserError(f"vdvae: decoder resolution {res} has no encoder activation (the encoder's: "
                                f"{sorted(enc_res)})")
            if mixin is not None and mixin >= res:
                raise UserError(f"vdvae: a decoder block {res}m{mixin} must mix in a lower resolution")
        return done

    def tags(self) -> list[str]:
        return []

    def summary(self) -> str:
        per_res: dict[int, int] = {}
        for res, _ in parse_blocks(self.dec_blocks):
            per_res[res] = per_res.get(res, 0) + 1
        return (f"{self.layers} layers of {self.latent_channels} channels (" +
                ", ".join(f"{n} at {r}x{r}" for r, n in per_res.items()) + f"), width {self.width}")


class Block(nn.Module):
    """VDVAE's residual bottleneck block: GELU-1x1, GELU-3x3, GELU-3x3, GELU-1x1 (3x3s become 1x1 at 2 px or
    less); residual adds the input; down average-pools after."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, res: int, residual: bool = False,
                 down: int | None = None, zero_last: bool = False, last_scale: float = 1.0):
        super().__init__()
        k = 3 if res > 2 else 1
        self.residual, self.down = residual, down
        self.convs = nn.ModuleList([nn.Conv2d(c_in, c_mid, 1), nn.Conv2d(c_mid, c_mid, k, padding=k // 2),
                                    nn.Conv2d(c_mid, c_mid, k, padding=k // 2), nn.Conv2d(c_mid, c_out, 1)])
        with torch.no_grad():
            last = self.convs[-1]
            if zero_last:  # the prior's last conv: p starts as N(0, I) and adds nothing to the state
                last.weight.zero_()
                last.bias.zero_()
            else:  # VDVAE scales a residual branch's last layer by sqrt(1 / blocks): a deep stack starts stable
                last.weight.mul_(last_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for conv in self.convs:
            h = conv(F.gelu(h))
        out = x + h if self.residual else h
        return F.avg_pool2d(out, self.down) if self.down else out


class DecoderBlock(nn.Module):
    """One latent layer of the top-down pass (VDVAE's DecBlock)."""

    def __init__(self, width: int, zc: int, mid: int, res: int, n_blocks: int):
        super().__init__()
        scale = math.sqrt(1 / n_blocks)
        self.zc = zc
        self.posterior = Block(2 * width, mid, 2 * zc, res)
        self.prior = Block(width, mid, 2 * zc + width, res, zero_last=True)
        self.z_proj = nn.Conv2d(zc, width, 1)
        with torch.no_grad():
            self.z_proj.weight.mul_(scale)
        self.resnet = Block(width, mid, width, res, residual=True, last_scale=scale)

    def prior_of(self, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean, log sd, the feature the prior adds to the state)."""
        out = self.prior(s)
        return out[:, :self.zc], out[:, self.zc:2 * self.zc], out[:, 2 * self.zc:]

    def posterior_of(self, s: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, log sd) of q from the state and the encoder's activation at this resolution."""
        return self.posterior(torch.cat([s, act.expand(s.shape[0], *act.shape[1:])], dim=1)).chunk(2, dim=1)

    def update(self, s: torch.Tensor, feature: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.resnet(s + feature + self.z_proj(z))


class VDVAE(TopDownHierarchy):
    family = "vdvae"
    Arch = VDVAEArch
    # No BN: nothing to recompute; training's weights (the EMA ones where kept) are the model.
    eval_bn_stats = "running"
    cpu_rows_per_pass = 128

    def __init__(self, cfg: RunSettings):
        super().__init__(cfg)
        a: VDVAEArch = cfg.arch
        image_c, h, w = self.image_shape
        enc, dec = parse_blocks(a.enc_blocks), parse_blocks(a.dec_blocks)
        self.size = enc[0][0]  # the top resolution
        side = self.size * a.image_stride  # the padded image's
        if h != w or h > side:
            raise UserError(f"vdvae: the top resolution {self.size} (x{a.image_stride}) must hold the {h}x{w} images "
                            "(square)")
        self.pad, self.side = (side - h) // 2, side
        mid = max(1, int(a.width * a.bottleneck))
        self.stem = nn.Conv2d(image_c, a.width, 3, stride=a.image_stride, padding=1)
        self.encoder = nn.ModuleList(Block(a.width, mid, a.width, res, residual=True, down=d,
                                           last_scale=math.sqrt(1 / len(enc))) for res, d in enc)
        self.resolutions = sorted({res for res, _ in dec})
        self.block_res = [res for res, _ in dec]
        self.mixin = [m for _, m in dec]
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(1, a.width, r, r)) for r in self.resolutions)
        self.decoder = nn.ModuleList(DecoderBlock(a.width, a.latent_channels, mid, res, len(dec)) for res, _ in dec)
        # KL balancing's alpha per layer, z1 first (not saved: it follows from the layout)
        self.register_buffer("alpha", alphas_by_side(list(reversed(self.block_res))), persistent=False)
        self.gain = nn.Parameter(torch.ones(1, a.width, 1, 1))
        self.shift = nn.Parameter(torch.zeros(1, a.width, 1, 1))
        self.out = nn.Conv2d(a.width, image_c, 1) if a.image_stride == 1 else \
            nn.Sequential(nn.Upsample(scale_factor=a.image_stride), nn.Conv2d(a.width, image_c, 3, padding=1))

    def loss(self, x, beta, iw_samples=1, mc_samples=1, generator=None) -> tuple[torch.Tensor, BatchStats]:
        """-ELBO with the warm-up weight (at least MIN_KL_WEIGHT) and, with kl_balance, KL balancing across layers
        while it is below 1 (Efficient-VDVAE); with importance or Monte-Carlo samples, training_loss's bound."""
        if iw_samples > 1 or mc_samples > 1:
            return training_loss(self, x, beta, iw_samples, mc_samples, generator)
        return self.balanced_loss(x, beta, self.alpha if self.cfg.arch.kl_balance else None, generator)

    # ---- the top-down pass (training/models/topdown.py turns it into the interface) ---------------

    def _sides(self) -> list[int]:
        return self.block_res

    def _features(self, x: torch.Tensor, n_samples: int) -> dict[int, torch.Tensor]:
        """The encoder's last activation at every resolution."""
        h = self.stem(F.pad(self.images_in(x), [self.pad] * 4))
        acts = {h.shape[-1]: h}
        for block in self.encoder:
            h = block(h)
            acts[h.shape[-1]] = h
        return {r: a.repeat(n_samples, 1, 1, 1) for r, a in acts.items()}

    def _top_down(self, n: int, acts: dict[int, torch.Tensor] | None, fixed: dict[int, torch.Tensor],
                  draw) -> tuple[list[LayerPosterior | torch.Tensor], torch.Tensor]:
        """One top-down pass: per layer its posterior (with acts) or its code (without), and the logits."""
        states = {r: b.expand(n, -1, -1, -1) for r, b in zip(self.resolutions, self.bias)}
        out: list = []
        for i, (block, res, mixin) in enumerate(zip(self.decoder, self.block_res, self.mixin)):
            layer = self.n_layers - 1 - i
            s = states[res]
            if mixin is not None:
                s = s + F.interpolate(states[mixin], scale_factor=res // mixin, mode="nearest")
            mu_p, log_sd_p, feature = block.prior_of(s)
            var_p = torch.exp(2 * log_sd_p)
            if acts is not None:
                mu_q, log_sd_q = block.posterior_of(s, acts[res])
                var_q = torch.exp(2 * log_sd_q)
                z = fixed_or_drawn(layer, fixed, draw, mu_q, var_q)
                out.append(LayerPosterior(z, mu_q, var_q, mu_p, var_p, True))
            else:
                z = fixed_or_drawn(layer, fixed, draw, mu_p, var_p)
                out.append(z)
            states[res] = block.update(s, feature, z.expand(n, *z.shape[1:]))
        top = states[self.size] * self.gain + self.shift
        logits = self.out(top)
        if self.pad:
            logits = logits[..., self.pad:self.side - self.pad, self.pad:self.side - self.pad]
        return out[::-1], logits
