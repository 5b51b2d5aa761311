"""Latent hierarchies behind one interface (training/models/: the VAE and the Ladder VAE of Sønderby et al.
2016 first), trained with batch normalization, KL warm-up and the IW bound, and evaluated.

Imports only torch, numpy, scipy, scikit-learn, safetensors and tqdm, so it runs
on GPU machines without the app's packages.
"""
from .config import RunConfig
from .errors import CheckpointError, DataError, UserError

__all__ = ["RunConfig", "UserError", "DataError", "CheckpointError"]
