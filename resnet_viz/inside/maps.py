"""A block's feature maps: the input x, the shortcut s(x), the branch F(x), their sum z and the output y."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..locks import model_lock
from ..models import TwinNet, _Block
from ..residual import _prepare


@dataclass(frozen=True)
class BlockMaps:
    """One block's tensors for a batch, each N x C x H x W, on the CPU, detached.

    ``input`` is x, what the block receives; ``shortcut`` is s(x) (x itself, or x subsampled and zero-padded,
    or projected, where the block changes the shape; None for the plain twin, which has no shortcut);
    ``branch`` is F(x), the branch's output *before* the block's final activation; ``sum`` is z = s(x) + F(x)
    (F(x) alone for the plain twin); ``output`` is y = act(z), what the block hands on.
    """

    block: str
    twin: str
    input: torch.Tensor
    shortcut: torch.Tensor | None
    branch: torch.Tensor
    sum: torch.Tensor
    output: torch.Tensor


def find_block(net: TwinNet, block: str) -> tuple[int, _Block]:
    """The index and module of the block named ``block`` (``layer1.0``, ...); ValueError for an unknown name."""
    for index, (name, module) in enumerate(net.blocks()):
        if name == block:
            return index, module
    names = [name for name, _m in net.blocks()]
    raise ValueError(f"unknown block {block!r}; choose one of {names[0]} ... {names[-1]}")


@torch.no_grad()
def block_maps(net: TwinNet, images: torch.Tensor, block: str) -> BlockMaps:
    """The feature maps of block ``block`` (named as on the Residual vs identity page: ``layer1.0``, ...).

    ``images`` is a normalised N x C x H x W batch (or one C x H x W image). In a post-activation block (He et
    al. 2015, the bundled twins) the block computes z = s(x) + F(x), then y = relu(z): the last ReLU comes
    *after* the sum, so ``output`` is not ``shortcut + branch`` but its ReLU; ``sum`` holds z. In a
    pre-activation block (He et al. 2016) there is no activation after the sum and y = z. The plain twin's
    block computes y = relu(F(x)). ``output`` is exactly what the block module returns for ``input``.

    The network runs unit by unit (:meth:`TwinNet.run`), no hooks, under the model's shared lock: a shared model
    is only read.
    """
    with model_lock(net).shared():
        x = _prepare(net, images)
        index, module = find_block(net, block)
        h = net.run(x, 0, index + 1)  # unit 0 is the stem: block ``index`` is unit index + 1
        fx = module.branch(h)
        sx = module.shortcut(h) if module.residual else None
        z = fx if sx is None else fx + sx
        y = module.act_out(z)

    def cpu(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.detach().float().cpu()

    return BlockMaps(block, net.twin, cpu(h), cpu(sx), cpu(fx), cpu(z), cpu(y))  # type: ignore[arg-type]


def channel_energy(t: torch.Tensor) -> torch.Tensor:
    """Each channel's energy, the mean of its squared values over the batch and the positions: a C-vector."""
    if t.dim() != 4:
        raise ValueError(f"expected an N x C x H x W tensor, got shape {tuple(t.shape)}")
    return t.float().pow(2).mean(dim=(0, 2, 3))


def block_channels(net: TwinNet, block: str) -> int:
    """How many channels block ``block``'s output has (its branch's last convolution's output channels)."""
    _index, module = find_block(net, block)
    convs = [m for name, m in module.named_modules() if isinstance(m, torch.nn.Conv2d) and "downsample" not in name]
    return int(convs[-1].out_channels)
