"""Grad-CAM speed: resnet_viz.explain against a bare forward pass and the peers.

Usage: ``python benchmarks/bench_explain.py [--repeats N] [--device cpu|cuda]``
(peers: ``pip install -r benchmarks/requirements.txt``). Every number is a
median over interleaved repeats in this one run; ratios are what to compare.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import print_table, time_interleaved  # noqa: E402

from resnet_viz import build_twins  # noqa: E402
from resnet_viz.explain import grad_cam  # noqa: E402

warnings.filterwarnings("ignore")


def peers(model, x, size):
    """Peer implementations, each producing the same top-1 / top-5 heatmaps at full size."""
    cases = {}
    try:
        from captum.attr import LayerAttribution, LayerGradCam

        lgc = LayerGradCam(model, model.layer4)

        def captum(k):
            with torch.no_grad():
                ids = model(x)[0].topk(k).indices.tolist()
            return [
                LayerAttribution.interpolate(
                    lgc.attribute(x, target=c, relu_attributions=True), size, interpolate_mode="bilinear"
                )
                for c in ids
            ]

        cases["captum LayerGradCam top-1"] = lambda: captum(1)
        cases["captum LayerGradCam top-5"] = lambda: captum(5)
    except ImportError:
        print("captum not installed: skipped")
    try:
        from pytorch_grad_cam import GradCAM as PGCGradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        pgc = PGCGradCAM(model=model, target_layers=[model.layer4[-1]])

        def pytorch_grad_cam(k):
            with torch.no_grad():
                ids = model(x)[0].topk(k).indices.tolist()
            return [pgc(input_tensor=x, targets=[ClassifierOutputTarget(c)]) for c in ids]

        cases["pytorch-grad-cam GradCAM top-1"] = lambda: pytorch_grad_cam(1)
        cases["pytorch-grad-cam GradCAM top-5"] = lambda: pytorch_grad_cam(5)
    except ImportError:
        print("pytorch-grad-cam not installed: skipped")
    try:
        from torchcam.methods import GradCAM as TCGradCAM

        def torchcam(k):
            with TCGradCAM(model, target_layer="layer4") as extractor:
                out = model(x)
                ids = out[0].topk(k).indices.tolist()
                maps = [extractor(c, out, retain_graph=i < k - 1)[0] for i, c in enumerate(ids)]
                return [F.interpolate(m.unsqueeze(0), size=size, mode="bilinear") for m in maps]

        cases["torchcam GradCAM top-1"] = lambda: torchcam(1)
        cases["torchcam GradCAM top-5"] = lambda: torchcam(5)
    except ImportError:
        print("torchcam not installed: skipped")
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--archs", nargs="+", default=["resnet18", "resnet50"])
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    for arch in args.archs:
        model, _ = build_twins(arch, seed=0)
        model.to(device).eval()
        x = torch.randn(1, 3, 224, 224, device=device)
        size = (224, 224)

        def forward():
            with torch.no_grad():
                return model(x)

        cases = {
            "bare forward (no_grad)": forward,
            "resnet_viz explain top-1": lambda: grad_cam(model, x, topk=1),
            "resnet_viz explain top-5": lambda: grad_cam(model, x, topk=5),
            **peers(model, x, size),
        }
        medians = time_interleaved(cases, repeats=args.repeats, device=device)
        print_table(f"{arch} at 224x224 on {device}", medians, "bare forward (no_grad)")
        ours1, ours5 = medians["resnet_viz explain top-1"], medians["resnet_viz explain top-5"]
        for k, ours in ((1, ours1), (5, ours5)):
            for peer in ("captum LayerGradCam", "pytorch-grad-cam GradCAM", "torchcam GradCAM"):
                name = f"{peer} top-{k}"
                if name in medians:
                    print(f"{arch}: explain top-{k} is {medians[name] / ours:.2f}x faster than {peer}")


if __name__ == "__main__":
    main()
