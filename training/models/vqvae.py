"""The VQ-VAE family (van den Oord et al. 2017; two levels as VQ-VAE-2, Razavi et al. 2019): discrete codes instead
of Gaussian units, with a gated PixelCNN prior over each level's codes.

Written from the papers and ../shared/reference/model-families.md:

    image (C, H, W) -conv 4x4 s2, conv 4x4 s2, 3x3, 2 residual blocks-> h (H/4; MNIST 7x7)
    top level (two levels): h -3x3 s2, a residual block, 1x1-> z_e top (H/8 rounded up; MNIST 4x4) -> codes;
        their vectors -3x3, a residual block, resized to H/4-> a map that joins h
    bottom level: 1x1 of [h, that map] -> z_e bottom (H/4) -> codes
    decoder: [bottom codes' vectors, top codes' vectors resized to H/4] -3x3, 2 residual blocks, two 4x4
        transposed convs-> Bernoulli logits.

Training minimises -log p(x|z_q) + 0.25 ||z_e - sg[e]||^2 (the codebook moves by its EMA update, training/models/
quantize.py) and, in the same step, each level's prior's -log p(codes) on the codes as they are (detached): the
priors train on the codes the encoder gives, and once the codebooks settle, on the final ones. With a
deterministic encoder, log p(x|z_q(x)) + log p(z_q(x)) is a lower bound on log p(x) (q(z|x) is a point mass, so
its entropy is 0): the family's ELBO, in the same nats as the Gaussian families', and every epoch's test_elbo.

As interface layers z1 is the bottom level (nearest the image), z2 the top; a layer's code is its codes' vectors
(N, D, h, w) (what the decoder reads), its rate -log p of the codes (training/models/layers.CodePosterior).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..distributions import bernoulli_log_likelihood
from ..errors import UserError
from ..options import option
from .bounds import BatchStats
from .interface import CATEGORICAL, CodePosterior, ForwardPass, Generated, LatentHierarchy, LayerSpec, RunSettings
from .pixelcnn import GatedPixelCNN
from .quantize import Codebook, commitment_loss


@dataclass
class VQVAEArch:
    """VQ-VAE's architecture, sized for two CPU cores (the Keras MNIST example: 7x7 codes of 16 numbers, 128 codes)."""
    levels: int = option(2, "1: one map of codes at a quarter of the image's side; 2: VQ-VAE-2's coarser top map "
                            "above it, the bottom conditioned on the top", choices=(1, 2))
    codes: list[int] = option([128, 128], "codebook size per level, the bottom level first, e.g. 128,128")
    code_dim: int = option(16, "numbers in each code vector (D)")
    channels: int = option(64, "channels of the encoder and decoder")
    commitment: float = option(0.25, "the commitment loss's weight (the paper's beta: 0.25)")
    decay: float = option(0.99, "the EMA codebook update's decay (the paper's 0.99)")
    dead_threshold: float = option(1.0, "revive a code whose EMA use falls under this many vectors a step "
                                        "(0: never)")
    prior_channels: int = option(64, "channels of each level's gated PixelCNN prior")
    prior_layers: int = option(6, "gated layers of each level's prior")
    prior_epochs: int = option(0, "the last this many epochs train the priors alone on the frozen encoder's codes "
                                  "(the codes stop moving; measured on MNIST: -12 nats of the bottom prior in 250 "
                                  "steps on frozen codes, where joint training had stalled)")
    LEGACY = {}
    FORM = {"codes": "Codebook size per level (bottom first)", "code_dim": "Numbers per code vector"}
    # VQ-VAE has no KL to warm up (its prior trains beside it on detached codes), and the papers do not clip
    # gradients; Adam at 1e-3, batch 128 (the Keras example) with torch's epsilon.
    RUN_DEFAULTS = {"warmup_epochs": 0, "grad_clip": 0.0, "grad_clip_value": 0.0, "lr": 1e-3, "batch_size": 128,
                    "adam_eps": 1e-8}

    @property
    def layers(self) -> int:
        return self.levels

    def completed(self, dataset: str) -> VQVAEArch:
        if self.levels == 1 and self.codes == [128, 128]:  # the default sizes, for one level
            return dataclasses.replace(self, codes=[128]).completed(dataset)
        if self.levels not in (1, 2):
            raise UserError("vqvae: --levels is 1 or 2")
        if len(self.codes) != self.levels or any(not isinstance(k, int) or k < 2 for k in self.codes):
            raise UserError(f"vqvae: --codes takes {self.levels} codebook size(s) of at least 2, the bottom's first")
        if self.prior_epochs < 0:
            raise UserError("vqvae: --prior-epochs must be 0 or more")
        if min(self.code_dim, self.channels, self.prior_channels, self.prior_layers) < 1:
            raise UserError("vqvae: code dim, channels, prior channels and prior layers must be at least 1")
        if self.commitment < 0 or not 0 < self.decay < 1 or self.dead_threshold < 0:
            raise UserError("vqvae: commitment and dead threshold must be 0 or more, decay in (0, 1)")
        return self

    def tags(self) -> list[str]:
        return [f"{self.levels}L"] if self.levels > 1 else []

    def summary(self) -> str:
        return f"{self.levels} level(s) of {'/'.join(map(str, self.codes))} codes of {self.code_dim}, width {self.channels}"


