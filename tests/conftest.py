import contextlib
import os
import shutil

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))
# The race remembers its measured engine choice in a cache folder: the tests' own, never the user's.
if "RESNET_VIZ_CACHE" not in os.environ:
    import atexit
    import tempfile

    os.environ["RESNET_VIZ_CACHE"] = tempfile.mkdtemp(prefix="resnet-viz-tests-")
    atexit.register(shutil.rmtree, os.environ["RESNET_VIZ_CACHE"], True)
# Visitors' races have a budget on a server (resnet_viz/race/estimate.py); the tests' long races (stopped early)
# would exceed it. Tests of the budget set it themselves.
os.environ.setdefault("RESNET_VIZ_RACE_BUDGET", "0")


@pytest.fixture(scope="module")
def one_thread():
    """Small convolutions run several times faster on one thread when the cores are shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class EvilPickle:
    """Unpickling this would create the file named by $EVIL_MARKER: proof that code ran."""

    def __reduce__(self):
        return (os.system, (f"touch {os.environ['EVIL_MARKER']}",))


def pytest_collection_modifyitems(config, items):
    no_cuda = pytest.mark.skip(reason="needs CUDA")
    no_browser = pytest.mark.skip(reason="needs Chromium at /usr/bin/chromium (apt-get install -y chromium)")
    have_browser = shutil.which("chromium") or os.path.exists("/usr/bin/chromium")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(no_cuda)
        if "browser" in item.keywords and not have_browser:
            item.add_marker(no_browser)


CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-sandbox",
    "--disable-dev-shm-usage",
]
# True while the browser still draws: a skeleton, a spinner, or a chart without its SVG yet.
DRAWING = """() => !!document.querySelector('[data-testid=stSkeleton], [data-testid=stSpinner]')
    || [...document.querySelectorAll('.js-plotly-plot')].some(p => !p.querySelector('.main-svg'))"""
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "test-artifacts")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app():
    """``streamlit run app.py`` on a free local port, for as long as the block lasts; yields its URL."""
    import subprocess
    import sys
    import time
    import urllib.request

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    port = _free_port()
    log = open(os.path.join(root, "streamlit-test.log"), "a")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],  # the tests change no source; a watcher over .venv overflows inotify
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("streamlit exited; see streamlit-test.log")
                time.sleep(0.5)
        else:
            raise RuntimeError("streamlit did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="session")
def app_url():
    """One app server shared by the browser tests of a session."""
    with running_app() as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A fresh browser page; on failure its screenshot lands in test-artifacts/."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def wait_for_idle(page) -> None:
    """Wait until the app's script run has finished: a click during a rerun may hit an element the run replaces."""
    page.wait_for_function(
        "document.querySelector('[data-testid=stApp]')?.getAttribute('data-test-script-state') === 'notRunning'"
    )


def screenshot(page, name: str) -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, f"{name}.png")
    page.screenshot(path=path, full_page=True)
    return path


APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def open_app_page(page: str, query_params: dict | None = None, *, timeout: float = 180):
    """Run app.py in AppTest, switch to ``page`` with ``query_params`` and check that nothing raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    at.switch_page(page)
    if query_params:
        at.query_params = dict(query_params)
    at.run()
    assert not at.exception, at.exception
    return at


def app_pages() -> list[str]:
    """Every page app.py registers (``st.Page("pages/x.py", ...)``), as its URL path ("" for the default page)."""
    import ast

    paths = []
    for node in ast.walk(ast.parse(open(APP, encoding="utf-8").read())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Page":
            default = any(k.arg == "default" and getattr(k.value, "value", False) is True for k in node.keywords)
            paths.append("" if default else os.path.splitext(os.path.basename(node.args[0].value))[0])
    return paths


def chart_titles(at) -> list[str]:
    """The titles of the Plotly charts an AppTest run drew, in page order ("" for a chart without one)."""
    import json

    titles = []
    for chart in at.get("plotly_chart"):
        title = json.loads(chart.proto.spec).get("layout", {}).get("title", {})
        titles.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return titles


def chart_alts(at) -> list[str]:
    """The text alternatives of the Plotly charts an AppTest run drew (their accessible names), in page order."""
    return [chart.proto.alt for chart in at.get("plotly_chart")]


def warnings(at) -> list[str]:
    """The texts of the warnings an AppTest run shows, in page order."""
    return [w.value for w in at.warning]


def chart_keys(at) -> list[str]:
    """The keys of the Plotly charts an AppTest run drew, in page order (None for a chart without a key)."""
    keys = [chart.proto.id.split("-", 2)[-1] for chart in at.get("plotly_chart")]  # "$$ID-<hash>-<key>"
    return [None if key == "None" else key for key in keys]


@pytest.fixture
def race_registry(tmp_path):
    """A registry of the server's races of the test's own, on its own store: nothing another test trained serves it."""
    from resnet_viz import race as rr
    from resnet_viz.race.estimate import StepTimes
    from resnet_viz.race.registry import RaceRegistry, set_default_registry
    from resnet_viz.race.store import FinishedRaces

    registry = RaceRegistry(FinishedRaces(tmp_path / "races"), rr.RaceScheduler(1), StepTimes(str(tmp_path)))
    set_default_registry(registry)
    yield registry
    races = [registry._live[rid].race for rid in registry.live_ids()]
    for race in races:
        race.stop()
    for race in races:
        race.join(30)
    set_default_registry(None)
