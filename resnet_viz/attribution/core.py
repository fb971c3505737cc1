"""Running one method on one image: the input, the model it runs on, the seeded generators, the display map.

Thread safety follows :func:`resnet_viz.explain`: a shared model is only read. Methods declared
``private_copy`` run on a pooled private copy (:mod:`.private_copies`); the others run on the model
itself under its lock's shared side, in eval mode.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..explain import read_only
from ..imaging import image_to_tensor
from ..models import TwinNet
from .methods import DEFAULT_METHOD, Method, check_method, method_info
from .private_copies import copies


@dataclass
class Attribution:
    """One attribution map.

    ``map`` is H x W in [0, 1] at the image's own size (divided by its maximum, so
    the ranking of pixels is the method's own); ``raw`` is the method's output as
    it came: 1 x 3 x H x W at the model's input size for pixel methods, 1 x 1 x h x w
    at the layer's resolution for layered ones (Grad-CAM).
    """

    map: np.ndarray
    raw: torch.Tensor = field(repr=False)
    method: str
    target: int
    label: str
    options: dict = field(default_factory=dict)

    @property
    def pixel_method(self) -> bool:
        return not method_info(self.method).layered


def prepare(model: TwinNet, image: Image.Image | torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """``(x, out_size)``: the normalised 1 x 3 x H x W input and the size maps come back at."""
    if isinstance(image, Image.Image):
        x, out_size = image_to_tensor(image, model.preprocess), (image.height, image.width)
    elif isinstance(image, torch.Tensor):
        if image.dim() != 4 or image.shape[0] != 1:
            raise ValueError(f"expected a 1 x C x H x W tensor, got shape {tuple(image.shape)}")
        x, out_size = image, (int(image.shape[-2]), int(image.shape[-1]))
    else:
        raise TypeError(f"image must be a PIL image or a tensor, not {type(image).__name__}")
    param = next(model.parameters())
    return x.to(device=param.device, dtype=param.dtype), out_size


def _label(model: TwinNet, target: int) -> str:
    names = model.class_names
    return names[target] if names and target < len(names) else f"class {target}"


def to_map(raw: torch.Tensor, method: str, out_size: tuple[int, int]) -> np.ndarray:
    """Raw output -> H x W map in [0, 1] at ``out_size``.

    Gradient-type methods: absolute values summed over colour channels; methods declared
    ``positive_only`` (signed evidence for the class: Grad-CAM, Occlusion): the positive part.
    Then divided by the maximum (an all-zero map stays zero).
    """
    raw = raw.detach().float()
    if method_info(method).positive_only:
        m = raw.sum(dim=1, keepdim=True).clamp_min(0)
    else:
        m = raw.abs().sum(dim=1, keepdim=True)
    if tuple(m.shape[-2:]) != tuple(out_size):
        m = F.interpolate(m, size=tuple(out_size), mode="bilinear", align_corners=False).clamp_min(0)
    m = m[0, 0]
    peak = float(m.max())
    if peak > 0:
        m = m / peak
    return m.clamp(0, 1).cpu().numpy()


@contextmanager
def _usable(model: TwinNet, method: Method, private: bool) -> Iterator[TwinNet]:
    if private:  # already the caller's own copy (the sanity check)
        with torch.enable_grad():
            yield model
    elif method.private_copy:
        with copies.borrow(model) as own, torch.enable_grad():
            yield own
    else:
        with read_only(model) as shared, torch.enable_grad():
            yield shared


_GLOBAL_RNG_LOCK = threading.Lock()


@contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's and numpy's global generators for captum's random draws, then restore them.

    captum draws from both (noise from torch, Gradient SHAP's baselines and path points from numpy). The
    generators are process-wide, so seeded calls take turns: two visitors' maps at once would otherwise
    draw from each other's seeds and differ from run to run.
    """
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with _GLOBAL_RNG_LOCK:
        state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                np.random.seed(seed)
                yield
        finally:
            np.random.set_state(state)


def attribute_tensor(
    model: TwinNet,
    x: torch.Tensor,
    out_size: tuple[int, int],
    method: str,
    target: int | None,
    options: dict,
    *,
    private: bool = False,
) -> Attribution:
    """:func:`attribute` on a prepared input; ``private``: ``model`` is the caller's own copy."""
    declared = check_method(method, options)
    settings = {**declared.options, **options}
    with _usable(model, declared, private) as usable:
        if target is None:
            with torch.no_grad():
                target = int(usable(x)[0].argmax())
        target = int(target)
        seed = settings.get("seed", 0) if declared.seeded(settings) else None  # only random draws need the generators
        with warnings.catch_warnings(), _seeded(seed, x.device):
            warnings.simplefilter("ignore")  # captum's notes about hooks and in-place operations
            # x.detach(): a tensor object of this call's own, as captum sets requires_grad on its input in place
            # and another thread attributing the same input would otherwise see it reset mid-backward.
            raw, used = declared.run(usable, x.detach(), target, settings)
    raw = raw.detach()
    return Attribution(
        map=to_map(raw, method, out_size),
        raw=raw,
        method=method,
        target=target,
        label=_label(model, target),
        options=used,
    )


def attribute(
    model: TwinNet,
    image: Image.Image | torch.Tensor,
    *,
    method: str = DEFAULT_METHOD,
    target: int | None = None,
    **options,
) -> Attribution:
    """Attribute ``model``'s score for ``target`` (default: its top class) on ``image`` with ``method``.

    ``image`` is a PIL image of any mode (preprocessed the way the model expects)
    or a normalised 1 x 3 x H x W tensor; ``.map`` comes back at the image's own
    size. ``method`` is one of :data:`ATTRIBUTION_METHODS`; its options and their
    defaults are declared in :data:`METHODS`:

    * Grad-CAM, Guided Grad-CAM: ``layer`` (a stage or block; default the last stage);
    * Integrated Gradients: ``n_steps`` (32), ``internal_batch_size`` (from the image
      size), ``smoothgrad`` (False: SmoothGrad through captum's NoiseTunnel),
      ``nt_samples`` (8) and ``noise`` (0.15 of the input's range);
    * Gradient SHAP: ``n_samples`` (16), ``stdevs`` (0.1), ``seed`` (0);
    * Occlusion: ``window`` and ``stride`` (from the image size), ``perturbations_per_eval``.

    Baselines are the all-zero normalised input (the data set's mean colour).
    Safe to call from many threads on one shared model; nothing is left on it.
    """
    x, out_size = prepare(model, image)
    return attribute_tensor(model, x, out_size, method, target, options)
