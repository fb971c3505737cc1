"""Saving and loading twins, including untrusted uploads.

Only two formats are read, and neither can run code: safetensors, and
``torch.load(..., weights_only=True)`` files. Everything that goes wrong
becomes a ``ValueError`` whose message says what to do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save, save_file

from .i18n import N_, _
from .models import TwinNet, build_twins

MAX_CHECKPOINT_BYTES = 200 * 1024 * 1024
_SAFETENSORS_MAGIC_MAX_HEADER = 100 * 1024 * 1024


def _twin_tensors(resnet: TwinNet, plain: TwinNet, info: dict) -> dict[str, torch.Tensor]:
    if "build" not in info:
        raise ValueError("info needs a 'build' entry with the build_twins() arguments")
    return {
        f"{prefix}.{k}": v.detach().cpu().contiguous()
        for prefix, model in (("resnet", resnet), ("plain", plain))
        for k, v in model.state_dict().items()
    }


def save_twins(path: str | os.PathLike, resnet: TwinNet, plain: TwinNet, info: dict) -> Path:
    """Write both twins to one safetensors file (``resnet.*`` and ``plain.*`` keys).

    ``info`` must hold ``build`` (the keyword arguments of :func:`build_twins`)
    and may hold ``class_names`` and anything else worth keeping (recipe, accuracy).
    """
    tensors = _twin_tensors(resnet, plain, info)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"info": json.dumps(info)})
    return path


def twins_bytes(resnet: TwinNet, plain: TwinNet, info: dict) -> bytes:
    """The file :func:`save_twins` writes, as bytes (for a download)."""
    return save(_twin_tensors(resnet, plain, info), metadata={"info": json.dumps(info)})


def read_info(path: str | os.PathLike) -> dict:
    """The metadata of a twins file written by :func:`save_twins`."""
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("info", "{}"))


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return 0 < header_len < _SAFETENSORS_MAGIC_MAX_HEADER and head[8:9] == b"{"


def _read_tensors(path: Path) -> tuple[dict, dict]:
    """(flat tensor dict, info) from either accepted format."""
    if _is_safetensors(path):
        try:
            tensors = load_file(str(path))
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ValueError(_("The safetensors file is damaged or truncated ({reason}).").format(reason=exc)) from exc
        try:
            info = json.loads(meta.get("info", "{}"))
        except json.JSONDecodeError:
            info = {}
        return tensors, info if isinstance(info, dict) else {}
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        # Only a refused global means code; torch's text for any unreadable bytes mentions weights_only too.
        if "unsupported global" in str(exc).lower():
            raise ValueError(
                _(
                    "Refused: this checkpoint contains Python objects, not only tensors, and loading "
                    "it could run code. Save a state dict (model.state_dict()) with torch.save or "
                    "safetensors instead."
                )
            ) from None
        raise ValueError(
            _(
                "This file is neither a safetensors file nor a PyTorch checkpoint that can be read "
                "safely; it may be truncated ({reason})."
            ).format(reason=type(exc).__name__)
        ) from None
    if not isinstance(obj, dict):
        raise ValueError(
            _("Expected a state dict (a mapping of names to tensors), found {type}.").format(type=type(obj).__name__)
        )
    info = obj.get("info")
    if not isinstance(info, dict):
        info = {}
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    flat = {}
    for prefix in ("resnet", "plain"):
        if isinstance(obj.get(prefix), dict):
            flat.update({f"{prefix}.{k}": v for k, v in obj[prefix].items()})
    if not flat:
        flat = {k.removeprefix("module."): v for k, v in obj.items()}
    bad = [k for k, v in flat.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(_("Entries that are not tensors: {names}.").format(names=bad[:3]))
    return flat, info


def infer_build(state: dict) -> dict:
    """Guess ``build_twins`` arguments from a ResNet state dict's names and shapes."""
    if "conv1.weight" not in state or "fc.weight" not in state:
        raise ValueError(_("This does not look like a ResNet state dict: 'conv1.weight' and 'fc.weight' are missing."))
    stem = state["conv1.weight"]
    stages = sorted({int(m.group(1)) for k in state if (m := re.match(r"layer(\d+)\.", k))})
    blocks = [len({int(m.group(1)) for k in state if (m := re.match(rf"layer{s}\.(\d+)\.", k))}) for s in stages]
    bottleneck = any(k.endswith("conv3.weight") for k in state)
    norm = "batch" if any(".bn1." in k or k.startswith("bn1.") for k in state) else "none"
    block = "pre" if "final_bn.weight" in state else "post"  # without norm the two look alike: post
    build = dict(num_classes=int(state["fc.weight"].shape[0]), in_channels=int(stem.shape[1]), norm=norm, block=block)
    if stem.shape[-1] == 7:
        by_layout: dict[tuple[str, tuple[int, ...]], str] = {
            ("basic", (2, 2, 2, 2)): "resnet18",
            ("basic", (3, 4, 6, 3)): "resnet34",
            ("bottleneck", (3, 4, 6, 3)): "resnet50",
        }
        arch = by_layout.get(("bottleneck" if bottleneck else "basic", tuple(blocks)))
        if arch is None:
            raise ValueError(_("Unsupported torchvision layout: {blocks} blocks per stage.").format(blocks=blocks))
        build.update(arch=arch, width=int(state["layer1.0.conv1.weight"].shape[0]) // 64 if not bottleneck else 1)
    else:
        if len(stages) != 3 or len(set(blocks)) != 1:
            raise ValueError(
                _("Unsupported CIFAR layout: {blocks} blocks per stage (expected 3 equal stages).").format(
                    blocks=blocks
                )
            )
        width = max(1, int(stem.shape[0]) // 16)
        has_projection = any(".downsample." in k for k in state)
        build.update(arch="cifar", depth=6 * blocks[0] + 2, width=width, shortcut="B" if has_projection else "A")
    return build


def _load_into(model: TwinNet, state: dict, which: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise ValueError(
            _("The {which} weights do not fit the architecture: {details}").format(
                which=_(which), details=" ".join(first)[:400]
            )
        ) from None


def load_checkpoint(
    path: str | os.PathLike, *, device: torch.device | str = "cpu", max_bytes: int = MAX_CHECKPOINT_BYTES
) -> tuple[TwinNet, TwinNet, dict]:
    """Load twins from a file: ``(resnet, plain, info)`` in eval mode.

    Accepts files written by :func:`save_twins` (``python -m resnet_viz race
    --save``) and any state dict of a supported ResNet (safetensors, or a
    ``torch.save``'d dict read with ``weights_only=True``). A single state
    dict gives a ResNet and, as its twin, the same weights with the skip
    connections removed. Raises ``ValueError`` for anything else; never runs
    code from the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(_("No such file: {path}").format(path=path))
    size = path.stat().st_size
    if size == 0:
        raise ValueError(_("The checkpoint file is empty."))
    if size > max_bytes:
        raise ValueError(
            _("The checkpoint is {size:.0f} MB; the limit is {limit:.0f} MB.").format(
                size=size / 1e6, limit=max_bytes / 1e6
            )
        )
    tensors, info = _read_tensors(path)
    twin_format = any(k.startswith("resnet.") for k in tensors)
    resnet_state = {k[7:]: v for k, v in tensors.items() if k.startswith("resnet.")} if twin_format else tensors
    plain_state = {k[6:]: v for k, v in tensors.items() if k.startswith("plain.")} if twin_format else None
    build = info.get("build") if isinstance(info.get("build"), dict) else None
    try:
        build = dict(build) if build else infer_build(resnet_state)
        build.pop("weights", None)
        resnet, plain = build_twins(**build)
    except (TypeError, KeyError, IndexError) as exc:
        raise ValueError(
            _("The checkpoint's architecture could not be understood ({reason}).").format(reason=exc)
        ) from None
    _load_into(resnet, resnet_state, "ResNet")
    if plain_state:
        _load_into(plain, plain_state, N_("plain twin"))
    else:
        plain.load_state_dict(resnet_state, strict=False)  # same weights, skips removed
        info = {**info, "plain_is_resnet_without_skips": True}
    names = info.get("class_names")
    if isinstance(names, list) and len(names) == resnet.fc.out_features and all(isinstance(n, str) for n in names):
        resnet.class_names = plain.class_names = [n[:60] for n in names]
    for model in (resnet, plain):
        model.to(device).eval()
    return resnet, plain, {**info, "build": build}
