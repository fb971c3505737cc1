"""The library as a Python user installs it: a wheel that holds the library and its data, nothing of the app.

The wheel is built from this checkout, installed into a fresh virtual environment outside it, and used from
another folder: the shipped twins, the translations and the command line work there. The fresh environment
reuses this one's installed dependencies (a .pth file; the wheel goes in with --no-deps): a second copy of torch
would cost minutes and gigabytes (.ci/run says how much).
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "resnet_viz"


def shipped_data() -> set[str]:
    """Every data file of the package in the checkout, as a wheel names it."""
    files = {p for folder in ("assets", "locale") for p in (PACKAGE / folder).rglob("*") if p.is_file()}
    return {p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (path,) = out.glob("resnet_viz-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_holds_the_library_its_data_and_types_and_nothing_of_the_app(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = shipped_data()
    assert any(n.endswith(".po") for n in data) and any(n.endswith(".safetensors") for n in data)
    assert data <= names, f"missing from the wheel: {sorted(data - names)}"
    assert "resnet_viz/py.typed" in names
    modules = {p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    tops = {n.split("/")[0] for n in names}
    assert tops == {"resnet_viz", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, tops
    for app_part in ("app.py", "pages", "ui", "tests", "benchmarks", "tools", "docs"):
        assert not any(n == app_part or n.startswith(app_part + "/") for n in names), app_part
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "resnet-viz = resnet_viz.__main__:main" in entry_points


INSTALLED_CHECK = """
import resnet_viz as rv
from resnet_viz.i18n import _, set_language
from resnet_viz.teaching import STEPS, lesson_steps
import sys, importlib.util
assert rv.__file__.startswith(sys.prefix), (rv.__file__, sys.prefix)  # the installed copy, not the checkout's
assert importlib.util.find_spec("ui") is None and importlib.util.find_spec("pages") is None
resnet, plain, info = rv.load_bundled("shapes-20")
images, labels, masks = rv.make_shapes(8, seed=2)
print("twins", resnet.twin, plain.twin, tuple(resnet(images).shape))
set_language("zh")
print("zh", _("Language"))
print("steps", len(lesson_steps()) == len(STEPS))
"""


@pytest.mark.slow
def test_the_installed_wheel_works_from_any_folder(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(here)))
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def run(*command: str) -> str:
        done = subprocess.run(command, cwd=away, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    out = run(str(python), "-c", INSTALLED_CHECK)
    assert "twins resnet plain (8, 8)" in out, out
    assert "zh 语言" in out, out  # the .po files travelled with the wheel
    assert "steps True" in out
    assert "usage:" in run(str(venv / "bin" / "resnet-viz"), "--help")
    assert "usage:" in run(str(python), "-m", "resnet_viz", "--help")