class Residual(nn.Module):
    """VQ-VAE's residual block: x + 1x1(ReLU(3x3(ReLU(x))))."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU(), nn.Conv2d(c // 2, c, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class VQVAE(LatentHierarchy):
    family = "vqvae"
    Arch = VQVAEArch
    eval_bn_stats = "running"  # no BN
    cpu_rows_per_pass = 128
    has_codebooks = True

    def __init__(self, cfg: RunSettings):
        super().__init__(cfg)
        a: VQVAEArch = cfg.arch
        image_c, h, w = self.image_shape
        if h != w or h % 4:
            raise UserError(f"vqvae: the images must be square with a side divisible by 4, not {h}x{w}")
        c, d, p = a.channels, a.code_dim, a.prior_channels
        self.sides = [h // 4] + ([(h // 4 + 1) // 2] if a.levels == 2 else [])  # bottom first
        self.encoder = nn.Sequential(nn.Conv2d(image_c, c // 2, 4, 2, 1), nn.ReLU(), nn.Conv2d(c // 2, c, 4, 2, 1),
                                     nn.ReLU(), nn.Conv2d(c, c, 3, padding=1), Residual(c), Residual(c), nn.ReLU())
        self.books = nn.ModuleList(Codebook(k, d, a.decay, a.dead_threshold) for k in a.codes)
        if a.levels == 2:
            self.encoder_top = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1), Residual(c), nn.ReLU(), nn.Conv2d(c, d, 1))
            self.top_to_bottom = nn.Sequential(nn.Conv2d(d, c, 3, padding=1), Residual(c), nn.ReLU())
            # the bottom prior's view of the top codes: two 3x3 convs, so each position sees its neighbourhood above
            self.prior_cond = nn.Sequential(nn.Conv2d(d, p, 3, padding=1), nn.ReLU(), nn.Conv2d(p, p, 3, padding=1))
        self.pre_bottom = nn.Conv2d(c * a.levels, d, 1)
        self.decoder = nn.Sequential(nn.Conv2d(d * a.levels, c, 3, padding=1), Residual(c), Residual(c), nn.ReLU(),
                                     nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(c // 2, image_c, 4, 2, 1))
        self.prior_only = False  # set per epoch by begin_epoch: the last prior_epochs train the priors alone
        self.priors = nn.ModuleList(GatedPixelCNN(k, p, a.prior_layers, cond_channels=p if (i == 0 and a.levels == 2)
                                                  else 0) for i, k in enumerate(a.codes))

    def layer_specs(self) -> list[LayerSpec]:
        d = self.cfg.arch.code_dim
        return [LayerSpec(f"z{i + 1}", (d, s, s), CATEGORICAL, s, codebook=book.codes)
                for i, (s, book) in enumerate(zip(self.sides, self.books))]

    # ---- the pieces -----------------------------------------------------------------------------------

    def _to_bottom(self, z: torch.Tensor) -> torch.Tensor:
        """A top-level map resized to the bottom level's side."""
        return F.interpolate(z, size=(self.sides[0], self.sides[0]), mode="nearest")

    def _encode(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """(z_e, z_q with the straight-through gradient, indices) per level, the bottom first."""
        h = self.encoder(self.images_in(x))
        if len(self.books) == 1:
            z_e = self.pre_bottom(h)
            z_q, index = self.books[0](z_e)
            return [z_e], [z_q], [index]
        z_e_top = self.encoder_top(h)
        z_q_top, i_top = self.books[1](z_e_top)
        z_e = self.pre_bottom(torch.cat([h, self._to_bottom(self.top_to_bottom(z_q_top))], 1))
        z_q, index = self.books[0](z_e)
        return [z_e, z_e_top], [z_q, z_q_top], [index, i_top]

    def _logits(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Bernoulli logits (N, C, H, W) from the levels' code vectors (bottom first)."""
        maps = [codes[0]] + [self._to_bottom(z.expand(codes[0].shape[0], *z.shape[1:])) for z in codes[1:]]
        return self.decoder(torch.cat(maps, 1))

    def _cond(self, level: int, codes: Sequence[torch.Tensor]) -> torch.Tensor | None:
        """The prior of `level`'s conditioning map: the bottom's reads the top codes' vectors (detached)."""
        if level == 0 and len(self.books) == 2:
            return self.prior_cond(self._to_bottom(codes[1].detach()))
        return None

    def log_prior(self, indices: Sequence[torch.Tensor], codes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """log p(code) at every position of every level (N, h, w), bottom first: the top's prior alone, the
        bottom's given the top codes."""
        return [prior.log_prob(i, self._cond(level, codes)) for level, (prior, i) in enumerate(zip(self.priors, indices))]

    # ---- the interface ----------------------------------------------------------------------------------

    def _layers(self, z_q: list[torch.Tensor], index: list[torch.Tensor]) -> list[CodePosterior]:
        """The levels as interface layers; every level's log p under the priors is computed once, when first read."""
        rates: list[torch.Tensor] = []

        def rate(level: int):
            def log_p() -> torch.Tensor:
                if not rates:
                    rates.extend(self.log_prior(index, z_q))
                return rates[level]
            return log_p
        return [CodePosterior(z, i, rate(level), *book.spread())
                for level, (z, i, book) in enumerate(zip(z_q, index, self.books))]

    def _pass(self, x: torch.Tensor) -> tuple[list[CodePosterior], torch.Tensor, list[torch.Tensor]]:
        """(layers, the decoder's logits, z_e per level)."""
        z_e, z_q, index = self._encode(x)
        return self._layers(z_q, index), self._logits(z_q), z_e

    def posterior(self, x, n_samples=1, mean_path=False, eps=None, generator=None) -> list[CodePosterior]:
        """The codes of x (deterministic: every sample is the same), n_samples times (sample-major)."""
        _, z_q, index = self._encode(x)
        layers = self._layers(z_q, index)
        return layers if n_samples == 1 else [q.repeat(n_samples) for q in layers]

    def forward(self, x: torch.Tensor, n_samples: int = 1, eps=None, generator=None) -> ForwardPass:
        layers, logits, _ = self._pass(x)
        log_px = bernoulli_log_likelihood(self.images_in(x), logits).flatten(1).sum(1)
        if n_samples > 1:
            layers = [q.repeat(n_samples) for q in layers]
            log_px = log_px.repeat(n_samples)
        return ForwardPass(layers, log_px)

    def log_likelihood(self, x: torch.Tensor, layers) -> torch.Tensor:
        n = layers[0].z.shape[0] // x.shape[0]
        logits = self._logits([q.z for q in layers])
        return bernoulli_log_likelihood(self.images_in(x).repeat(n, 1, 1, 1), logits).flatten(1).sum(1)

    def log_weights(self, x, k, eps=None, generator=None) -> torch.Tensor:
        """The bound log p(x|z_q) + log p(z_q) k times: q is a point mass, so every importance weight is the same
        and the IW-k bound equals the bound for every k (computed once)."""
        fp = self(x)
        log_w = fp.log_px + sum(q.log_prior.flatten(1).sum(1) for q in fp.layers)
        return log_w.unsqueeze(0).expand(k, -1)

    def begin_epoch(self, epoch: int, epochs: int) -> None:
        self.prior_only = epoch >= epochs - self.cfg.arch.prior_epochs

    def _frozen_pass(self, x: torch.Tensor) -> tuple[list[CodePosterior], torch.Tensor, list[torch.Tensor]]:
        """_pass with the encoder, decoder and codebooks as they are (no gradient, no codebook update): what the
        prior-only epochs train the priors on."""
        books = [b.training for b in self.books]
        with torch.no_grad():
            for b in self.books:
                b.eval()
            z_e, z_q, index = self._encode(x)
            logits = self._logits(z_q)
            for b, was in zip(self.books, books):
                b.train(was)
        return self._layers(z_q, index), logits, z_e

    def loss(self, x, beta, iw_samples=1, mc_samples=1, generator=None) -> tuple[torch.Tensor, BatchStats]:
        """-log p(x|z_q) + commitment * ||z_e - sg[e]||^2 + each prior's -log p(codes) (on detached codes), the
        batch's mean; in the prior-only epochs the priors' term alone. beta (warm-up) has no role: there is no KL to
        weigh. The stats: the bound as the ELBO, the priors' nats as KL per unit, each level's code use and revived
        codes."""
        revived_before = torch.stack([b.revived for b in self.books]).clone()
        prior_only = self.prior_only and self.training
        layers, logits, z_e = self._frozen_pass(x) if prior_only else self._pass(x)
        log_px = bernoulli_log_likelihood(self.images_in(x), logits).flatten(1).sum(1)
        prior_nll = sum(-q.log_prior.flatten(1).sum(1) for q in layers)
        if prior_only:
            loss = prior_nll.mean()
        else:
            commit = sum(commitment_loss(e, q.z) for e, q in zip(z_e, layers))
            loss = (-log_px + self.cfg.arch.commitment * commit + prior_nll).mean()
        stats = BatchStats(
            elbo=(log_px - prior_nll).detach().sum(), recon=log_px.detach().sum(),
            kl_per_unit=[q.kl().detach().flatten(1).sum(0) for q in layers],
            code_counts=[torch.bincount(q.index.flatten(), minlength=b.codes).to(log_px.dtype)
                         for q, b in zip(layers, self.books)],
            revived=torch.stack([b.revived for b in self.books]) - revived_before)
        return loss, stats

    def codebook(self, layer: int) -> torch.Tensor:
        return self.books[layer].embed

    def code_log_probs(self, layer: int, indices: Sequence[torch.Tensor]) -> torch.Tensor:
        codes = [self.books[i].lookup(idx) for i, idx in enumerate(indices)]
        return torch.log_softmax(self.priors[layer](indices[layer], self._cond(layer, codes)), dim=1)

    def _fixed_codes(self, level: int, code: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """A fixed layer's (code vectors, indices with -1 where drawn): a NaN anywhere in a position's vector marks
        it to be drawn (its vector stays NaN); every other position is snapped to its nearest code. The decoder and
        the priors only ever saw codes: a vector between codes (a Traverse step, a point on a path) decodes to
        noise, so a discrete layer is walked through code maps, a cell changing when it crosses to another code."""
        if code is None:
            return None, None
        code = code.to(self.books[level].embed)
        free = torch.isnan(code).any(1)
        index = self.books[level].quantize(torch.nan_to_num(code))
        vectors = torch.where(free.unsqueeze(1), torch.full_like(code, float("nan")), self.books[level].lookup(index))
        return vectors, torch.where(free, torch.full_like(index, -1), index)

    def generate(self, n, fixed=None, temperature: float | Sequence[float] = 1.0, use_mean=False,
                 generator=None) -> Generated:
        """Codes drawn from the priors, the top level first, position by position at a softmax temperature per level
        (0 or use_mean: the most likely code); fixed layers keep their codes, each position snapped to its nearest
        code (NaN positions drawn)."""
        fixed = fixed or {}
        temps = [float(temperature)] * len(self.books) if isinstance(temperature, (int, float)) else [float(t) for t in temperature]
        if len(temps) != len(self.books):
            raise ValueError(f"{len(temps)} temperatures for {len(self.books)} layers")
        codes: list[torch.Tensor] = [torch.empty(0)] * len(self.books)
        for level in reversed(range(len(self.books))):
            vectors, index = self._fixed_codes(level, fixed.get(level))
            if index is not None and bool((index >= 0).all()):
                codes[level] = vectors.expand(n, *vectors.shape[1:])
                continue
            side = self.sides[level]
            drawn = self.priors[level].sample(n, (side, side), self._cond(level, codes), 0.0 if use_mean else temps[level],
                                              fixed=index, generator=generator)
            codes[level] = self.books[level].lookup(drawn)  # the fixed positions' codes were kept by the sampler
        return Generated(codes, torch.sigmoid(self._logits(codes)))
