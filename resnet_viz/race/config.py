"""What a race trains: its configuration, the quick race's recipe and data, and the runs' names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..device import PRECISIONS
from ..models import TWINS
from ..training import Recipe
from .data import DATASETS, IMAGE_SIZES

MAX_DEPTH = 110
MAX_SEEDS = 10
ENGINES = ("auto", "fused", "unfused")

# The quick race (He et al.'s depths 20 and 56): about a minute and a half per seed on 2 CPU cores (measured in
# docs/training-race.md), and the same on every device, so races on a laptop and a GPU compare. It trains 3 seeds
# of each net (RaceConfig.seeds).
# Easy shapes at 16x16 px: a quarter of the work per image. Adam at lr 0.01 without weight decay: in a few
# hundred steps plain-56 leaves chance only with a large Adam step (SGD at 0.005-0.5 and Adam at 5e-4-2e-3
# left it at chance); with coupled L2 decay Adam keeps shrinking the scale-invariant weights instead.
# 30 warm-up steps: without them (360 steps) ResNet-56 lagged ResNet-20 all race and ended above it on seeds
# 0 and 1. benchmarks/check_race_recipe.py checks this recipe on 3 seeds and other image sets.
# The page and the CLI offer SGD with momentum as in the paper.
QUICK_RECIPE = Recipe(
    steps=400,
    batch_size=32,
    optimizer="adam",
    lr=1e-2,
    momentum=0.9,
    weight_decay=0.0,
    warmup_steps=30,
    schedule="cosine",
    seed=0,
)
QUICK_DATASET = "shapes-easy"
QUICK_IMAGE_SIZE = 16


def quick_recipe() -> Recipe:
    """A copy of the quick race's recipe (:data:`QUICK_RECIPE`), free to change."""
    return replace(QUICK_RECIPE)


def run_label(arch: str, depth: int) -> str:
    return f"{'ResNet' if arch == 'resnet' else 'Plain'}-{depth}"


@dataclass
class RaceConfig:
    """What to race: ``depths`` x ``twins``, one data set and one recipe."""

    depths: tuple[int, ...] = (20, 56)
    twins: tuple[str, ...] = TWINS
    dataset: str = QUICK_DATASET
    recipe: Recipe = field(default_factory=quick_recipe)
    train_size: int = 4000
    test_size: int = 500
    eval_every: int = 50  # steps between test-error checkpoints (0: only at the end)
    snapshot_every: int = 20  # steps between gradient / residual-ratio snapshots (0: never)
    probe_size: int = 32  # images in the fixed batch used for residual ratios
    lr_overrides: dict[str, float] = field(default_factory=dict)  # run label -> learning rate
    precision: str = "auto"  # auto (bfloat16 where the hardware has it natively), bf16 or fp32
    image_size: int = QUICK_IMAGE_SIZE  # pixels: 16 (a quarter of the work of 32) or 32
    folder: str | None = None  # for dataset "folder": the path (default: $RESNET_VIZ_RACE_FOLDER); never from visitors
    seeds: int = 3  # each net trains on seeds recipe.seed, recipe.seed + 1, ... (own initial weights, own batches)
    engine: str = "auto"  # auto, fused (one network per depth, see resnet_viz.fused) or unfused (one step per run)

    def __post_init__(self):
        self.depths = tuple(sorted({int(d) for d in self.depths}))
        self.twins = tuple(t for t in TWINS if t in self.twins)
        if not self.depths or not self.twins:
            raise ValueError("a race needs at least one depth and one twin")
        for d in self.depths:
            if d < 8 or (d - 2) % 6 or d > MAX_DEPTH:
                raise ValueError(f"depths must be 6n+2 between 8 and {MAX_DEPTH} (20, 32, 44, 56, 110), got {d}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.eval_every < 0 or self.snapshot_every < 0:
            raise ValueError("eval_every and snapshot_every must be >= 0")
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size!r}")
        if not isinstance(self.seeds, int) or not 1 <= self.seeds <= MAX_SEEDS:
            raise ValueError(f"seeds must be between 1 and {MAX_SEEDS}, got {self.seeds!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def seed_list(self) -> list[int]:
        """The seeds every net trains on."""
        return [self.recipe.seed + k for k in range(self.seeds)]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["recipe"] = self.recipe.to_dict()
        d["depths"], d["twins"] = list(self.depths), list(self.twins)
        return d
