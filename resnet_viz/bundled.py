"""Trained twins and sample photos that ship with the package: where they are and how to load them.

Each ``assets/models/<name>.safetensors`` holds a ResNet (keys ``resnet.*``)
and its plain twin (``plain.*``), trained from the same initial weights with
the same recipe and batches; the file's metadata holds the model card.
``resnet_viz.bundled_training`` regenerates them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoints import load_checkpoint
from .models import TwinNet
from .training import Recipe

ASSETS = Path(__file__).parent / "assets"
MODELS_DIR = ASSETS / "models"
SAMPLES_DIR = ASSETS / "samples"
TRAIN_SIZE = 10_000
TEST_SIZE = 2_000
# name -> (depth, recipe). One recipe for both depths keeps the comparison fair.
BUNDLED_RECIPES = {
    "shapes-20": (20, Recipe(steps=3000, batch_size=64, lr=0.1, weight_decay=5e-4, warmup_steps=50, seed=0)),
    "shapes-56": (56, Recipe(steps=3000, batch_size=64, lr=0.1, weight_decay=5e-4, warmup_steps=50, seed=0)),
}


def list_bundled() -> list[str]:
    """Names of the trained twins shipped with the package."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.safetensors"))


def load_bundled(name: str = "shapes-20", *, device: torch.device | str = "cpu") -> tuple[TwinNet, TwinNet, dict]:
    """Load bundled twins: ``(resnet, plain, info)``, in eval mode.

    ``info`` is the model card: data set, recipe, test accuracy of each twin.
    """
    path = MODELS_DIR / f"{name}.safetensors"
    if not path.is_file():
        raise ValueError(f"no bundled model {name!r}; available: {list_bundled()}")
    return load_checkpoint(path, device=device)


def sample_images() -> dict[str, Path]:
    """Bundled sample photos by name."""
    return {p.stem: p for p in sorted(SAMPLES_DIR.glob("*.png"))}
