"""Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets").

The loss of a trained network at θ + α·d₁ + β·d₂ over a grid of α, β, where d₁ and d₂ are random
Gaussian directions, filter-normalised (:mod:`.directions`). One concern per module:

- ``directions``: random filter-normalised directions;
- ``evaluate``: a private copy of the model at shifted weights and its loss on a batch;
- ``surface``: :class:`Surface`, :func:`loss_surface`, :func:`twin_surfaces`, curvature;
- ``line``: :class:`Line`, :func:`loss_line` (a random direction, or initial to trained weights);
- ``path``: :class:`OptimizerPath`, :func:`record_path`, :func:`path_surface` (the optimiser's path);
- ``files``: the JSON file format and the shipped files of the bundled pairs;
- ``inputs``: the bundled twins' training batch and initial weights;
- ``distributed``: a grid split over ``torch.distributed`` processes;
- ``cli``: ``python -m resnet_viz landscape``.
"""

from .directions import Directions, filter_normalize, perturbed, random_directions
from .distributed import gather_surface
from .evaluate import EVAL_CHUNK, MAX_STEPS, LandscapeCancelled, Progress
from .files import (
    ASSETS_DIR,
    FORMAT,
    precomputed_info,
    precomputed_lines,
    precomputed_paths,
    precomputed_surfaces,
    read_landscape_file,
    write_landscape_file,
)
from .inputs import (
    MAX_IMAGES,
    fits_training_batch,
    initial_twins,
    landscape_batch,
    trained_on_offline_shapes,
    training_batch,
)
from .line import Line, loss_line
from .path import MAX_SNAPSHOTS, OptimizerPath, path_surface, record_path, snapshot_bytes
from .surface import NONCONVEX_TOL, Surface, curvature, loss_surface, twin_surfaces

__all__ = [
    "ASSETS_DIR",
    "Directions",
    "EVAL_CHUNK",
    "FORMAT",
    "LandscapeCancelled",
    "Line",
    "MAX_IMAGES",
    "MAX_SNAPSHOTS",
    "MAX_STEPS",
    "NONCONVEX_TOL",
    "OptimizerPath",
    "Progress",
    "Surface",
    "curvature",
    "filter_normalize",
    "fits_training_batch",
    "gather_surface",
    "initial_twins",
    "landscape_batch",
    "loss_line",
    "loss_surface",
    "path_surface",
    "perturbed",
    "precomputed_info",
    "precomputed_lines",
    "precomputed_paths",
    "precomputed_surfaces",
    "random_directions",
    "read_landscape_file",
    "record_path",
    "snapshot_bytes",
    "trained_on_offline_shapes",
    "training_batch",
    "twin_surfaces",
    "write_landscape_file",
]
