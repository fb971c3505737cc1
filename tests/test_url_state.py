"""ui.url_state's checking of a URL against a page's table of properties, without a running app."""

from resnet_viz.i18n import N_, Labels, language
from ui.url_state import Choice, ChoiceList, IntRange, Preset, UrlState, parse_view

COLOURS = Labels({"red": N_("none"), "blue": "blue", "green": "green"})
TABLE = [
    Preset("preset", ["custom", "warm"], "custom", presets={"warm": {"colour": "red", "size": 8}}),
    Choice("colour", COLOURS, "blue"),
    Choice("size", (8, 14, 20), 20),
    IntRange("seed", 0, 2**31 - 1, 0),
    ChoiceList("tools", ["Saw", "Drill", "Plane"], ["Saw"]),
]


def texts(problems) -> list[str]:
    return [p.text() for p in problems]


def test_a_valid_url_gives_its_view_and_absent_keys_their_defaults():
    view, problems, waiting = parse_view(TABLE, {"colour": "green", "size": "14", "seed": "7", "tools": "Drill,Saw"})
    assert view == {"preset": "custom", "colour": "green", "size": 14, "seed": 7, "tools": ["Drill", "Saw"]}
    assert problems == [] and waiting == {}
    assert parse_view(TABLE, {})[0] == {"preset": "custom", "colour": "blue", "size": 20, "seed": 0, "tools": ["Saw"]}


def test_bad_values_fall_back_with_a_note_that_names_the_value_used():
    params = {"colour": "swish", "size": "57", "seed": "-1", "tools": "Magic,Drill"}
    view, problems, _waiting = parse_view(TABLE, params)
    assert view == {"preset": "custom", "colour": "blue", "size": 20, "seed": 0, "tools": ["Drill"]}
    assert texts(problems) == [
        "`colour=swish` is not valid (choose from red, blue, green); using `blue`.",
        "`size=57` is not valid (choose from 8, 14, 20); using `20`.",
        "`seed=-1` is not valid (a whole number from 0 to 2147483647); using `0`.",
        "`tools=Magic,Drill` is not valid (choose from Saw, Drill, Plane); using `Drill`.",
    ]
    with language("zh"):
        assert texts(problems)[0] == "`colour=swish` 无效（可选：red, blue, green）；改用 `blue`。"
        assert texts(problems)[2] == "`seed=-1` 无效（应为 0 到 2147483647 之间的整数）；改用 `0`。"


def test_odd_numbers_and_long_values_do_not_break_the_note():
    view, problems, _waiting = parse_view(TABLE, {"seed": "²", "size": "2" * 500, "tools": ","})
    assert view["seed"] == 0 and view["size"] == 20 and view["tools"] == ["Saw"]
    assert len(problems) == 3 and len(problems[1].text()) < 120
    assert parse_view(TABLE, {"size": "08"})[0]["size"] == 8  # digits, as int() reads them


def test_a_list_without_keep_valid_falls_back_whole_and_may_be_empty():
    depths = ChoiceList("depths", [8, 20, 56], [20, 56], keep_valid=False, allow_empty=True)
    view, problems, _waiting = parse_view([depths], {"depths": "8,99"})
    assert view["depths"] == [20, 56]
    assert texts(problems) == ["`depths=8,99` is not valid (choose from 8, 20, 56); using `20, 56`."]
    assert parse_view([depths], {"depths": "56,8,56"})[0]["depths"] == [56, 8]
    assert parse_view([depths], {"depths": ""}) == ({"depths": []}, [], {})
    assert parse_view([depths], {}, kept={"depths": []})[0]["depths"] == []
    methods = ChoiceList("methods", ["A", "B"], ["A"])
    assert parse_view([methods], {}, kept={"methods": []})[0]["methods"] == ["A"]  # a view shows a method


def test_a_preset_fills_its_settings_explicit_ones_win_and_then_it_is_custom():
    assert parse_view(TABLE, {"preset": "warm"})[0] == {
        "preset": "warm",
        "colour": "red",
        "size": 8,
        "seed": 0,
        "tools": ["Saw"],
    }
    view, problems, _waiting = parse_view(TABLE, {"preset": "warm", "size": "14"})
    assert view["preset"] == "custom" and view["colour"] == "red" and view["size"] == 14
    view, problems, _waiting = parse_view(TABLE, {"preset": "warm", "size": "999"})
    assert view["preset"] == "warm" and view["size"] == 8
    assert texts(problems) == ["`size=999` is not valid (choose from 8, 14, 20); using `8`."]
    view, _problems, _waiting = parse_view(TABLE, {"size": "14"}, kept={"preset": "warm", "colour": "red"})
    assert view["preset"] == "warm"  # only a preset the URL gives fills settings


