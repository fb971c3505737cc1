"""resnet_viz: make residual learning visible.

A ResNet next to its plain twin (same weights, no skip connections): Grad-CAM,
gradient norms, residual-vs-identity probes and training races. No Streamlit
needed; every plotting function returns a plotly figure.
"""

from .attribution import (
    ATTRIBUTION_METHODS,
    Attribution,
    Cams,
    CamsCancelled,
    attribute,
    cams,
    evaluate_attributions,
    sanity_check,
)
from .bundled import list_bundled, load_bundled, sample_images
from .checkpoints import load_checkpoint, save_twins
from .curvature import Curvature, twin_curvatures
from .data import SHAPE_CLASSES, class_display_name, make_shapes, shape_class_name
from .device import best_device, describe_device
from .explain import Explanation, explain, localisation
from .gradients import GradientFlow, forward_signals, gradient_flow, gradient_norms
from .imaging import ImageError, load_image
from .inside import BlockMaps, DatasetExamples, EvidenceSplit, block_maps, dataset_examples, evidence_split
from .landscape import LandscapeCancelled, Surface, loss_line, loss_surface, record_path, twin_surfaces
from .lesion import lesion_accuracies, path_length_distribution, random_deletion_accuracies
from .models import TwinNet, build_twins
from .race import DatasetUnavailable, Race, RaceConfig, RaceFileError, load_race, recorded_race, run_race
from .residual import block_contributions, gradient_split
from .shattered import LineGradients, autocorrelation, line_gradients, paper_figure_nets
from .slots import Slots
from .training import Recipe
from .weights import WeightsUnavailable, imagenet_available

__all__ = [
    "GradientFlow",
    "forward_signals",
    "gradient_flow",
    "gradient_norms",
    "Explanation",
    "ImageError",
    "Recipe",
    "SHAPE_CLASSES",
    "class_display_name",
    "shape_class_name",
    "TwinNet",
    "WeightsUnavailable",
    "best_device",
    "build_twins",
    "describe_device",
    "DatasetUnavailable",
    "Race",
    "RaceConfig",
    "RaceFileError",
    "load_race",
    "recorded_race",
    "run_race",
    "explain",
    "imagenet_available",
    "list_bundled",
    "load_bundled",
    "load_image",
    "localisation",
    "make_shapes",
    "sample_images",
    "block_contributions",
    "gradient_split",
    "lesion_accuracies",
    "path_length_distribution",
    "random_deletion_accuracies",
    "load_checkpoint",
    "save_twins",
    "Slots",
    "LandscapeCancelled",
    "Surface",
    "loss_line",
    "loss_surface",
    "record_path",
    "twin_surfaces",
    "ATTRIBUTION_METHODS",
    "Attribution",
    "attribute",
    "evaluate_attributions",
    "sanity_check",
    "Cams",
    "CamsCancelled",
    "cams",
    "LineGradients",
    "autocorrelation",
    "line_gradients",
    "paper_figure_nets",
    "Curvature",
    "twin_curvatures",
    "BlockMaps",
    "DatasetExamples",
    "EvidenceSplit",
    "block_maps",
    "dataset_examples",
    "evidence_split",
]
