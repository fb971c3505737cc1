"""The attribution methods: one declaration each, saying what the method is and how :func:`attribute` runs it.

Everything else that needs a fact about a method (the page, the evaluation, the display map) reads it here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping

from ..i18n import N_, _
from . import runners


def never(options: Mapping) -> bool:
    return False


def always(options: Mapping) -> bool:
    return True


def with_smoothgrad(options: Mapping) -> bool:
    return bool(options.get("smoothgrad"))


@dataclass(frozen=True)
class Method:
    """One attribution method.

    ``run`` computes its raw output (see :mod:`.runners`); ``options`` are the keyword options
    :func:`attribute` accepts and their defaults (``None``: chosen from the image size or the model).
    """

    name: str
    run: Callable = field(repr=False)
    help: str  # one sentence for the method picker, N_-marked: show it with _()
    citation: str
    options: Mapping[str, object] = field(default_factory=dict)
    private_copy: bool = False  # captum registers hooks on the model: run on a private copy
    layered: bool = False  # raw output at a layer's resolution (1 x 1 x h x w), not per pixel
    positive_only: bool = False  # signed evidence for the class: the map keeps the positive part
    expensive: bool = False  # many model evaluations per map
    seeded: Callable[[Mapping], bool] = field(default=never, repr=False)  # draws random numbers with these options

    def __post_init__(self):
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def takes_layer(self) -> bool:
        """Whether the chosen stage changes this method's map."""
        return "layer" in self.options


METHODS: Mapping[str, Method] = MappingProxyType({m.name: m for m in (
    Method(name="Grad-CAM", run=runners.grad_cam, options={"layer": None}, layered=True, positive_only=True,
           citation="Selvaraju et al. 2017",
           help=N_("Grad-CAM (ours, one pass): a stage's feature maps weighed by the class score's gradient.")),
    Method(name="Saliency", run=runners.saliency, citation="Simonyan et al. 2014",
           help=N_("Saliency: the gradient's size at each pixel.")),
    Method(name="Integrated Gradients", run=runners.integrated_gradients, expensive=True, seeded=with_smoothgrad,
           options={"n_steps": 32, "internal_batch_size": None, "smoothgrad": False, "nt_samples": 8, "noise": 0.15},
           citation="Sundararajan et al. 2017; SmoothGrad: Smilkov et al. 2017",
           help=N_("Integrated Gradients: gradients averaged along a path from a plain grey image.")),
    Method(name="Gradient SHAP", run=runners.gradient_shap, seeded=always,
           options={"n_samples": 16, "stdevs": 0.1, "seed": 0}, citation="Lundberg and Lee 2017",
           help=N_("Gradient SHAP: gradients averaged along paths from noisy starting images.")),
    Method(name="DeepLift", run=runners.deeplift, private_copy=True, citation="Shrikumar et al. 2017",
           help=N_("DeepLift: each pixel's contribution against the grey image, layer by layer.")),
    Method(name="Guided Backprop", run=runners.guided_backprop, private_copy=True,
           citation="Springenberg et al. 2015",
           help=N_("Guided Backprop: the gradient with negative signals blocked at every ReLU.")),
    Method(name="Guided Grad-CAM", run=runners.guided_grad_cam, options={"layer": None}, private_copy=True,
           citation="Selvaraju et al. 2017",
           help=N_("Guided Grad-CAM: Guided Backprop times Grad-CAM.")),
    Method(name="Occlusion", run=runners.occlusion, positive_only=True, expensive=True,
           options={"window": None, "stride": None, "perturbations_per_eval": None},
           citation="Zeiler and Fergus 2014",
           help=N_("Occlusion: how much the score drops when a patch is covered.")),
)})

ATTRIBUTION_METHODS = tuple(METHODS)
DEFAULT_METHOD = "Grad-CAM"


def method_info(name: str) -> Method:
    """The declaration of the method called ``name``."""
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(ATTRIBUTION_METHODS)}") from None


def check_method(name: str, options: Mapping) -> Method:
    """The method's declaration, after checking that it takes each of ``options``."""
    method = method_info(name)
    unknown = set(options) - set(method.options)
    if unknown:
        allowed = ", ".join(sorted(method.options)) or "none"
        raise ValueError(f"{name} has no option {', '.join(sorted(unknown))}; its options: {allowed}")
    return method


def methods_help() -> str:
    """Every method in a sentence, in the current language, for the method picker."""
    return "\n\n".join([*(_(m.help) for m in METHODS.values()), _("All but Grad-CAM are captum's implementations.")])
