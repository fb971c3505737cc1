"""Training races: ResNets and their plain twins of several depths, trained side by side.

A race is a set of runs (twin x depth) over one data set with one recipe:

- :mod:`.data`: the data sets (bundled shapes, CIFAR-10, a server's image folder) and their descriptions
- :mod:`.config`: :class:`RaceConfig`, the quick race's recipe and data, the runs' names
- :mod:`.run`: one network of a race and its instrumented training step
- :mod:`.engine`: :class:`Race`, its worker thread and :func:`run_race`
- :mod:`.fusion`: the runs of one depth (twins and seeds) trained as one fused network, and when to fuse
- :mod:`.crew`: the worker threads that train a step's runs side by side on the CPU
- :mod:`.scheduler`: the server-wide queue that bounds how many races train at once
- :mod:`.results`: final losses, the summary tables, seed means and bands, He et al.'s Fig. 6 checks
- :mod:`.files`: JSON and CSV, the recorded race, the trained twins saved
- :mod:`.registry`: one training per setting on a server: live races joined by their viewers, finished ones reused
- :mod:`.store`: the server's finished races on disk, bounded
- :mod:`.estimate`: step times measured here, a race's estimated time, the queue's start times, the budget
"""

from .config import (
    ENGINES,
    MAX_SEEDS,
    QUICK_DATASET,
    QUICK_IMAGE_SIZE,
    QUICK_RECIPE,
    RaceConfig,
    quick_recipe,
    run_label,
)
from .data import DATASETS, FOLDER_ENV, IMAGE_SIZES, DatasetUnavailable, RaceData, describe_dataset, load_race_data
from .engine import Race, run_race
from .estimate import Estimate, check_budget, estimate_race
from .files import (
    CSV_COLUMNS,
    RECORDED_RACE,
    RaceFileError,
    load_race,
    race_pairs,
    race_to_csv,
    race_to_json,
    race_twins_bytes,
    recorded_race,
    save_race_models,
)
from .registry import RaceRegistry, default_registry, race_id
from .results import (
    LEFT_CHANCE_MARGIN,
    PAPER_CIFAR10_TEST_ERROR,
    RESNET_TIE,
    chance_loss,
    fig6_checks,
    final_test_error,
    final_train_loss,
    for_seed,
    mean_curves,
    nets,
    race_seeds,
    run_seed,
    seed_summary,
    summary,
    thin_history,
)
from .run import Run
from .scheduler import RaceScheduler, default_scheduler
from .store import FinishedRaces

__all__ = [
    "ENGINES",
    "MAX_SEEDS",
    "QUICK_DATASET",
    "QUICK_IMAGE_SIZE",
    "QUICK_RECIPE",
    "RaceConfig",
    "quick_recipe",
    "run_label",
    "DATASETS",
    "FOLDER_ENV",
    "IMAGE_SIZES",
    "DatasetUnavailable",
    "RaceData",
    "describe_dataset",
    "load_race_data",
    "Race",
    "run_race",
    "CSV_COLUMNS",
    "RECORDED_RACE",
    "RaceFileError",
    "load_race",
    "race_pairs",
    "race_to_csv",
    "race_to_json",
    "race_twins_bytes",
    "recorded_race",
    "save_race_models",
    "LEFT_CHANCE_MARGIN",
    "PAPER_CIFAR10_TEST_ERROR",
    "RESNET_TIE",
    "chance_loss",
    "fig6_checks",
    "final_test_error",
    "final_train_loss",
    "summary",
    "thin_history",
    "for_seed",
    "mean_curves",
    "nets",
    "race_seeds",
    "run_seed",
    "seed_summary",
    "Run",
    "RaceScheduler",
    "default_scheduler",
    "Estimate",
    "check_budget",
    "estimate_race",
    "RaceRegistry",
    "default_registry",
    "race_id",
    "FinishedRaces",
]
