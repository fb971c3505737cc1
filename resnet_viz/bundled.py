"""Trained twins that ship with the package, and how to regenerate them.

Each ``assets/models/<name>.safetensors`` holds a ResNet (keys ``resnet.*``)
and its plain twin (``plain.*``), trained from the same initial weights with
the same recipe and batches; the file's metadata holds the model card.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch

from .checkpoints import load_checkpoint, read_info, save_twins
from .data import SHAPE_CLASSES, TEST_SEED, TRAIN_SEED, make_shapes
from .models import TwinNet, build_twins
from .training import Recipe, batch_indices, evaluate, make_optimizer, train_step

ASSETS = Path(__file__).parent / "assets"
MODELS_DIR = ASSETS / "models"
SAMPLES_DIR = ASSETS / "samples"
TRAIN_SIZE = 10_000
TEST_SIZE = 2_000
# name -> (depth, recipe). One recipe for both depths keeps the comparison fair.
BUNDLED_RECIPES = {
    "shapes-20": (20, Recipe(steps=700, batch_size=64, lr=0.1, weight_decay=5e-4, warmup_steps=50, seed=0)),
    "shapes-56": (56, Recipe(steps=700, batch_size=64, lr=0.1, weight_decay=5e-4, warmup_steps=50, seed=0)),
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


def train_bundled(names: list[str] | None = None, *, log: Callable[[str], None] = print) -> list[Path]:
    """Retrain the bundled twins from scratch (deterministic on the CPU)."""
    torch.manual_seed(0)
    train_x, train_y, _ = make_shapes(TRAIN_SIZE, seed=TRAIN_SEED)
    test_x, test_y, _ = make_shapes(TEST_SIZE, seed=TEST_SEED)
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or list(BUNDLED_RECIPES):
        depth, recipe = BUNDLED_RECIPES[name]
        build = dict(arch="cifar", depth=depth, num_classes=len(SHAPE_CLASSES), seed=0)
        twins = build_twins(**build)
        card = {}
        for model in twins:
            model.train()
            opt = make_optimizer(model, recipe)
            start = time.time()
            for step, idx in enumerate(batch_indices(len(train_x), recipe)):
                loss, _ = train_step(model, opt, train_x[idx], train_y[idx], recipe.lr_at(step))
                if step % 100 == 0:
                    log(f"{name} {model.twin}: step {step}/{recipe.steps} loss {loss:.3f}")
            model.eval()
            test = evaluate(model, test_x, test_y)
            train = evaluate(model, train_x, train_y)
            card[model.twin] = {"test_accuracy": round(1 - test["error"], 4),
                                "train_loss": round(train["loss"], 4), "train_seconds": round(time.time() - start)}
            log(f"{name} {model.twin}: test accuracy {1 - test['error']:.4f}")
        info = {"name": name, "dataset": f"shapes (train {TRAIN_SIZE} images seed {TRAIN_SEED}, "
                                          f"test {TEST_SIZE} images seed {TEST_SEED})",
                "build": build, "recipe": recipe.to_dict(), "class_names": SHAPE_CLASSES, **card}
        written.append(save_twins(MODELS_DIR / f"{name}.safetensors", *twins, info))
    _write_model_card()
    return written


def _write_model_card() -> None:
    lines = ["# Bundled models", "", "Twins trained on the bundled `shapes` data set by "
             "`python -m resnet_viz train-bundled` (deterministic on the CPU). Each pair starts from the same "
             "weights and sees the same batches.", "",
             "| name | depth | ResNet test accuracy | plain test accuracy | ResNet train loss | plain train loss |"
             " recipe |", "|---|---|---|---|---|---|---|"]
    for name in list_bundled():
        info = read_info(MODELS_DIR / f"{name}.safetensors")
        r, p, rec = info["resnet"], info["plain"], info["recipe"]
        lines.append(f"| {name} | {info['build']['depth']} | {r['test_accuracy']:.2%} | {p['test_accuracy']:.2%} | "
                     f"{r['train_loss']:.3f} | {p['train_loss']:.3f} | {rec['optimizer']} lr {rec['lr']}, "
                     f"{rec['steps']} steps x {rec['batch_size']}, {rec['schedule']} |")
    (MODELS_DIR / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
