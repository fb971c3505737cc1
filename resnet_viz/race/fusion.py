"""The runs of one depth (both twins, every seed) trained as one fused network, and when to fuse.

The runs keep their own :class:`~resnet_viz.race.run.Run` (history, snapshots, status); their ``model`` is
brought up to date from the group whenever something reads it (residual ratios, the end of the race).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..fused import FusedGroup, FusedOptimizer, can_fuse, fused_train_step
from ..gradients import main_path_weights
from .run import Run

# Fuse on the CPU only for groups at least this large and images at most this size: measured on 2 cores
# (benchmarks/bench_race.py), 12 nets at 16 px trained 1.2-1.4x faster fused, 4 nets (1 seed) slower
# (a group of 2 ResNet-56 on one core against one per core), and grouped convolutions at 32 px lost.
CPU_MIN_GROUP = 6
CPU_MAX_IMAGE_SIZE = 16


def should_fuse(engine: str, device: torch.device, runs_per_depth: int, image_size: int) -> bool:
    """Whether a race fuses the runs of each depth: ``engine`` fused/unfused, or auto by the rule above."""
    if engine != "auto":
        return engine == "fused"
    if device.type == "cuda":
        return runs_per_depth >= 2
    if device.type == "cpu":
        return runs_per_depth >= CPU_MIN_GROUP and image_size <= CPU_MAX_IMAGE_SIZE
    return False


class FusedRuns:
    """Runs of one architecture trained as one :class:`FusedGroup`, each on its own seed's batches."""

    def __init__(self, runs: Sequence[Run], memory_format=torch.contiguous_format):
        self.runs = list(runs)
        models = [run.model for run in self.runs]
        if not can_fuse(models):
            raise ValueError("these runs cannot be fused")
        self.memory_format = memory_format
        device = next(models[0].parameters()).device
        # Module.to takes memory_format (torch's docs); torch's type stubs leave it out.
        self.group = FusedGroup(models).to(device, memory_format=memory_format).train()  # type: ignore[call-overload]
        self.optimizer = FusedOptimizer(self.group, [run.recipe for run in self.runs])
        self.grad_names = [name for name, _ in main_path_weights(models[0])]
        self.depth = self.runs[0].depth
        self._synced_step = 0
        self.steps = 0

    @property
    def load(self) -> int:
        return self.depth * len(self.runs)

    def split(self) -> list["FusedRuns"]:
        """Two groups of half the runs each (to keep two workers busy)."""
        self.sync_models()
        half = len(self.runs) // 2
        return [FusedRuns(self.runs[:half], self.memory_format), FusedRuns(self.runs[half:], self.memory_format)]

    def step(
        self, step: int, batches: dict[int, tuple[torch.Tensor, torch.Tensor]], *, want_grads: bool, autocast: Callable
    ) -> list[tuple[float, float, dict | None]]:
        """One step of every running member on its seed's batch: per run ``(loss, error, grad_norms)``."""
        xs = self.group.stack_inputs([batches[run.seed][0] for run in self.runs])
        xs = xs.contiguous(memory_format=self.memory_format)
        ys = torch.stack([batches[run.seed][1] for run in self.runs], dim=1)
        table: list[list[float]] = []

        def read_grad_norms() -> None:
            table.extend(self.group.grad_norms([f"{name}.weight" for name in self.grad_names]))

        active = [run.status == "running" for run in self.runs]
        losses, errors = fused_train_step(
            self.group,
            self.optimizer,
            xs,
            ys,
            [run.recipe.lr_at(step) for run in self.runs],
            active=active,
            autocast=autocast,
            before_update=read_grad_norms if want_grads else None,
        )
        self.steps += 1
        out = []
        for i, run in enumerate(self.runs):
            grads = {name: round(v, 6) for name, v in zip(self.grad_names, table[i])} if want_grads else None
            out.append((losses[i], errors[i], grads))
        return out

    @torch.no_grad()
    def test_errors(
        self, images: torch.Tensor, labels: torch.Tensor, chunk: int, stopped: Callable[[], bool], autocast: Callable
    ) -> list[float] | None:
        """Every member's error on the same test images (eval mode), in chunks; None when stopped midway."""
        wrong = torch.zeros(len(self.runs))
        self.group.eval()
        try:
            for i in range(0, len(images), chunk):
                if stopped():
                    return None
                x = self.group.stack_inputs(images[i : i + chunk]).contiguous(memory_format=self.memory_format)
                with autocast():
                    logits = self.group(x).float()
                wrong += (logits.argmax(2) != labels[i : i + chunk, None]).sum(0).cpu()
        finally:
            self.group.train()
        return (wrong / max(1, len(images))).tolist()

    def sync_models(self) -> None:
        """Bring every run's ``model`` up to date with the group (an ordinary ``TwinNet``)."""
        if self._synced_step == self.steps:
            return
        for i, run in enumerate(self.runs):
            run.model.load_state_dict(self.group.member_state_dict(i))
        self._synced_step = self.steps

    def sync_model(self, run: Run) -> None:
        i = self.runs.index(run)
        run.model.load_state_dict(self.group.member_state_dict(i))
