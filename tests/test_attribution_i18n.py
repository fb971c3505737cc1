"""The Explain part's Chinese catalogue: complete, nothing stale, and used by the plots."""
import os
import subprocess

import numpy as np
from babel.messages.pofile import read_po

from resnet_viz.explain_plots import perturbation_figure, sanity_figure, topk_figure
from resnet_viz.i18n import language, load_catalogue

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["pages/explain.py", "resnet_viz/explain_plots.py"]


def test_catalogue_has_every_string_of_the_part_and_no_other(tmp_path):
    pot = tmp_path / "explain.pot"
    subprocess.run(["pybabel", "extract", "-F", "babel.cfg", "-o", str(pot), *SOURCES], cwd=ROOT, check=True,
                   capture_output=True)
    wanted = {m.id for m in read_po(open(pot, "rb")) if m.id}
    with open(os.path.join(ROOT, "resnet_viz", "locale", "zh", "explain.po"), "rb") as f:
        po = {m.id: m for m in read_po(f, locale="zh") if m.id}
    assert set(po) <= wanted, set(po) - wanted  # nothing stale
    # Strings the part shares with others (page names, "Upload"...) live once, in core.po: the merged catalogue
    # must translate every string of the part.
    merged = load_catalogue("zh")
    untranslated = [i for i in wanted if i not in merged or not merged[i].string]
    assert not untranslated
    for msgid, m in po.items():  # placeholders survive translation
        for name in ("{method}", "{twin}", "{label}", "{layer}", "{n}", "{done}", "{total}"):
            assert (name in msgid) == (name in m.string), (msgid, name)


def test_plots_speak_chinese():
    rows = [{"method": "Grad-CAM", "deletion_curve": [1, 0.5, 0], "insertion_curve": [0, 0.5, 1]},
            {"method": "Random", "deletion_curve": [1, 0.7, 0], "insertion_curve": [0, 0.3, 1]}]
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
