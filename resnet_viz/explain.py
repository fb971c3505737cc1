"""One-pass Grad-CAM (Selvaraju et al. 2017).

The model runs once. Units before the target layer run without autograd; the
rest records a graph that starts at the layer's activation, so each top-k
class costs only a backward pass through the head (no second forward, no
gradient into the weights, no ``.grad`` left behind). No hooks are
registered, so many threads can explain with one shared model at once.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .imaging import image_to_tensor
from .locks import model_lock
from .models import TwinNet
from .training import eval_mode


@contextmanager
def read_only(model: TwinNet) -> Iterator[TwinNet]:
    """``model`` in eval mode for a probe that only reads it (no hooks, no weight gradients).

    Many threads may hold it at once. A model left in training mode is switched to eval
    under its exclusive lock for the block (BatchNorm must not update its statistics).
    """
    lock = model_lock(model)
    with lock.shared():  # no writer holds the model now, so its mode is its own
        if not model.training:
            yield model
            return
    with lock.exclusive(), eval_mode(model):
        yield model


@dataclass
class Explanation:
    """Top-k predictions and one Grad-CAM heatmap per class.

    ``heatmaps`` is k x H x W in [0, 1] at the image's own size; each map is
    divided by its maximum, so 0 means "no positive evidence".
    """

    indices: np.ndarray
    probs: np.ndarray
    labels: list[str]
    heatmaps: np.ndarray
    layer: str
    raw_max: np.ndarray = field(repr=False)  # each map's maximum before scaling


@dataclass
class LayerPass:
    """What one forward (and backward) pass gives at ``layer``: everything the CAM family weighs.

    ``activations`` is 1 x C x h x w; ``gradients`` is k x C x h x w (one row per class in ``class_ids``,
    the class score's gradient with respect to the activations) or None when not asked for. ``split`` is the
    index of the first unit after the layer (``model.run(a, split)`` gives the logits from activations ``a``).
    """

    logits: torch.Tensor
    class_ids: list[int]
    activations: torch.Tensor
    gradients: torch.Tensor | None
    layer: str
    split: int

    @property
    def class_gradients(self) -> torch.Tensor:
        """``gradients``, for a formula that weighs them; a ValueError when the pass ran without them."""
        if self.gradients is None:
            raise ValueError("this pass ran without gradients: call layer_pass with gradients=True")
        return self.gradients


def layer_pass(
    model: TwinNet,
    x: torch.Tensor,
    class_ids: list[int] | None = None,
    *,
    topk: int = 5,
    layer: str | None = None,
    gradients: bool = True,
) -> LayerPass:
    """One forward pass of a normalised 1 x C x H x W tensor, and one backward through the head per class.

    Units before ``layer`` run without autograd; the graph starts at the layer's activation, so no gradient
    reaches the weights and nothing is left on the model. ``class_ids`` defaults to the top ``topk`` classes.
    """
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"expected a 1 x C x H x W tensor, got shape {tuple(x.shape)}")
    layer = layer or model.default_layer
    split = model.unit_index(layer) + 1
    device = next(model.parameters()).device
    x = x.to(device=device, dtype=next(model.parameters()).dtype)

    with torch.no_grad():
        act = model.run(x, 0, split)
    if not gradients:
        with torch.no_grad():
            logits = model.run(act, split)
        ids = class_ids if class_ids is not None else logits[0].topk(min(topk, logits.shape[1])).indices.tolist()
        return LayerPass(logits, list(ids), act, None, layer, split)
    act = act.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model.run(act, split)
    scores = logits[0]
    if class_ids is None:
        class_ids = scores.detach().topk(min(topk, scores.numel())).indices.tolist()
    k = len(class_ids)
    # One backward per class through the head only: rows of a one-hot batch.
    one_hot = torch.zeros((k, *scores.shape), device=device, dtype=scores.dtype)
    one_hot[torch.arange(k), torch.tensor(class_ids, device=device)] = 1
    if k == 1:
        grads = torch.autograd.grad(scores, act, grad_outputs=one_hot[0])[0]
    else:
        grads = torch.autograd.grad(scores, act, grad_outputs=one_hot, is_grads_batched=True)[0][:, 0]
    return LayerPass(logits.detach(), list(class_ids), act.detach(), grads.detach(), layer, split)


def grad_cam(
    model: TwinNet,
    x: torch.Tensor,
    class_ids: list[int] | None = None,
    *,
    topk: int = 5,
    layer: str | None = None,
    out_size: tuple[int, int] | None = None,
    upsample: bool = True,
):
    """Low-level Grad-CAM on a normalised 1 x C x H x W tensor.

    Returns ``(logits, class_ids, cams)``; ``cams`` is k x h x w (ReLU'd,
    bilinearly upsampled to ``out_size`` or the input's size, not rescaled;
    at the layer's own resolution when ``upsample`` is False).
    """
    p = layer_pass(model, x, class_ids, topk=topk, layer=layer)
    weights = p.class_gradients.mean(dim=(2, 3), keepdim=True)  # k x C x 1 x 1
    cams = F.relu((weights * p.activations).sum(dim=1, keepdim=True))  # k x 1 x h x w
    if not upsample:
        return p.logits, p.class_ids, cams[:, 0]
    size = out_size or tuple(x.shape[-2:])
    cams = F.interpolate(cams, size=size, mode="bilinear", align_corners=False)[:, 0]
    return p.logits, p.class_ids, cams


def explain(
    model: TwinNet,
    image: Image.Image | torch.Tensor,
    *,
    topk: int = 5,
    layer: str | None = None,
    class_ids: list[int] | None = None,
) -> Explanation:
    """Explain ``model``'s prediction on ``image`` with Grad-CAM.

    ``image`` is a PIL image (any mode; it is converted and preprocessed the way
    the model expects) or a normalised 1 x 3 x H x W tensor. Heatmaps come back
    at the image's own size. ``layer`` defaults to the last stage. Pass
    ``class_ids`` to explain chosen classes instead of the top ``topk``.
    """
    if isinstance(image, Image.Image):
        x = image_to_tensor(image, model.preprocess)
        out_size = (image.height, image.width)
    elif isinstance(image, torch.Tensor):
        x, out_size = image, (int(image.shape[-2]), int(image.shape[-1]))
    else:
        raise TypeError(f"image must be a PIL image or a tensor, not {type(image).__name__}")
    if not 1 <= topk:
        raise ValueError("topk must be at least 1")

    with read_only(model):
        logits, ids, cams = grad_cam(model, x, class_ids, topk=topk, layer=layer, out_size=out_size)

    probs = torch.softmax(logits[0].float(), dim=0)[ids].cpu().numpy()
    cams = cams.float()
    peak = cams.flatten(1).amax(dim=1)
    heatmaps = (cams / peak.clamp_min(1e-12)[:, None, None]).clamp_(0, 1)
    names = model.class_names
    labels = [names[i] if names and i < len(names) else f"class {i}" for i in ids]
    return Explanation(
        indices=np.array(ids),
        probs=probs,
        labels=labels,
        heatmaps=heatmaps.cpu().numpy(),
        layer=layer or model.default_layer,
        raw_max=peak.cpu().numpy(),
    )


def localisation(heatmap: np.ndarray, mask: np.ndarray) -> dict:
    """How well a heatmap points at an object: share of mass inside, and the peak."""
    if heatmap.shape != mask.shape:
        raise ValueError(f"heatmap {heatmap.shape} and mask {mask.shape} differ in size")
    total = float(heatmap.sum())
    inside = float(heatmap[mask].sum())
    peak = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return {
        "mass_inside": inside / total if total > 0 else 0.0,
        "peak_inside": bool(mask[peak]),
        "object_share": float(mask.mean()),
    }
