"""Random filter-normalised directions in weight space (Li et al. 2018, §4).

Each output filter of a convolution (each row of the linear layer) of a Gaussian direction is rescaled to
the norm of the same filter of θ, so that a step of 1 changes every filter by as much as the filter itself
and networks with different weight scales can be compared. Biases and BatchNorm parameters get a zero
direction (the paper's "ignore biasbn").
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

from ..locks import model_lock

Directions = dict[str, torch.Tensor]


def perturbed(name: str, param: torch.Tensor) -> bool:
    """Whether a parameter gets a direction: convolution and linear weights yes, biases and norms no."""
    return param.dim() > 1


def _gaussian(name: str, shape: torch.Size, seed: int, which: int) -> torch.Tensor:
    # One generator per (seed, direction, parameter name): twins get the same draw on every parameter they
    # share, whatever else either of them has.
    key = (int(seed) * 1_000_003 + which * 7_919 + zlib.crc32(name.encode())) % (2**63 - 1)
    return torch.randn(shape, generator=torch.Generator().manual_seed(key), dtype=torch.float32)


def filter_normalize(direction: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``direction`` with each output filter (row) rescaled to the norm of the same filter of ``weight``."""
    d = direction.reshape(direction.shape[0], -1)
    w = weight.detach().to(d).reshape(weight.shape[0], -1)
    scale = w.norm(dim=1, keepdim=True) / (d.norm(dim=1, keepdim=True) + 1e-10)
    return (d * scale).reshape(direction.shape)


def random_directions(model: nn.Module, seed: int = 0) -> tuple[Directions, Directions]:
    """Two filter-normalised random directions for ``model`` (zero for biases and normalisation parameters).

    Keys are ``model.named_parameters()`` names; tensors live on the model's device.
    """
    out: tuple[Directions, Directions] = ({}, {})
    with model_lock(model).shared():
        for name, p in model.named_parameters():
            for which in (0, 1):
                if perturbed(name, p):
                    d = filter_normalize(_gaussian(name, p.shape, seed, which), p.detach().float().cpu())
                else:
                    d = torch.zeros(p.shape, dtype=torch.float32)
                out[which][name] = d.to(device=p.device, dtype=p.dtype)
    return out
