"""Translations: every message has Chinese, no catalogue is stale or contradicts another, numbers never change."""

import os
import re
from collections import defaultdict

import numpy as np
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from streamlit.testing.v1 import AppTest

import resnet_viz as rv
from resnet_viz import i18n
from resnet_viz.i18n import N_, Labels, _, browser_language, language

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "app.py")
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\{[^{}]*\}")


@pytest.fixture(scope="module")
def source_messages() -> dict[str, list[str]]:
    """msgid -> where it is used, extracted from the whole tree as ``pybabel extract -F babel.cfg`` does."""
    with open(os.path.join(ROOT, "babel.cfg")) as f:
        method_map, options_map = parse_mapping_cfg(f)
    found = defaultdict(list)
    for filename, lineno, message, _comments, _context in extract_from_dir(ROOT, method_map, options_map):
        for msgid in message if isinstance(message, tuple) else (message,):
            if msgid:
                found[msgid].append(f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def catalogues() -> dict[str, dict[str, str]]:
    """file name -> {msgid: Chinese} for every .po file of zh."""
    out = {}
    for path in i18n.catalogue_files("zh"):
        with open(path, "rb") as f:
            out[path.name] = {m.id: m.string for m in read_po(f, locale="zh") if m.id}
    return out


def test_extraction_finds_the_pages_strings(source_messages):
    # Guards the guard: if extraction silently found nothing, every other check here would pass.
    assert "Reveal the answer" in source_messages and "Gradient norm per layer" in source_messages
    assert len(source_messages) > 200


def test_every_message_has_a_chinese_translation(source_messages, catalogues):
    union = {msgid: text for cat in catalogues.values() for msgid, text in cat.items() if text.strip()}
    missing = {msgid: where[:2] for msgid, where in source_messages.items() if msgid not in union}
    assert not missing, f"{len(missing)} messages lack a Chinese translation: {list(missing.items())[:10]}"


def test_no_catalogue_is_stale(source_messages, catalogues):
    stale = {name: [m for m in cat if m not in source_messages] for name, cat in catalogues.items()}
    assert not any(stale.values()), f"msgids no longer in the source: { {k: v[:5] for k, v in stale.items() if v} }"


def test_catalogues_agree_where_they_overlap(catalogues):
    seen: dict[str, tuple[str, str]] = {}
    conflicts = []
    for name, cat in catalogues.items():
        for msgid, text in cat.items():
            if msgid in seen and seen[msgid][1] != text:
                conflicts.append((msgid, seen[msgid][0], name))
            seen.setdefault(msgid, (name, text))
    assert not conflicts, conflicts[:10]


def test_translations_keep_every_placeholder(catalogues):
    """A dropped or renamed {value} would raise KeyError in .format() or lose a number on screen."""
    bad = [
        (name, msgid)
        for name, cat in catalogues.items()
        for msgid, text in cat.items()
        if text and sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(text))
    ]
    assert not bad, bad[:10]


def test_translations_are_chinese(catalogues):
    """A msgstr that is just the English copied over is not a translation (names such as "ResNet-18" aside)."""

    def words(msgid):
        return re.findall(r"[A-Za-z]{2,}", PLACEHOLDER.sub("", msgid))

    untranslated = [
        msgid
        for cat in catalogues.values()
        for msgid, text in cat.items()
        if len(words(msgid)) >= 4 and not re.search(r"[\u4e00-\u9fff]", text)
    ]
    assert not untranslated, untranslated[:10]


def test_language_context_and_labels():
    labels = Labels({"plain": N_("Plain twin")})
    assert labels["plain"] == _("Plain twin") == "Plain twin"
    with language("zh"):
        assert labels["plain"] == labels.get("plain") == "普通孪生网络"
        assert _("Reveal the answer") == "揭晓答案"
    assert i18n.get_language() == "en"
    assert [browser_language(x) for x in ("zh-CN", "zh_TW", "en-GB", None, "de-DE", "")] == [
        "zh",
        "zh",
        "en",
        "en",
        "en",
        "en",
    ]


def _figure_numbers(fig) -> list:
    """Every number a figure draws: x, y, z and customdata of all traces."""
    out = []
    for trace in fig.data:
        for key in ("x", "y", "z", "customdata"):
            value = getattr(trace, key, None)
            if value is not None:
                out.append(np.asarray(value, dtype=object).tolist())
    return out


def test_switching_language_changes_no_number():
    from resnet_viz import gradients as grad
    from resnet_viz.gradients_plots import gradient_norm_figure
    from resnet_viz.lesion import lesion_accuracies, path_length_distribution
    from resnet_viz.residual_plots import lesion_figure, path_length_figure
    from resnet_viz.teaching import handout_html, lesson_steps

    resnet, plain = rv.build_twins("cifar", depth=8, seed=0, num_classes=grad.NUM_CLASSES)
    x, y = grad.example_batch("shapes", batch_size=8, seed=0)
    images, labels, _masks = rv.make_shapes(32, seed=1)
    figures = {}
    for lang in ("en", "zh"):
        with language(lang):
            flows = {m.twin: rv.gradient_flow(m, x, y) for m in (resnet, plain)}
            lesions = {m.twin: lesion_accuracies(m, images, labels) for m in (resnet, plain)}
            names = [n for n, _b in resnet.blocks()]
            figures[lang] = [
                gradient_norm_figure(flows),
                lesion_figure(lesions, names),
                path_length_figure(path_length_distribution(9)),
            ]
            figures[lang + "-title"] = figures[lang][0].layout.title.text
            figures[lang + "-handout"] = handout_html(lesson_steps(), {}, lang=lang)
    for en, zh in zip(figures["en"], figures["zh"]):
        assert _figure_numbers(en) == _figure_numbers(zh)
    assert figures["en-title"] == "Gradient norm per layer" and figures["zh-title"] == "每一层的梯度范数"
    assert "揭晓" not in figures["en-handout"] and "问题" in figures["zh-handout"]


def test_lang_in_the_url_shows_chinese_and_persists_across_pages():
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["lang"] = "zh"
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "ResNet 孪生网络"
    assert at.sidebar.radio(key="lang").value == "zh"
    at.switch_page("pages/lesson.py")
    at.query_params.pop("lang", None)  # page navigation drops the query string; the session keeps the language
    at.run()
    assert at.title[0].value == "课程：残差网络为什么有效"
    assert at.query_params["lang"] == "zh"
    at.sidebar.radio(key="lang").set_value("en").run()
    assert at.title[0].value == "Lesson: why residual networks work"
    assert at.query_params["lang"] == "en"
