"""Model families and their registry: the CLI, the Train form, run discovery, export, reproduce, evaluation
and the explorer's pages find a family here by its name (config.json's "model").

Adding a family: its module here (a `LatentHierarchy` subclass, training/models/interface.py) and one
line in FAMILIES below (or `register(cls)` from elsewhere, as the tests do for a family of their own).
"""
from __future__ import annotations


from .interface import LatentHierarchy, LayerPosterior, LayerSpec, RunSettings
from .lvae import LVAE
from .nvae import NVAE
from .vae import VAE
from .vdvae import VDVAE
from .vqvae import VQVAE


__all__ = ["FAMILIES", "LatentHierarchy", "LayerPosterior", "LayerSpec", "arch_class", "build_model", "family_names",
           "family_title", "has_codebooks", "register"]

# name -> (class, the title forms show)
FAMILIES: dict[str, tuple[type[LatentHierarchy], str]] = {
    "vae": (VAE, "VAE (bottom-up inference)"),
    "lvae": (LVAE, "Ladder VAE"),
    "nvae": (NVAE, "NVAE (residual top-down groups of spatial latents)"),
    "vdvae": (VDVAE, "VDVAE (a very deep top-down hierarchy over several resolutions)"),
    "vqvae": (VQVAE, "VQ-VAE (discrete codes at two levels, a PixelCNN prior over them)"),
}


def register(cls: type[LatentHierarchy], title: str = "") -> None:
    """Make a family known by cls.family (replacing one of that name)."""
    if not cls.family:
        raise ValueError(f"{cls.__name__} needs a `family` name")
    FAMILIES[cls.family] = (cls, title or cls.family)


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def family_title(name: str) -> str:
    return FAMILIES[name][1] if name in FAMILIES else name


def has_codebooks(name: str) -> bool:
    """Whether the family's layers are codes from codebooks (the explorer's code map applies)."""
    return name in FAMILIES and FAMILIES[name][0].has_codebooks


def arch_class(name: str) -> type:
    """The architecture dataclass of a family."""
    if name not in FAMILIES:
        raise ValueError(f"no model family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name][0].Arch


def build_model(cfg: RunSettings) -> LatentHierarchy:
    """A new model of cfg's family (weights initialised as the family does)."""
    if cfg.model not in FAMILIES:
        raise ValueError(f"no model family {cfg.model!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[cfg.model][0](cfg)
