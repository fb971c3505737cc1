"""``python -m resnet_viz landscape``: the command's arguments and its run (split over ``torchrun`` processes)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch

from ..models import TWINS
from ..progress import ProgressBar
from .distributed import broadcast_path, gather_surface
from .evaluate import check_grid
from .files import write_landscape_file
from .inputs import initial_twins, training_batch
from .line import loss_line
from .path import OptimizerPath, path_surface, record_path
from .surface import NONCONVEX_TOL, loss_surface


def add_cli_arguments(parser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--bundled", metavar="NAME", help="a bundled pair (shapes-20, shapes-56)")
    src.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="twins or a ResNet state dict that load_checkpoint accepts "
        "(8 shapes classes at 32x32: evaluated on shapes)",
    )
    parser.add_argument("--steps", type=int, default=21, help="grid points per axis, odd (default 21)")
    parser.add_argument("--span", type=float, default=1.0, help="the grid covers [-span, span]^2 (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random directions (default 0)")
    parser.add_argument("--images", type=int, default=128, help="training images per grid point (default 128)")
    parser.add_argument("--twins", nargs="+", choices=list(TWINS), default=list(TWINS))
    parser.add_argument(
        "--path",
        action="store_true",
        help="also record the optimiser's path: a short run from the twins' initial weights "
        "(bundled twins) or from the checkpoint, with its PCA plane",
    )
    parser.add_argument("--path-steps", type=int, default=150, help="training steps of the path run (default 150)")
    parser.add_argument(
        "--path-optimizer",
        choices=["adam", "sgd"],
        default="adam",
        help="optimiser of the path run (default adam, lr 2e-3; sgd: lr 0.05, momentum 0.9)",
    )
    parser.add_argument("--path-lr", type=float, help="learning rate of the path run")
    parser.add_argument("--path-grid", type=int, default=15, help="grid points per axis on the PCA plane")
    parser.add_argument("--snapshots", type=int, default=25, help="weight snapshots kept for the PCA (default 25)")
    parser.add_argument(
        "--no-line",
        action="store_true",
        help="skip the straight line from the initial to the trained weights (computed when the "
        "twins record their initial weights)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ... (under torchrun: cuda:<local rank>)")
    parser.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    parser.add_argument("--out", required=True, help="where to write the JSON file")


def _cli_models(args):
    from ..bundled import load_bundled
    from ..checkpoints import load_checkpoint
    from ..data import SHAPE_CLASSES

    if args.bundled:
        return load_bundled(args.bundled, device=args.device)
    resnet, plain, info = load_checkpoint(args.checkpoint, device=args.device)
    if (
        resnet.fc.out_features != len(SHAPE_CLASSES)
        or resnet.conv1.in_channels != 3
        or int(resnet.preprocess.get("size", 0)) != 32
    ):
        raise ValueError(
            f"this checkpoint has {resnet.fc.out_features} classes at "
            f"{resnet.preprocess.get('size')} px; the landscape is evaluated on the shapes data set, "
            f"which needs 8 classes at 32x32. Use the library with your own images and labels."
        )
    return resnet, plain, info


def cli(args) -> int:
    """``python -m resnet_viz landscape``; under ``torchrun`` the grid is split across the processes."""
    import torch.distributed as dist

    rank, world = _join_process_group(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    shard = (rank, world) if world > 1 else None

    def say(msg: str) -> None:
        if rank == 0:
            print(msg, file=sys.stderr, flush=True)

    try:
        try:
            check_grid(args.steps, args.span)
            if args.path:
                check_grid(args.path_grid, 1.0)
            resnet, plain, info = _cli_models(args)
            x, y = training_batch(info, args.images)  # a race's twins: their own training data
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        x, y = x.to(args.device), y.to(args.device)
        models = {"resnet": resnet, "plain": plain}
        surfaces, paths, seconds = {}, {}, {}
        for twin in args.twins:
            start = time.perf_counter()
            with ProgressBar(f"{twin} surface", unit="point", quiet=rank != 0) as bar:
                surf = loss_surface(
                    models[twin], x, y, span=args.span, steps=args.steps, seed=args.seed, progress=bar, shard=shard
                )
            if world > 1:
                surf = gather_surface(surf)
            surf.twin = twin
            surfaces[twin] = surf
            seconds[f"{twin}_surface"] = round(time.perf_counter() - start, 1)
            say(
                f"{twin}: loss at the centre {surf.centre_loss:.4g}, non-convex share {surf.nonconvex_share:.2f} "
                f"({seconds[f'{twin}_surface']} s)"
            )
        try:
            inits = dict(zip(TWINS, initial_twins(info)))
        except ValueError:
            inits = None
        lines = {}
        if inits is not None and rank == 0 and not args.no_line:
            for twin in args.twins:
                start = time.perf_counter()
                lines[twin] = loss_line(models[twin], x, y, init=inits[twin].to(args.device), steps=41)
                seconds[f"{twin}_line"] = round(time.perf_counter() - start, 1)
        if args.path:
            starts, origin = (inits, "the recorded initial weights") if inits else (models, "the checkpoint's weights")
            for twin in args.twins:
                start = time.perf_counter()
                path = _optimizer_path(args, starts[twin].to(args.device), twin, x, y, rank, world)
                path.recipe = {**path.recipe, "start": origin, "train_images": len(x)}
                paths[twin] = path
                seconds[f"{twin}_path"] = round(time.perf_counter() - start, 1)
                say(
                    f"{twin} path: {len(path.steps)} snapshots, PCA explains {path.explained[0]:.0%} + "
                    f"{path.explained[1]:.0%} ({seconds[f'{twin}_path']} s)"
                )
        if rank == 0:
            name = args.bundled or Path(args.checkpoint).name
            write_landscape_file(
                args.out, surfaces, name=name, paths=paths, lines=lines, extra=_settings(args, seconds, world)
            )
            say(f"wrote {args.out}")
        if world > 1:
            dist.barrier()  # tear the group down together: a rank leaving while a peer still works can abort
        return 0
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _join_process_group(args) -> tuple[int, int]:
    """``(rank, world size)``; under ``torchrun`` joins the group (NCCL on CUDA, one GPU per process; else gloo)."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        backend = "nccl" if args.device.startswith("cuda") else "gloo"
        if backend == "nccl":
            args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(args.device)
        dist.init_process_group(backend)
    return rank, world


