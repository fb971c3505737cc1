"""The attribution methods: one declaration each, saying what the method is and how :func:`attribute` runs it.

Everything else that needs a fact about a method (the page, the evaluation, the display map) reads it here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Callable, Mapping

from ..i18n import N_, _
from . import cam_family as cams
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
    cam: Callable | None = field(default=None, repr=False)  # a CAM's formula (:mod:`.cam_family`): rv.cams computes it
    cam_gradients: bool = False  # the formula reads the class scores' gradients

    def __post_init__(self):
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))

    @property
    def takes_layer(self) -> bool:
        """Whether the chosen stage changes this method's map."""
        return "layer" in self.options


def cam(
    name: str, formula: Callable, citation: str, help: str, *, gradients: bool = True, perturbation: bool = False
) -> Method:
    """A CAM method: a weighting of one stage's activations (and gradients) from the one pass of :mod:`.cam_family`;
    the perturbation-based ones evaluate the model once per channel, at most ``max_channels`` of them."""
    options = {"layer": None, **({"max_channels": None, "batch_size": None} if perturbation else {})}
    return Method(
        name=name,
        run=partial(cams.run_cam, formula, gradients),
        help=help,
        citation=citation,
        options=options,
        layered=True,
        positive_only=True,
        expensive=perturbation,
        cam=formula,
        cam_gradients=gradients,
    )


METHODS: Mapping[str, Method] = MappingProxyType(
    {
        m.name: m
        for m in (
            Method(
                name="Grad-CAM",
                run=runners.grad_cam,
                options={"layer": None},
                layered=True,
                positive_only=True,
                citation="Selvaraju et al. 2017",
                cam=cams.grad_cam,
                cam_gradients=True,
                help=N_("Grad-CAM (ours, one pass): a stage's feature maps weighed by the class score's gradient."),
            ),
            Method(
                name="Saliency",
                run=runners.saliency,
                citation="Simonyan et al. 2014",
                help=N_("Saliency: the gradient's size at each pixel."),
            ),
            Method(
                name="Integrated Gradients",
                run=runners.integrated_gradients,
                expensive=True,
                seeded=with_smoothgrad,
                options={
                    "n_steps": 32,
                    "internal_batch_size": None,
                    "smoothgrad": False,
                    "nt_samples": 8,
                    "noise": 0.15,
                },
                citation="Sundararajan et al. 2017; SmoothGrad: Smilkov et al. 2017",
                help=N_("Integrated Gradients: gradients averaged along a path from a plain grey image."),
            ),
            Method(
                name="Gradient SHAP",
                run=runners.gradient_shap,
                seeded=always,
                options={"n_samples": 16, "stdevs": 0.1, "seed": 0},
                citation="Lundberg and Lee 2017",
                help=N_("Gradient SHAP: gradients averaged along paths from noisy starting images."),
            ),
            Method(
                name="DeepLift",
                run=runners.deeplift,
                private_copy=True,
                citation="Shrikumar et al. 2017",
                help=N_("DeepLift: each pixel's contribution against the grey image, layer by layer."),
            ),
            Method(
                name="Guided Backprop",
                run=runners.guided_backprop,
                private_copy=True,
                citation="Springenberg et al. 2015",
                help=N_("Guided Backprop: the gradient with negative signals blocked at every ReLU."),
            ),
            Method(
                name="Guided Grad-CAM",
                run=runners.guided_grad_cam,
                options={"layer": None},
                private_copy=True,
                citation="Selvaraju et al. 2017",
                help=N_("Guided Grad-CAM: Guided Backprop times Grad-CAM."),
            ),
            Method(
                name="Occlusion",
                run=runners.occlusion,
                positive_only=True,
                expensive=True,
                options={"window": None, "stride": None, "perturbations_per_eval": None},
                citation="Zeiler and Fergus 2014",
                help=N_("Occlusion: how much the score drops when a patch is covered."),
            ),
            cam(
                "HiResCAM",
                cams.hires_cam,
                "Draelos and Carin 2020",
                N_("HiResCAM: the gradient times the feature map at each position, summed over channels."),
            ),
            cam(
                "Grad-CAM element-wise",
                cams.grad_cam_elementwise,
                "after Draelos and Carin 2020 (pytorch-grad-cam)",
                N_("Grad-CAM element-wise: like HiResCAM, with only the positive products kept."),
            ),
            cam(
                "Grad-CAM++",
                cams.grad_cam_plus_plus,
                "Chattopadhay et al. 2018",
                N_(
                    "Grad-CAM++: channels weighed by their positive gradients, with more weight where few positions "
                    "fire."
                ),
            ),
            cam(
                "XGrad-CAM",
                cams.xgrad_cam,
                "Fu et al. 2020",
                N_("XGrad-CAM: gradients averaged with each feature map's own activations as the weights."),
            ),
            cam(
                "LayerCAM",
                cams.layer_cam,
                "Jiang et al. 2021",
                N_("LayerCAM: each position weighed by its own positive gradient."),
            ),
            cam(
                "EigenGrad-CAM",
                cams.eigengrad_cam,
                "after Muhammad and Yeasin 2020 (pytorch-grad-cam)",
                N_("EigenGrad-CAM: the first principal component of the gradient times the feature maps."),
            ),
            cam(
                "Eigen-CAM",
                cams.eigen_cam,
                "Muhammad and Yeasin 2020",
                gradients=False,
                help=N_("Eigen-CAM: the feature maps' first principal component; the same map for every class."),
            ),
            cam(
                "Score-CAM",
                cams.score_cam,
                "Wang et al. 2020",
                gradients=False,
                perturbation=True,
                help=N_(
                    "Score-CAM: each feature map masks the image; the class scores of the masked images weigh them."
                ),
            ),
            cam(
                "Ablation-CAM",
                cams.ablation_cam,
                "Desai and Ramaswamy 2020",
                gradients=False,
                perturbation=True,
                help=N_("Ablation-CAM: how much the class score drops when each feature map is zeroed."),
            ),
        )
    }
)

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
    return "\n\n".join(
        [
            *(_(m.help) for m in METHODS.values()),
            _(
                "The CAM methods are ours, all from one pass (Score-CAM and Ablation-CAM evaluate the "
                "model once per feature map); the others are captum's implementations."
            ),
        ]
    )