def test_options_may_depend_on_a_property_above_and_wait_until_they_are_known():
    stages = {"small": ["layer1", "layer2"], "big": ["layer1", "layer2", "layer3"], "remote": None}
    table = [
        Choice("model", list(stages), "small", private=frozenset({"remote"})),
        Choice("stage", lambda view: stages[view["model"]], lambda options: options[-1]),
    ]
    assert parse_view(table, {"model": "big", "stage": "layer3"})[0] == {"model": "big", "stage": "layer3"}
    view, problems, _waiting = parse_view(table, {"model": "small", "stage": "layer3"})
    assert view == {"model": "small", "stage": "layer2"}
    assert texts(problems) == ["`stage=layer3` is not valid (choose from layer1, layer2); using `layer2`."]
    view, problems, _waiting = parse_view(table, {"model": "remote"})
    assert view["model"] == "small" and "choose from small, big)" in problems[0].text()  # private: not from a URL
    view, problems, waiting = parse_view(table, {"stage": "layer3"}, kept={"model": "remote", "stage": "layer1"})
    assert view == {"model": "remote", "stage": "layer1"} and not problems and waiting == {"stage": "layer3"}
    view, problems, waiting = parse_view(table, waiting, kept={"model": "big", "stage": "layer1"})
    assert view == {"model": "big", "stage": "layer3"} and not problems and not waiting


def test_kept_values_stay_while_allowed_and_private_ones_never_reach_the_url():
    table = [Choice("model", ["a", "b", "upload"], "a", private=frozenset({"upload"})), IntRange("n", 1, 5, 1)]
    assert parse_view(table, {}, kept={"model": "upload", "n": 3})[0] == {"model": "upload", "n": 3}
    assert parse_view(table, {}, kept={"model": "gone", "n": 9})[0] == {"model": "a", "n": 1}
    assert table[0].to_url("upload") is None and table[0].to_url("b") == "b"


def test_an_alias_opens_its_option_and_the_url_then_names_the_option():
    steps = Choice("step", ["intro", "race"], aliases={"1": "intro", "2": "race", "3": "gone"})
    assert parse_view([steps], {"step": "2"})[0] == {"step": "race"}
    assert parse_view([steps], {"step": "race"})[0] == {"step": "race"}
    view, problems, _waiting = parse_view([steps], {"step": "3"})  # an alias of an option that is not there
    assert view == {"step": "intro"} and [p.raw for p in problems] == ["3"]
    assert steps.to_url("race") == "race"


def test_widget_keys_default_to_the_page_and_the_name():
    url = UrlState("gf", [Choice("arch", ["cifar"], "cifar"), Choice("model", ["x"], key="explain-model")])
    assert url.key("arch") == "gf_arch" and url.key("model") == "explain-model"


def _stepper_page():
    """A page of one number in the URL, kept in the session (as the Lesson keeps its step), with a Next button."""
    import streamlit as st

    from ui.url_state import IntRange, UrlState

    url = UrlState("demo", [IntRange("step", 1, 5, 1, key="demo_step")])
    url.read()

    def forward() -> None:
        st.session_state["demo_step"] = min(5, st.session_state["demo_step"] + 1)

    st.button("Next", on_click=forward)
    st.markdown(f"Step {st.session_state['demo_step']}")
    url.write()


def test_a_page_reads_its_url_once_then_its_session_wins_and_only_its_keys_are_written():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_stepper_page)
    at.query_params.update(step="3", lang="zh")
    at.run()
    assert at.markdown[0].value == "Step 3" and at.query_params["step"] == "3" and at.query_params["lang"] == "zh"
    at.button[0].click().run()
    assert at.markdown[0].value == "Step 4" and at.query_params["step"] == "4"  # the old link does not win
    at.query_params["step"] = "9"  # a new link in the same session
    at.run()
    assert at.markdown[0].value == "Step 1" and at.query_params["step"] == "1"
    assert [w.value for w in at.warning] == [
        "Ignored a setting in the URL: `step=9` is not valid (a whole number from 1 to 5); using `1`."
    ]
    at.run()
    assert not at.warning and at.query_params["lang"] == "zh"
