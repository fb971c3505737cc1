"""Regenerating the bundled twins: each twin trained in its own process, then the files and the model card."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import torch

from .bundled import BUNDLED_RECIPES, MODELS_DIR, TEST_SIZE, TRAIN_SIZE, list_bundled
from .checkpoints import read_info, save_twins
from .data import SHAPE_CLASSES, TEST_SEED, TRAIN_SEED, make_shapes
from .models import TWINS, TwinNet, build_twins
from .training import batch_indices, eval_mode, evaluate, make_optimizer, train_step


def _train_twin(name: str, twin: str, monitor_every: int = 0) -> tuple[dict, dict]:
    """Train one twin of a bundled pair from scratch; returns (state dict, card entry).

    Runs in its own process on one thread: deterministic, and the twins of a
    pair train side by side on a multi-core machine. ``monitor_every`` > 0
    prints test accuracy and the mean single-block lesion drop that often
    (evaluation only: the weights come out the same).
    """
    torch.set_num_threads(1)
    torch.manual_seed(0)
    depth, recipe = BUNDLED_RECIPES[name]
    train_x, train_y, _ = make_shapes(TRAIN_SIZE, seed=TRAIN_SEED)
    test_x, test_y, _ = make_shapes(TEST_SIZE, seed=TEST_SEED)
    resnet, plain = build_twins(**_build_of(name))
    model = resnet if twin == "resnet" else plain
    model.train()
    opt = make_optimizer(model, recipe)
    start = time.time()
    for step, idx in enumerate(batch_indices(len(train_x), recipe)):
        loss, _ = train_step(model, opt, train_x[idx], train_y[idx], recipe.lr_at(step))
        if step % 100 == 0:
            print(f"{name} {twin}: step {step}/{recipe.steps} loss {loss:.3f}", flush=True)
        if monitor_every and (step + 1) % monitor_every == 0:
            _print_lesions(f"{name} {twin} step {step + 1}", model, test_x[:300], test_y[:300])
    model.eval()
    test, train = evaluate(model, test_x, test_y), evaluate(model, train_x, train_y)
    card = {
        "test_accuracy": round(1 - test["error"], 4),
        "train_loss": round(train["loss"], 4),
        "train_seconds": round(time.time() - start),
    }
    return {k: v.clone() for k, v in model.state_dict().items()}, card


def _print_lesions(label: str, model: TwinNet, images: torch.Tensor, labels: torch.Tensor) -> None:
    from .lesion import lesion_accuracies

    with eval_mode(model):
        lesions = lesion_accuracies(model, images, labels)
    drops = [lesions["baseline"] - acc for acc in lesions["per_block"] if acc is not None]
    print(
        f"{label}: accuracy {lesions['baseline']:.3f}, mean drop per deleted block "
        f"{sum(drops) / len(drops):.3f}, worst {max(drops):.3f}",
        flush=True,
    )


def _build_of(name: str) -> dict:
    return dict(arch="cifar", depth=BUNDLED_RECIPES[name][0], num_classes=len(SHAPE_CLASSES), seed=0)


def train_bundled(
    names: list[str] | None = None,
    *,
    log: Callable[[str], None] = print,
    workers: int | None = None,
    monitor_every: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[Path]:
    """Retrain the bundled twins from scratch, one process per twin (one thread each).

    ``progress(done, total)`` counts the twins trained so far.
    """
    from concurrent.futures import ProcessPoolExecutor

    names = names or list(BUNDLED_RECIPES)
    # Deepest first, so the long jobs start together.
    names = sorted(names, key=lambda name: -BUNDLED_RECIPES[name][0])
    jobs = [(name, twin, monitor_every) for name in names for twin in TWINS]
    workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    results = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for job, result in zip(jobs, pool.map(_train_twin, *zip(*jobs))):
            results[job[:2]] = result
            if progress:
                progress(len(results), len(jobs))
    written = []
    for name in names:
        twins = build_twins(**_build_of(name))
        card = {}
        for model in twins:
            state, card[model.twin] = results[(name, model.twin)]
            model.load_state_dict(state)
            log(f"{name} {model.twin}: test accuracy {card[model.twin]['test_accuracy']:.4f}")
        info = {
            "name": name,
            "dataset": f"shapes (train {TRAIN_SIZE} images seed {TRAIN_SEED}, "
            f"test {TEST_SIZE} images seed {TEST_SEED})",
            "build": _build_of(name),
            "recipe": BUNDLED_RECIPES[name][1].to_dict(),
            "class_names": SHAPE_CLASSES,
            **card,
        }
        written.append(save_twins(MODELS_DIR / f"{name}.safetensors", *twins, info))
    _write_model_card()
    return written


def _write_model_card() -> None:
    lines = [
        "# Bundled models",
        "",
        "Twins trained on the bundled `shapes` data set by "
        "`python -m resnet_viz train-bundled` (each twin in its own single-threaded process). Each pair starts from "
        "the same "
        "weights and sees the same batches.",
        "",
        "| name | depth | ResNet test accuracy | plain test accuracy | ResNet train loss | plain train loss | recipe |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in list_bundled():
        info = read_info(MODELS_DIR / f"{name}.safetensors")
        r, p, rec = info["resnet"], info["plain"], info["recipe"]
        lines.append(
            f"| {name} | {info['build']['depth']} | {r['test_accuracy']:.2%} | {p['test_accuracy']:.2%} | "
            f"{r['train_loss']:.3f} | {p['train_loss']:.3f} | {rec['optimizer']} lr {rec['lr']}, "
            f"{rec['steps']} steps x {rec['batch_size']}, {rec['schedule']} |"
        )
    (MODELS_DIR / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
