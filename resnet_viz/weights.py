"""Optional ImageNet weights through torchvision's weights API.

Nothing here runs unless asked: the app works offline with the bundled twins.
Weights are cached where ``torch.hub`` caches them (``$TORCH_HOME/hub/checkpoints``),
so a file placed there by hand works without a network.
"""

from __future__ import annotations

import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import torch

from .i18n import _

_WEIGHT_ENUMS = {"resnet18": "ResNet18_Weights", "resnet34": "ResNet34_Weights", "resnet50": "ResNet50_Weights"}


class WeightsUnavailable(RuntimeError):
    """ImageNet weights are neither cached nor downloadable right now."""


def _weights_enum(arch: str):
    import torchvision.models as tvm

    if arch not in _WEIGHT_ENUMS:
        raise ValueError(f"no ImageNet weights for {arch!r}; choose one of {list(_WEIGHT_ENUMS)}")
    return getattr(tvm, _WEIGHT_ENUMS[arch]).IMAGENET1K_V1


def imagenet_weights_path(arch: str) -> Path:
    """Where the checkpoint for ``arch`` is (or would be) cached."""
    url = _weights_enum(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def imagenet_available(arch: str) -> bool:
    return imagenet_weights_path(arch).is_file()


def imagenet_categories(arch: str) -> list[str]:
    return list(_weights_enum(arch).meta["categories"])


def download_imagenet_weights(
    arch: str, progress: Callable[[int, int], None] | None = None, timeout: float = 20.0
) -> Path:
    """Download the checkpoint into the cache (atomically) and return its path.

    ``progress(done_bytes, total_bytes)`` is called as bytes arrive. Raises
    :class:`WeightsUnavailable` with the URL and target path when offline.
    """
    path = imagenet_weights_path(arch)
    if path.is_file():
        return path
    url = _weights_enum(arch).url
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as tmp:
                while chunk := response.read(1 << 16):
                    tmp.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            os.replace(tmp.name, path)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        if "tmp" in locals() and os.path.exists(tmp.name):
            os.unlink(tmp.name)
        raise WeightsUnavailable(
            _(
                "Could not download ImageNet weights for {arch} ({reason}). Without a network, download\n  {url}\n"
                "on another machine and copy it to\n  {path}"
            ).format(arch=arch, reason=exc, url=url, path=path)
        ) from exc
    return path


def imagenet_state_dict(arch: str, progress: Callable[[int, int], None] | None = None) -> dict:
    """The ImageNet state dict for ``arch``: from the cache, else downloaded."""
    path = download_imagenet_weights(arch, progress=progress)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file in the cache
        raise WeightsUnavailable(
            _("The cached file {path} is not a valid checkpoint ({reason}); delete it and download again.").format(
                path=path, reason=exc
            )
        ) from exc
