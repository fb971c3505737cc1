"""Command line: ``python -m resnet_viz <command>``."""

from __future__ import annotations

import argparse
import sys

from .progress import ProgressBar


def _train_bundled(args: argparse.Namespace) -> int:
    from .bundled_training import train_bundled

    with ProgressBar("twins trained", unit="twin") as bar:
        paths = train_bundled(args.names or None, monitor_every=args.monitor_every, progress=bar)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _attributions(args: argparse.Namespace) -> int:
    from .attribution import precompute_bundled
    from .bundled import list_bundled

    for name in args.names or list_bundled():
        with ProgressBar(name, unit="map") as bar:

            def progress(stage: str, done: int, total: int) -> None:
                if stage != bar.label:
                    bar.close()  # one bar per twin and part
                    bar.describe(stage)
                bar(done, total)

            path = precompute_bundled(
                name,
                twins=args.twins,
                images=args.images,
                sanity_images=args.sanity_images,
                parts=args.parts,
                progress=progress,
                methods=args.methods,
            )
        print(f"wrote {path}")
    return 0


def _race(args: argparse.Namespace) -> int:
    from .race import (
        DatasetUnavailable,
        RaceConfig,
        fig6_checks,
        quick_recipe,
        race_to_json,
        run_race,
        seed_summary,
        thin_history,
    )
    from .race.autotune import candidate_name, describe_choice
    from .training import Recipe

    device = args.device or "cpu"
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    base = quick_recipe()
    overrides = {
        k: getattr(args, k)
        for k in ("steps", "batch_size", "lr", "seed", "optimizer", "schedule", "warmup_steps", "weight_decay")
        if getattr(args, k) is not None
    }
    if args.epochs is not None:
        overrides["steps"] = max(1, round(args.epochs * args.train_size / overrides.get("batch_size", base.batch_size)))
    try:
        recipe = Recipe(**{**base.to_dict(), **overrides})
        config = RaceConfig(
            depths=tuple(args.depths),
            twins=tuple(args.twins),
            dataset=args.dataset,
            recipe=recipe,
            train_size=args.train_size,
            test_size=args.test_size,
            eval_every=args.eval_every,
            snapshot_every=args.snapshot_every,
            precision="fp32" if args.fp32 else args.precision,
            image_size=args.image_size,
            folder=args.folder,
            seeds=args.seeds,
            engine=args.engine,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        with ProgressBar(unit="step") as bar:
            result = run_race(config, device=device, on_progress=_show_race(bar), save_dir=args.save)
    except (DatasetUnavailable, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"{result['device']}, {result['precision']}, {result['engine']} engine: "
        f"{result['elapsed_s']:.1f} s of training",
        file=sys.stderr,
    )
    if result.get("engine_choice"):
        choice = result["engine_choice"]
        print(f"engine: {describe_choice(choice)}", file=sys.stderr)
        measured = choice["seconds_per_step"].get(candidate_name(choice["fused"], choice["precision"]))
        if measured and choice.get("race_median_step_s"):
            print(
                f"median training step {choice['race_median_step_s'] * 1000:.0f} ms "
                f"(measured before the race: {measured * 1000:.0f} ms)",
                file=sys.stderr,
            )
    with open(args.out, "w") as f:
        f.write(race_to_json(thin_history(result, args.history_every)))
    for row in seed_summary(result):
        test = "" if row["test_error"] is None else f", test error {row['test_error']:.2%}"
        spread = f" (seeds {row['min_train_loss']:.4f}-{row['max_train_loss']:.4f})" if row["seeds"] > 1 else ""
        print(
            f"{row['run']:>10}: {row['finished']}/{row['seeds']} seeds finished, mean final training loss "
            f"{row['final_train_loss']:.4f}{spread}{test}"
        )
    for check in fig6_checks(result):
        print(
            f"Fig. 6 {check['check']}: {'holds' if check['holds'] else 'fails'} on the seed means, "
            f"{check['seeds_agree']}/{check['seeds']} seeds agree"
        )
    print(f"wrote {args.out}")
    if args.save:
        print(f"saved the trained twins in {args.save}")
    return 0


def _landscape(args: argparse.Namespace) -> int:
    from .landscape.cli import cli

    return cli(args)


def _curvature(args: argparse.Namespace) -> int:
    import shlex

    import torch

    from . import curvature as cv
    from .bundled import list_bundled, load_bundled
    from .checkpoints import load_checkpoint
    from .landscape import trained_on_offline_shapes, training_batch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint and not args.out:
        print("error: --checkpoint needs --out (the shipped file holds the bundled twins only)", file=sys.stderr)
        return 2
    try:
        sources = {args.checkpoint: None} if args.checkpoint else {name: None for name in args.names or list_bundled()}
        results, data = {}, f"shapes training set (seed 1), first {args.images} images"
        for name in sources:
            resnet, plain, info = load_checkpoint(name) if args.checkpoint else load_bundled(name)
            x, y = training_batch(info, args.images)  # a race's twins: their own training data
            if trained_on_offline_shapes(info):
                race_data = info["race_data"]
                data = f"{race_data['name']} training set at {race_data['image_size']} px, first {args.images} images"
            with ProgressBar(unit="H·v") as bar:

                def progress(twin: str, done: int, total: int, name=name) -> None:
                    if bar.label != f"{name} {twin}":
                        bar.close()  # one bar per twin
                        bar.describe(f"{name} {twin}")
                    bar(done, total)

                results[name] = cv.twin_curvatures(resnet, plain, x, y, steps=args.steps, progress=progress)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    options = [
        *args.names,
        *(["--checkpoint", args.checkpoint] if args.checkpoint else []),
        "--images",
        str(args.images),
        "--steps",
        str(args.steps),
        *(["--out", args.out] if args.out else []),
    ]
    command = "python -m resnet_viz curvature " + shlex.join(options)
    doc = cv.curvature_doc(results, data=data, command=command)
    path = cv.write_curvature_file(doc, args.out or cv.CURVATURE_FILE)
    for name, twins in results.items():
        for twin, c in twins.items():
            print(
                f"{name} {twin:>6}: lambda_max {c.lambda_max:.4g}, lambda_min {c.lambda_min:.4g}, "
                f"|lambda_min/lambda_max| {c.ratio:.4f}"
            )
    print(f"wrote {path}")
    return 0


def _show_race(bar: ProgressBar):
    """The race's ``on_progress`` callback: its status, or "training" with the engine's images/s, on ``bar``."""

    def show(race) -> None:
        p = race.progress()
        if p["status"] in ("queued", "preparing"):
            bar.describe(p["status"])
        else:
            bar.describe("training", f"{p['images_per_second']:.0f} img/s")
        bar(p["step"], p["total"])

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resnet_viz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-bundled", help="retrain the bundled twins on shapes (CPU, deterministic)")
    p.add_argument("names", nargs="*", help="which bundled models (default: all)")
    p.add_argument(
        "--monitor-every",
        type=int,
        default=0,
        metavar="N",
        help="print test accuracy and the mean lesion drop every N steps",
    )
    p.set_defaults(func=_train_bundled)

    a = sub.add_parser(
        "attributions",
        help="regenerate the Explain page's precomputed attribution tables",
        description="Evaluate every attribution method (pointing game, mass inside the object, "
        "deletion and insertion curves, sanity-check curves) on fresh shapes test images "
        "for the bundled twins and write resnet_viz/assets/attributions/<name>.json.",
    )
    a.add_argument("names", nargs="*", help="which bundled models (default: all)")
    a.add_argument(
        "--twins",
        nargs="+",
        choices=["resnet", "plain"],
        default=["resnet", "plain"],
        help="which twins to (re)compute; the others stay as they are in the file",
    )
    a.add_argument("--images", type=int, default=200, help="test images to evaluate on (default 200)")
    a.add_argument("--sanity-images", type=int, default=16, help="images for the mean sanity curves (default 16)")
    a.add_argument(
        "--parts",
        nargs="+",
        choices=["evaluation", "sanity"],
        default=["evaluation", "sanity"],
        help="which parts to (re)compute (default both)",
    )
    a.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        default=None,
        help="(re)compute only these methods' rows and curves; the file's other rows stay",
    )
    a.set_defaults(func=_attributions)

    from .race import DATASETS, IMAGE_SIZES, QUICK_DATASET, QUICK_IMAGE_SIZE

    r = sub.add_parser(
        "race",
        help="train ResNets and plain twins side by side and write the race as JSON",
        description="Train ResNets and their plain twins of several depths on one data set with "
        "one recipe (defaults: the quick race) and write the curves as JSON.",
    )
    r.add_argument("--depths", type=int, nargs="+", default=[20, 56], help="6n+2 depths (default: 20 56)")
    r.add_argument("--twins", nargs="+", choices=["resnet", "plain"], default=["resnet", "plain"])
    r.add_argument(
        "--dataset",
        choices=list(DATASETS),
        default=QUICK_DATASET,
        help=f"default {QUICK_DATASET}: the bundled shapes, easy variant",
    )
    r.add_argument(
        "--folder",
        help="the image folder for --dataset folder (one sub-folder per class; default: $RESNET_VIZ_RACE_FOLDER)",
    )
    r.add_argument(
        "--image-size",
        type=int,
        choices=list(IMAGE_SIZES),
        default=QUICK_IMAGE_SIZE,
        help=f"image size in pixels (default {QUICK_IMAGE_SIZE})",
    )
    r.add_argument("--steps", type=int, help="training steps (default: the quick race)")
    r.add_argument("--epochs", type=float, help="training epochs instead of --steps")
    r.add_argument("--batch-size", type=int)
    r.add_argument("--lr", type=float)
    r.add_argument("--optimizer", choices=["sgd", "adam"])
    r.add_argument("--schedule", choices=["constant", "step", "cosine"])
    r.add_argument("--warmup-steps", type=int)
    r.add_argument("--weight-decay", type=float)
    r.add_argument("--seed", type=int, help="the first seed (default 0)")
    r.add_argument(
        "--seeds",
        type=int,
        default=3,
        help="seeds per net: --seed, --seed + 1, ... (own initial weights and batch order; default 3)",
    )
    r.add_argument(
        "--engine",
        choices=["auto", "fused", "unfused"],
        default="auto",
        help="fused: each depth's nets train as one network; auto (default): fused where measured faster",
    )
    r.add_argument("--train-size", type=int, default=4000, help="training images (default 4000)")
    r.add_argument("--test-size", type=int, default=500, help="test images (default 500)")
    r.add_argument("--eval-every", type=int, default=50, help="steps between test-error checkpoints")
    r.add_argument("--snapshot-every", type=int, default=20, help="steps between gradient/ratio snapshots")
    r.add_argument(
        "--history-every", type=int, default=1, help="keep every k-th step in the file (averaging the steps in between)"
    )
    r.add_argument("--device", help="cpu (default), cuda, ...")
    r.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto (default): on CPUs that compute bfloat16 natively (AVX-512 BF16/AMX) the faster of "
        "bfloat16 autocast and float32, measured at the start; float32 elsewhere (on CUDA with TF32 "
        "convolutions)",
    )
    r.add_argument("--fp32", action="store_true", help="train in float32 (same as --precision fp32)")
    r.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice)")
    r.add_argument("--out", required=True, help="where to write the race JSON")
    r.add_argument(
        "--save",
        metavar="DIR",
        help="also save each depth's trained twins as DIR/race-<depth>.safetensors "
        "(upload one in the app's sidebar, or load it with load_checkpoint)",
    )
    r.set_defaults(func=_race)

    cv = sub.add_parser(
        "curvature",
        help="the Hessian's extreme eigenvalues of trained twins (Li et al. 2018, §6)",
        description="Lanczos with Hessian-vector products on the training loss of the bundled twins "
        "(default: rewrite resnet_viz/assets/curvature.json) or of a checkpoint.",
    )
    cv.add_argument("names", nargs="*", help="which bundled models (default: all)")
    cv.add_argument("--checkpoint", help="twins saved by the app or by `race --save` instead of the bundled ones")
    cv.add_argument(
        "--images", type=int, default=128, help="training images in the loss (default 128, as the shipped surfaces)"
    )
    cv.add_argument("--steps", type=int, default=30, help="Lanczos steps per eigenvalue (default 30)")
    cv.add_argument("--threads", type=int, help="CPU threads for PyTorch")
    cv.add_argument("--out", help="where to write the JSON (default: the shipped file)")
    cv.set_defaults(func=_curvature)

    from .landscape.cli import add_cli_arguments

    ls = sub.add_parser(
        "landscape",
        help="the loss landscape of twins (Li et al. 2018) as JSON; under torchrun "
        "the grid is split across the processes",
    )
    add_cli_arguments(ls)
    ls.set_defaults(func=_landscape)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
