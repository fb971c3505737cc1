"""The CAM family's speed: rv.cams (one pass for every method, twin and class) against pytorch-grad-cam (one
hooked pass per method) and against a bare forward pass.

Usage: ``python benchmarks/bench_cams.py [--repeats N] [--device cpu|cuda] [--archs resnet18 ...]``
(peer: ``pip install grad-cam``). Every number is a median over interleaved repeats in this one run.

* the 7 gradient-based CAMs, both twins, top-5 classes: ours from one pass per twin; pytorch-grad-cam one call per
  method and twin, given its best use (the image repeated 5 times with the 5 targets: one batched backward);
* the whole one-pass family (those 7 and Eigen-CAM), both twins, against one no-grad forward of both twins;
* Score-CAM and Ablation-CAM, top-1, both twins, every channel, the same batch size, against pytorch-grad-cam's
  batched ScoreCAM and AblationCAM.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import print_table, time_interleaved  # noqa: E402

import resnet_viz as rv  # noqa: E402
from resnet_viz.attribution import cam_methods  # noqa: E402

warnings.filterwarnings("ignore")

GRADIENT = ["Grad-CAM", "HiResCAM", "Grad-CAM element-wise", "Grad-CAM++", "XGrad-CAM", "LayerCAM", "EigenGrad-CAM"]


def peer_classes():
    import pytorch_grad_cam as pgc

    return {
        "Grad-CAM": pgc.GradCAM,
        "HiResCAM": pgc.HiResCAM,
        "Grad-CAM element-wise": pgc.GradCAMElementWise,
        "Grad-CAM++": pgc.GradCAMPlusPlus,
        "XGrad-CAM": pgc.XGradCAM,
        "LayerCAM": pgc.LayerCAM,
        "EigenGrad-CAM": pgc.EigenGradCAM,
        "Score-CAM": pgc.ScoreCAM,
        "Ablation-CAM": pgc.AblationCAM,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--perturbation-repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--archs", nargs="+", default=["resnet18"])
    parser.add_argument("--size", type=int, default=224, help="input side for the one-pass CAMs")
    parser.add_argument("--perturbation-size", type=int, default=112, help="input side for Score-/Ablation-CAM")
    parser.add_argument("--batch-size", type=int, default=32, help="Score-/Ablation-CAM batch, ours and theirs")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    peers = peer_classes()
    family = list(cam_methods(perturbation=False))
    for arch in args.archs:
        twins = [m.to(device).eval() for m in rv.build_twins(arch, seed=0)]
        x = torch.randn(1, 3, args.size, args.size, device=device, generator=None)
        with torch.no_grad():
            top5 = [m(x)[0].topk(5).indices.tolist() for m in twins]
        hooked: dict = {}  # the peer's hooked CAM objects, made just before its run

        def forward():
            with torch.no_grad():
                return [m(x) for m in twins]

        def ours(methods, k):
            return lambda: [rv.cams(m, x, methods=methods, topk=k) for m in twins]

        def theirs():
            out = []
            for name in GRADIENT:
                for cam, ids in zip(hooked[name], top5):
                    out.append(
                        cam(input_tensor=x.expand(5, -1, -1, -1), targets=[ClassifierOutputTarget(c) for c in ids])
                    )
            return out

        # Two interleaved runs, each with the bare forward as its baseline: the peer's hooks stay off the models
        # while ours run, and its large allocations do not land on the case timed after it.
        base = "bare forward, both twins (no_grad)"
        ours_cases = {
            base: forward,
            "ours: 7 gradient CAMs, both twins, top-5": ours(GRADIENT, 5),
            "ours: whole one-pass family (8), both twins, top-1": ours(family, 1),
            "ours: whole one-pass family (8), both twins, top-5": ours(family, 5),
        }
        mine = time_interleaved(ours_cases, repeats=args.repeats, warmup=args.warmup, device=device)
        print_table(f"{arch} at {args.size}x{args.size} on {device}: ours", mine, base)
        hooked.update({name: [peers[name](model=m, target_layers=[m.layer4]) for m in twins] for name in GRADIENT})
        peer = time_interleaved(
            {base: forward, "pytorch-grad-cam: 7 gradient CAMs one at a time, both twins, top-5": theirs},
            repeats=args.repeats,
            warmup=args.warmup,
            device=device,
        )
        print_table(f"{arch} at {args.size}x{args.size} on {device}: pytorch-grad-cam", peer, base)
        for cam_list in hooked.values():
            for cam in cam_list:
                cam.activations_and_grads.release()
        ours_x = mine["ours: 7 gradient CAMs, both twins, top-5"] / mine[base]
        theirs_x = peer["pytorch-grad-cam: 7 gradient CAMs one at a time, both twins, top-5"] / peer[base]
        print(
            f"{arch}: 7 gradient CAMs x 2 twins x top-5: ours is {theirs_x / ours_x:.2f}x faster than "
            "pytorch-grad-cam, each against the bare forward of its own run (goal >= 5x)"
        )
        for k in (1, 5):
            print(
                f"{arch}: whole one-pass family, both twins, top-{k}: "
                f"{mine[f'ours: whole one-pass family (8), both twins, top-{k}'] / mine[base]:.2f}x one forward of "
                "both twins (goal <= 1.5x)"
            )

        s = args.perturbation_size
        xs = torch.randn(1, 3, s, s, device=device)
        with torch.no_grad():
            top1 = [int(m(xs)[0].argmax()) for m in twins]
        pert = {}
        for name in ("Score-CAM", "Ablation-CAM"):
            cams = [peers[name](model=m, target_layers=[m.layer4]) for m in twins]
            for cam in cams:
                cam.batch_size = args.batch_size

            def peer_run(cams=cams):
                return [cam(input_tensor=xs, targets=[ClassifierOutputTarget(c)]) for cam, c in zip(cams, top1)]

            pert[f"ours: {name}, both twins, top-1"] = lambda name=name: [
                rv.cams(m, xs, methods=[name], class_ids=[c], batch_size=args.batch_size) for m, c in zip(twins, top1)
            ]
            pert[f"pytorch-grad-cam: {name} (batched), both twins, top-1"] = peer_run
        import contextlib
        import io

        with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
            medians = time_interleaved(pert, repeats=args.perturbation_repeats, warmup=1, device=device)
        print_table(
            f"{arch} at {s}x{s} on {device}, layer4, every channel, batches of {args.batch_size}",
            medians,
            "ours: Score-CAM, both twins, top-1",
        )
        for name in ("Score-CAM", "Ablation-CAM"):
            peer = medians[f"pytorch-grad-cam: {name} (batched), both twins, top-1"]
            ratio = peer / medians[f"ours: {name}, both twins, top-1"]
            print(f"{arch}: {name}: ours is {ratio:.2f}x faster than pytorch-grad-cam's batched version (goal >= 1x)")


if __name__ == "__main__":
    main()
