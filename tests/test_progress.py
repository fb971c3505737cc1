"""The command line's progress bar: counts on stderr, nothing when quiet, label and note shown."""

from resnet_viz.progress import ProgressBar


def test_progress_bar_draws_done_of_total_on_stderr(capsys):
    with ProgressBar("resnet surface", unit="point") as bar:
        for done in range(1, 4):
            bar(done, 3)
    printed = capsys.readouterr()
    assert printed.out == "" and "resnet surface" in printed.err and "3/3" in printed.err


def test_progress_bar_shows_a_new_label_and_note(capsys):
    with ProgressBar(unit="step") as bar:
        bar.describe("queued")
        bar(0, 4)
        bar.describe("training", "120 img/s")
        bar(4, 4)
    err = capsys.readouterr().err
    assert "queued" in err and "training" in err and "120 img/s" in err and "4/4" in err


def test_a_quiet_progress_bar_prints_nothing(capsys):
    with ProgressBar("plain path", quiet=True) as bar:
        bar(1, 2)
        bar(2, 2)
    assert capsys.readouterr() == ("", "")
