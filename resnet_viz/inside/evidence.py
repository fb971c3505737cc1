"""The class evidence at each block's sum, split into what arrives along the skip and what the branch adds.

A residual block sums two paths, z = s(x) + F(x). With g = d score / dz (the score is the target class's logit),
the first-order evidence at z is g · z, and it splits exactly into g · s(x), carried by the identity path, and
g · F(x), added by the branch. :func:`evidence_split` computes both for every block and image from one forward and
one backward pass.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..locks import model_lock
from ..models import TwinNet
from ..residual import _prepare, trace_block_sums


@dataclass(frozen=True)
class EvidenceRow:
    """One block's evidence, one number per image: ``identity`` = g · s(x), ``branch`` = g · F(x)."""

    identity: np.ndarray
    branch: np.ndarray

    @property
    def total(self) -> np.ndarray:
        """g · z, the first-order evidence at the block's sum: identity + branch."""
        return self.identity + self.branch

    @property
    def identity_share(self) -> np.ndarray:
        """Per image, |g · s(x)| / (|g · s(x)| + |g · F(x)|): the part of the evidence's size that the skip carries.

        1 means all of it travels along the identity path, 0 all of it through the branch (always 0 in the plain
        twin); NaN where both parts are zero. Absolute values, because the two parts may have opposite signs: a
        branch that cancels the skip's evidence still does half the work.
        """
        size = np.abs(self.identity) + np.abs(self.branch)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(size > 0, np.abs(self.identity) / size, np.nan)


@dataclass(frozen=True)
class EvidenceSplit:
    """Per block (in order), the evidence split of each image; ``targets`` the classes whose logits were split."""

    twin: str
    targets: np.ndarray
    scores: np.ndarray
    blocks: dict[str, EvidenceRow] = field(default_factory=dict)

    def identity_share(self) -> dict[str, np.ndarray]:
        """Each block's identity share, one number per image (see :attr:`EvidenceRow.identity_share`)."""
        return {name: row.identity_share for name, row in self.blocks.items()}

    def median_identity_share(self) -> dict[str, float]:
        """Each block's identity share, its median over the images (NaN images left out)."""
        out = {}
        for name, share in self.identity_share().items():
            finite = share[np.isfinite(share)]
            out[name] = float(np.median(finite)) if finite.size else float("nan")
        return out

    def overall_median_share(self) -> float:
        """The median over blocks of each block's median identity share: one number for the network."""
        values = [v for v in self.median_identity_share().values() if np.isfinite(v)]
        return float(np.median(values)) if values else float("nan")

    def to_csv(self) -> str:
        """One line per block and image: block, image, target, identity, branch, total, identity_share."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["twin", "block", "image", "target", "identity", "branch", "total", "identity_share"])
        for name, row in self.blocks.items():
            share = row.identity_share
            for i in range(len(row.identity)):
                writer.writerow(
                    [
                        self.twin,
                        name,
                        i,
                        int(self.targets[i]),
                        f"{row.identity[i]:.6g}",
                        f"{row.branch[i]:.6g}",
                        f"{row.total[i]:.6g}",
                        f"{share[i]:.4f}",
                    ]
                )
        return out.getvalue()


def evidence_split(
    net: TwinNet, images: torch.Tensor, target: int | Sequence[int] | torch.Tensor | None = None
) -> EvidenceSplit:
    """Split the target class's first-order evidence at each block's sum into identity and branch parts.

    For every block, z = s(x) + F(x) (the sum before the block's final ReLU; F(x) alone in the plain twin) and g = d
    score / dz, where the score is the logit of ``target`` (one class for all images, one per image, or the
    predicted class of each image by default). Per image, ``identity`` = g · s(x) and ``branch`` = g · F(x), so
    identity + branch = g · z exactly (products in the model's precision, sums in float64); the plain twin's
    identity part is zero. One forward pass keeps every z, one backward pass (``torch.autograd.grad`` on all of them
    at once) gives every g: no hooks, no weight gradients, no in-place operation, under the model's shared lock, so
    a shared model is only read.

    What a first-order split can tell: how the evidence the rest of the network reads from z is shared between the
    two paths that meet there, the way a ReLU network is locally linear; blocks are comparable, since every row
    uses the same score. What it cannot tell: g · z is not the score (biases and every later ReLU's switching
    are left out, and the rows of different blocks are not additive); it says nothing about how F(x) was
    computed from x (s(x) also fed the branch) or what would happen if a path were removed, which is what a
    lesion measures; and a gradient is local, so a small change of the image may change it.
    """
    with model_lock(net).shared():
        x = _prepare(net, images)
        with torch.enable_grad():
            logits, records = trace_block_sums(net, x)
            if target is None:
                targets = logits.detach().argmax(dim=1)
            else:
                targets = torch.as_tensor(target, device=logits.device).reshape(-1).long()
                if targets.numel() == 1:
                    targets = targets.expand(logits.shape[0])
                if targets.numel() != logits.shape[0]:
                    raise ValueError(f"expected 1 or {logits.shape[0]} targets, got {targets.numel()}")
                if bool(((targets < 0) | (targets >= logits.shape[1])).any()):
                    raise ValueError(f"targets must be class indices from 0 to {logits.shape[1] - 1}")
            scores = logits.gather(1, targets[:, None])[:, 0]
            # Images are independent (eval mode), so the gradient of the summed scores is each image's own.
            grads = torch.autograd.grad(scores.sum(), [r.sum for r in records])
    rows = {}
    for (name, _x, fx, sx, _z), g in zip(records, grads):
        g = g.detach()
        # Products in the model's precision, sums in float64: exact for a float64 model, to float32 rounding else.
        branch = (g * fx.detach()).sum(dim=(1, 2, 3), dtype=torch.float64)
        identity = torch.zeros_like(branch) if sx is None else (g * sx.detach()).sum(dim=(1, 2, 3), dtype=torch.float64)
        rows[name] = EvidenceRow(identity.cpu().numpy(), branch.cpu().numpy())
    return EvidenceSplit(
        twin=net.twin,
        targets=targets.detach().cpu().numpy(),
        scores=scores.detach().double().cpu().numpy(),
        blocks=rows,
    )
