"""Attribution methods side by side, a sanity check, and how faithful each map is.

* :mod:`.methods` declares each method once (what it is, its options, how it runs): the registry
  :data:`METHODS`; :mod:`.runners` calls captum as it documents it (Grad-CAM is our one-pass
  :mod:`resnet_viz.explain`).
* :func:`cams` (:mod:`.cam_maps`, formulas in :mod:`.cam_family`): the whole CAM family (Grad-CAM, HiResCAM,
  Grad-CAM++, XGrad-CAM, LayerCAM, Eigen-CAM, ..., Score-CAM, Ablation-CAM) for the top-k classes from one pass.
* :func:`attribute` (:mod:`.core`) runs one method on one image, on a private copy
  (:mod:`.private_copies`) when captum registers hooks.
* :func:`sanity_check` and :func:`sanity_verdict` (:mod:`.sanity`): the cascading model-parameter
  randomisation of Adebayo et al. (2018), "Sanity Checks for Saliency Maps".
* :mod:`.metrics` and :func:`evaluate_attributions` (:mod:`.evaluation`) score maps on images with known
  object masks: pointing game, mass inside the object, deletion / insertion curves (Petsiuk et al. 2018,
  RISE), next to a random map as the baseline; :mod:`.tables` holds the shipped tables of the bundled twins.
"""

from .batching import BATCH_PIXELS, batch_for
from .cam_family import CamsCancelled
from .cam_maps import Cams, cam_methods, cams
from .core import Attribution, attribute, prepare, to_map
from .evaluation import (
    RANDOM,
    TABLE_COLUMNS,
    MethodSpec,
    evaluate_attributions,
    evaluate_image,
    mean_sanity_curves,
    rows_to_csv,
)
from .methods import ATTRIBUTION_METHODS, DEFAULT_METHOD, METHODS, Method, check_method, method_info, methods_help
from .metrics import auc, blur, mass_inside, perturbation_curves, pointing_game, random_map, spearman, ssim
from .runners import occlusion_window
from .sanity import (
    FAILS_IF_HEAD_SPEARMAN_AT_LEAST,
    PASSES_IF_FINAL_SPEARMAN_AT_MOST,
    Step,
    Verdict,
    granularity_for,
    randomisation_order,
    randomise_,
    sanity_check,
    sanity_verdict,
)
from .tables import EXTRA_LAYERS, PRECOMPUTED_DIR, evaluation_methods, load_precomputed, precompute_bundled

__all__ = [
    "ATTRIBUTION_METHODS",
    "Attribution",
    "Cams",
    "CamsCancelled",
    "cam_methods",
    "cams",
    "BATCH_PIXELS",
    "DEFAULT_METHOD",
    "EXTRA_LAYERS",
    "FAILS_IF_HEAD_SPEARMAN_AT_LEAST",
    "METHODS",
    "Method",
    "MethodSpec",
    "PASSES_IF_FINAL_SPEARMAN_AT_MOST",
    "PRECOMPUTED_DIR",
    "RANDOM",
    "Step",
    "TABLE_COLUMNS",
    "Verdict",
    "attribute",
    "auc",
    "batch_for",
    "blur",
    "check_method",
    "evaluate_attributions",
    "evaluate_image",
    "evaluation_methods",
    "granularity_for",
    "load_precomputed",
    "mass_inside",
    "mean_sanity_curves",
    "method_info",
    "methods_help",
    "occlusion_window",
    "perturbation_curves",
    "pointing_game",
    "precompute_bundled",
    "prepare",
    "random_map",
    "randomisation_order",
    "randomise_",
    "rows_to_csv",
    "sanity_check",
    "sanity_verdict",
    "spearman",
    "ssim",
    "to_map",
]
