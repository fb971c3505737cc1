"""Splitting the work over ``torch.distributed`` processes: gathering a sharded grid, sharing rank 0's path."""

from __future__ import annotations

import numpy as np
import torch

from .path import OptimizerPath
from .surface import Surface


def gather_surface(surface: Surface) -> Surface:
    """Combine the shards of a grid computed by the processes of a ``torch.distributed`` group (on every rank)."""
    import torch.distributed as dist

    data = torch.from_numpy(np.stack([surface.loss, surface.accuracy])).to(torch.float64)
    done = torch.from_numpy(~np.isnan(surface.loss)).to(torch.float64)
    if dist.get_backend() == "nccl":
        data, done = data.cuda(), done.cuda()
    data = torch.nan_to_num(data, nan=0.0)
    dist.all_reduce(data)
    dist.all_reduce(done)
    values, covered = data.cpu().numpy(), done.cpu().numpy()
    # Points that diverged (NaN or inf on their rank) come back as NaN / inf; exactly one rank computed each.
    if not np.all(covered == 1):
        raise RuntimeError("the shards do not cover the grid exactly once")
    return Surface(
        surface.alphas,
        surface.betas,
        values[0],
        values[1],
        surface.directions,
        surface.span,
        surface.seed,
        surface.n_images,
        surface.twin,
        surface.kind,
        surface.meta,
    )


def broadcast_path(path: OptimizerPath) -> None:
    """Give every rank rank 0's PCA directions, trained weights and coordinates (in place)."""
    import torch.distributed as dist

    if path.directions is None or path.trained is None:
        raise ValueError("only a path recorded in this process (with its directions and weights) can be broadcast")
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    for which in (0, 1):
        for name, d in path.directions[which].items():
            buf = d.detach().to(device).contiguous()
            dist.broadcast(buf, 0)
            path.directions[which][name] = buf.to(d.device)
    with torch.no_grad():
        for value in path.trained.state_dict().values():
            buf = value.detach().to(device).contiguous()
            dist.broadcast(buf, 0)
            value.copy_(buf)
    coords = torch.from_numpy(np.ascontiguousarray(path.coords)).to(device)
    dist.broadcast(coords, 0)
    path.coords = coords.cpu().numpy()
