"""The shapes classes are named in the visitor's language wherever a page shows a class; code keeps the stable
English identifiers."""

import json
import re

import pytest
from conftest import APP, chart_alts, open_app_page
from streamlit.testing.v1 import AppTest

import resnet_viz as rv
from resnet_viz.i18n import _, language
from resnet_viz.models import TWINS, twin_label

ENGLISH = re.compile(r"\b(" + "|".join(rv.SHAPE_CLASSES) + r")\b")
CHINESE = ["圆形", "正方形", "三角形", "十字形", "圆环", "星形", "新月形", "条纹"]


def test_shape_class_names_follow_the_language_and_the_identifiers_stay():
    assert rv.SHAPE_CLASSES == ["circle", "square", "triangle", "cross", "ring", "star", "crescent", "bars"]
    with language("zh"):
        assert [rv.shape_class_name(i) for i in range(8)] == CHINESE
        assert [rv.class_display_name(n) for n in rv.SHAPE_CLASSES] == CHINESE
        assert rv.class_display_name("tabby cat") == "tabby cat"  # ImageNet's names have no translation: as they are
        assert rv.SHAPE_CLASSES[2] == "triangle"
    with language("en"):
        assert [rv.shape_class_name(i) for i in range(8)] == rv.SHAPE_CLASSES


def _topk_labels(at) -> list[str]:
    return [
        label
        for chart in at.get("plotly_chart")
        if chart.proto.id.endswith(("topk-resnet", "topk-plain"))
        for trace in json.loads(chart.proto.spec)["data"]
        for label in trace["y"]
    ]


def _class_texts(at) -> dict[str, list[str]]:
    """Every place the Explain page names a class: the true-class line, the class picker, the maps' titles, the
    top-5 bars and their text alternatives."""
    true_line = [c.value for c in at.caption if c.value.startswith(("True class", "真实类别"))]
    lang = "zh" if true_line and true_line[0].startswith("真实类别") else "en"
    with language(lang):
        titles = [_("{twin}: top-{k}").format(twin=twin_label(t), k=5) for t in TWINS]
    topk_alt = [alt for alt in chart_alts(at) if any(title in alt for title in titles)]
    return {
        "true": true_line,
        "picker": list(at.selectbox(key="explain-class").options),
        "maps": [c for img in at.get("image") for c in img.captions],
        "bars": _topk_labels(at),
        "alt": topk_alt,
    }


def _chinese_page(page: str):
    """The page in Chinese from the first run on (AppTest cannot re-map a widget's value across languages)."""
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["lang"] = "zh"
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def test_the_chinese_explain_page_names_every_class_in_chinese():
    at = _chinese_page("pages/explain.py")
    texts = _class_texts(at)
    assert all(texts.values()), texts  # each place is on the page
    for where, values in texts.items():
        for value in values:
            assert not ENGLISH.search(value), (where, value)
    assert any(name in texts["true"][0] for name in CHINESE)
    assert set(texts["picker"]) <= set(CHINESE) and set(texts["bars"]) <= set(CHINESE)
    # The picker shows Chinese but keeps the stable name, so the choice means the same class in any language.
    chosen = at.session_state["explain-class"]
    assert chosen in rv.SHAPE_CLASSES
    shown = CHINESE[rv.SHAPE_CLASSES.index(chosen)]
    assert at.selectbox(key="explain-class").options[0] == shown  # the top class is the default
    assert all(f"“{shown}”" in c for c in texts["maps"])  # the maps explain the class the picker names


def test_the_english_explain_page_keeps_the_english_names():
    at = open_app_page("pages/explain.py")
    texts = _class_texts(at)
    assert all(texts.values()), texts
    assert ENGLISH.search(texts["true"][0]) and texts["true"][0].startswith("True class: **")
    assert set(texts["picker"]) <= set(rv.SHAPE_CLASSES) and set(texts["bars"]) <= set(rv.SHAPE_CLASSES)
    assert all(ENGLISH.search(c) for c in texts["maps"])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_residual_vs_identity_names_the_test_shape_in_the_visitors_language(lang):
    at = open_app_page("pages/residual_vs_identity.py", {"lang": lang})
    text = " ".join(c.value for c in at.caption) + " ".join(m.value for m in at.markdown)
    found = re.search(r"(?:Test shape|测试形状) #3[:：] ?(?:a )?(\S+?)(?:[\s,.，。]|$)", text)
    assert found, text[:500]
    names = CHINESE if lang == "zh" else rv.SHAPE_CLASSES
    assert found.group(1) in names


def test_the_lesson_grad_cam_reveal_names_the_shape_in_chinese():
    from ui.lesson_reveals import reveal_gradcam

    with language("zh"):
        reveal = reveal_gradcam()
    text = " ".join(reveal.facts) + " ".join(caption for _image, caption in getattr(reveal, "images", []) or [])
    assert not ENGLISH.search(text), text
    assert any(name in text for name in CHINESE)
