"""How each method computes its raw map: captum called as its documentation shows, Grad-CAM from
:mod:`resnet_viz.explain`.

Every runner takes ``(model, x, target, options)``, with ``options`` holding each of the method's options (its
declared defaults filled in; ``None`` means "chosen from the input's size or the model"), and returns
``(raw, used)``: the raw output and the options it ran with. ``model`` must be usable as is (eval mode; a
private copy for methods whose captum class registers hooks): :func:`resnet_viz.attribution.attribute` sees to it.
"""

from __future__ import annotations

import torch

from ..explain import grad_cam as one_pass_grad_cam
from .batching import batch_for

Raw = tuple[torch.Tensor, dict]


def _captum():
    """captum's attribution classes, imported on first use (importing captum takes seconds)."""
    from captum import attr

    return attr


def _mean_colour(x: torch.Tensor) -> torch.Tensor:
    """The baseline: inputs are normalised, so all zeros is the data set's mean colour."""
    return torch.zeros_like(x)


def _or(value, default):
    return default if value is None else value


def occlusion_window(height: int, width: int) -> tuple[int, int]:
    """Occlusion's square window and stride for an input size: an eighth of the shorter side, half-overlapping.

    The number of model evaluations stays about 15 x 15 whatever the size.
    """
    window = max(2, round(min(height, width) / 8))
    return window, max(1, window // 2)


def grad_cam(model, x: torch.Tensor, target: int, options: dict) -> Raw:
    """1 x 1 x h x w at the layer's resolution."""
    layer = options["layer"] or model.default_layer
    _, _, cams = one_pass_grad_cam(model, x, [target], layer=layer, upsample=False)
    return cams[:, None], {"layer": layer}


def saliency(model, x: torch.Tensor, target: int, options: dict) -> Raw:
    return _captum().Saliency(model).attribute(x, target=target, abs=True), {}


def integrated_gradients(model, x: torch.Tensor, target: int, options: dict) -> Raw:
    """Integrated Gradients from the mean colour; with ``smoothgrad``, averaged over noisy copies (NoiseTunnel)."""
    h, w = x.shape[-2:]
    n_steps = int(options["n_steps"])
    batch_size = int(_or(options["internal_batch_size"], batch_for(h, w, n_steps)))
    smoothgrad = bool(options["smoothgrad"])
    used: dict[str, object] = {"n_steps": n_steps, "internal_batch_size": batch_size, "smoothgrad": smoothgrad}
    ig = _captum().IntegratedGradients(model)
    if not smoothgrad:
        return ig.attribute(
            x,
            baselines=_mean_colour(x),
            target=target,
            n_steps=n_steps,
            internal_batch_size=batch_size,
        ), used
    nt_samples = int(options["nt_samples"])
    noise = float(options["noise"])  # SmoothGrad's sigma, as a share of the input's range
    used["nt_samples"], used["noise"] = nt_samples, noise
    stdev = noise * float(x.max() - x.min())
    return _captum().NoiseTunnel(ig).attribute(
        x,
        nt_type="smoothgrad",
        nt_samples=nt_samples,
        nt_samples_batch_size=1,
        stdevs=stdev,
        baselines=_mean_colour(x),
        target=target,
        n_steps=n_steps,
        internal_batch_size=batch_size,
    ), used


def gradient_shap(model, x: torch.Tensor, target: int, options: dict) -> Raw:
    """Gradient SHAP from two baselines: the mean colour and a noise image drawn with ``seed``."""
    used = {"n_samples": int(options["n_samples"]), "stdevs": float(options["stdevs"])}
    gen = torch.Generator().manual_seed(int(options["seed"]))
    noise = torch.randn(x.shape, generator=gen).to(x)
    baselines = torch.cat([_mean_colour(x), noise])
    return _captum().GradientShap(model).attribute(
        x, baselines=baselines, n_samples=used["n_samples"], stdevs=used["stdevs"], target=target
    ), used


def deeplift(model, x: torch.Tensor, target: int, options: dict) -> Raw:
    return _captum().DeepLift(model).attribute(x, baselines=_mean_colour(x), target=target), {}


def guided_backprop(model, x: torch.Tensor, target: int, options: dict) -> Raw:
    return _captum().GuidedBackprop(model).attribute(x, target=target), {}


def guided_grad_cam(model, x: torch.Tensor, target: int, options: dict) -> Raw:
    layer = options["layer"] or model.default_layer
    return _captum().GuidedGradCam(model, getattr(model, layer)).attribute(x, target=target), {"layer": layer}


def occlusion(model, x: torch.Tensor, target: int, options: dict) -> Raw:
    """Occlusion with mean-colour patches over all channels; window and stride from the input's size."""
    h, w = x.shape[-2:]
    window, stride = occlusion_window(h, w)
    window, stride = int(_or(options["window"], window)), int(_or(options["stride"], stride))
    per_eval = int(_or(options["perturbations_per_eval"], batch_for(h, w, 256)))
    used = {"window": window, "stride": stride, "perturbations_per_eval": per_eval}
    return _captum().Occlusion(model).attribute(
        x,
        sliding_window_shapes=(x.shape[1], window, window),
        strides=(x.shape[1], stride, stride),
        baselines=0,
        target=target,
        perturbations_per_eval=per_eval,
    ), used