def _optimizer_path(args, model, twin: str, x, y, rank: int, world: int) -> OptimizerPath:
    """The path of a short run from ``model`` on ``(x, y)``, with the loss over its PCA plane.

    The run trains on the images the surfaces are measured on, so its path ends in their minimum. Every
    rank trains the same copy (same seed, same batches); rank 0's directions and weights are sent to all,
    then the ranks share the plane's grid.
    """
    lr = args.path_lr or (2e-3 if args.path_optimizer == "adam" else 0.05)
    with ProgressBar(f"{twin} path", unit="step", quiet=rank != 0) as bar:
        path = record_path(
            model,
            x,
            y,
            steps=args.path_steps,
            optimizer=args.path_optimizer,
            lr=lr,
            max_snapshots=args.snapshots,
            progress=bar,
        )
    if world > 1:
        broadcast_path(path)
    with ProgressBar(f"{twin} PCA plane", unit="point", quiet=rank != 0) as bar:
        path_surface(path, x, y, steps=args.path_grid, progress=bar, shard=(rank, world) if world > 1 else None)
    surface = path.surface
    if surface is None:
        raise RuntimeError("path_surface left the path without a surface")
    if world > 1:
        surface = path.surface = gather_surface(surface)
    surface.twin = twin
    return path


def _settings(args, seconds: dict, world: int) -> dict:
    """What the file records besides the arrays: the grid, the data, the method and the machine."""
    return {
        "steps": args.steps,
        "span": args.span,
        "seed": args.seed,
        "images": args.images,
        "data": f"shapes training set (seed 1), first {args.images} images",
        "batchnorm": "eval (running statistics)",
        "directions": "filter-normalised Gaussian, zero for biases and BatchNorm parameters",
        "nonconvex_tol": NONCONVEX_TOL,
        "seconds": seconds,
        "processes": world,
        "threads": torch.get_num_threads(),
        "device": str(args.device),
        "torch": torch.__version__,
    }
