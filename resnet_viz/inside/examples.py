"""Dataset examples: the test images that excite each channel of a block's output most."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..locks import model_lock
from ..models import TwinNet
from ..residual import check_eval


@dataclass(frozen=True)
class DatasetExamples:
    """Each block's mean output activation per image and channel, over a fixed set of images.

    ``activations[block]`` is an N x C float32 array: image i's channel c averaged over the positions of the
    block's output y (after its final ReLU). :meth:`top` ranks the images for one channel.
    """

    twin: str
    n_images: int
    activations: dict[str, np.ndarray] = field(default_factory=dict)

    def top(self, block: str, channel: int, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` images with the highest mean activation of ``channel``: (indices, activations), highest first.

        Ties keep the lower image index first.
        """
        values = self._column(block, channel)
        order = np.argsort(-values, kind="stable")[: max(0, int(k))]
        return order, values[order]

    def top_all(self, block: str, k: int = 8) -> np.ndarray:
        """C x k image indices: row c lists channel c's top ``k`` images, highest first."""
        acts = self._block(block)
        return np.argsort(-acts, axis=0, kind="stable")[: max(0, int(k))].T.copy()

    def _block(self, block: str) -> np.ndarray:
        if block not in self.activations:
            raise ValueError(f"no examples for block {block!r}; have {list(self.activations)}")
        return self.activations[block]

    def _column(self, block: str, channel: int) -> np.ndarray:
        acts = self._block(block)
        if not 0 <= int(channel) < acts.shape[1]:
            raise ValueError(f"block {block} has channels 0 to {acts.shape[1] - 1}, not {channel}")
        return acts[:, int(channel)]


@torch.no_grad()
def dataset_examples(
    net: TwinNet, images: torch.Tensor, blocks: Sequence[str] | None = None, *, batch_size: int = 250
) -> DatasetExamples:
    """Each block's (``blocks``, all by default) per-channel mean output activation for every image.

    One forward pass over ``images`` (normalised N x C x H x W, in batches of ``batch_size``), stopping after the
    last block asked for; block by block through :meth:`TwinNet.blocks`, no hooks, under the model's shared lock.
    """
    check_eval(net)
    names = [name for name, _b in net.blocks()]
    wanted = list(names if blocks is None else blocks)
    unknown = [b for b in wanted if b not in names]
    if unknown:
        raise ValueError(f"unknown block(s) {unknown}; choose from {names[0]} ... {names[-1]}")
    last = max(names.index(b) for b in wanted) if wanted else -1
    p = next(net.parameters())
    parts: dict[str, list[torch.Tensor]] = {b: [] for b in wanted}
    with model_lock(net).shared():
        for start in range(0, len(images), batch_size):
            h = net.stem(images[start : start + batch_size].to(device=p.device, dtype=p.dtype))
            for i, (name, block) in enumerate(net.blocks()):
                if i > last:
                    break
                h = block(h)
                if name in parts:
                    parts[name].append(h.mean(dim=(2, 3)).float().cpu())
    return DatasetExamples(
        twin=net.twin,
        n_images=len(images),
        activations={b: torch.cat(parts[b]).numpy() for b in wanted},
    )
