"""The Explain part speaks Chinese (catalogue completeness for every part: tests/test_i18n.py)."""

import numpy as np

from resnet_viz import attribution as A
from resnet_viz.explain_plots import perturbation_figure, sanity_figure, topk_figure
from resnet_viz.i18n import _, language


def test_plots_speak_chinese():
    rows = [
        {"method": "Grad-CAM", "deletion_curve": [1, 0.5, 0], "insertion_curve": [0, 0.5, 1]},
        {"method": "Random", "deletion_curve": [1, 0.7, 0], "insertion_curve": [0, 0.3, 1]},
    ]
    curves = {"Grad-CAM": {"layers": ["original", "head", "stem"], "spearman": [1, 0.2, 0], "ssim": [1, 0.3, 0.1]}}
    with language("zh"):
        fig = perturbation_figure({"resnet": rows, "plain": rows})
        assert "删除" in fig.layout.annotations[0].text and "随机" in fig.data[2].name
        assert "普通孪生网络" in fig.data[-1].name
        fig = sanity_figure({"resnet": curves})
        assert fig.data[0].x[0] == "原始" and "相似度" in fig.layout.yaxis.title.text

        class Exp:
            indices, probs, labels = np.array([1, 0]), np.array([0.7, 0.3]), ["a", "b"]

        assert "前 2 名" in topk_figure(Exp(), "resnet").layout.title.text
    fig = perturbation_figure({"resnet": rows})
    assert fig.layout.annotations[0].text.startswith("Deletion")


def test_method_help_and_sanity_verdicts_speak_chinese():
    with language("zh"):
        lines = A.methods_help().split("\n\n")
        assert len(lines) == len(A.METHODS) + 1 and all("：" in line for line in lines[:-1])
        assert lines[1] == "Saliency：每个像素处梯度的大小。"
        assert _(A.sanity_verdict([1, 0.9, 0.9]).reason).startswith("**未通过**")
        assert _(A.sanity_verdict([1, 0.1, 0.1]).reason).startswith("**通过**")
    assert A.methods_help().split("\n\n")[1] == "Saliency: the gradient's size at each pixel."
