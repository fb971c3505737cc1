"""Check docs/nginx-resnet-twins.conf: two app replicas behind nginx with cookie-sticky sessions.

Starts two ``streamlit run app.py`` replicas and nginx (Debian's ``/usr/sbin/nginx``, as an ordinary process with
its files in a temporary folder) in front of them, using the example configuration with only its ports and log
path changed. Then N headless Chromium sessions open the lesson through nginx, reveal a chart step and the
Grad-CAM step (its pictures are media files kept in one replica's memory), and the nginx log is checked: every
request of a session went to one replica, and both replicas served sessions.
Usage: ``python benchmarks/check_replicas.py [--users 6]``.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)
from conftest import CHROMIUM_ARGS as ARGS  # noqa: E402

from resnet_viz.teaching import lesson_steps  # noqa: E402
from ui.routing import app_has_page  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen, what: str) -> None:
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited")
            time.sleep(0.5)
    raise RuntimeError(f"{what} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=6)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    keys = [s.key for s in lesson_steps(app_has_page)]
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        ports = [_port(), _port()]
        front = _port()
        env = dict(os.environ, STREAMLIT_SERVER_COOKIE_SECRET=secrets.token_hex(16))
        for port in ports:
            log = open(os.path.join(tmp, f"replica-{port}.log"), "w")
            procs.append(
                subprocess.Popen(
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
                    ],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        site = open(os.path.join(ROOT, "docs", "nginx-resnet-twins.conf")).read()
        site = (
            site.replace("listen 80;", f"listen 127.0.0.1:{front};")
            .replace("127.0.0.1:8501", f"127.0.0.1:{ports[0]}")
            .replace("127.0.0.1:8502", f"127.0.0.1:{ports[1]}")
            .replace("/var/log/nginx/resnet-twins.log", os.path.join(tmp, "access.log"))
        )
        with open(os.path.join(tmp, "site.conf"), "w") as f:
            f.write(site)
        temp_paths = " ".join(f"{k}_temp_path {tmp}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(
                f"daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;\n"
                f"events {{ worker_connections 1024; }}\n"
                f"http {{ include /etc/nginx/mime.types; {temp_paths} include {tmp}/site.conf; }}\n"
            )
        nginx = subprocess.Popen(
            ["/usr/sbin/nginx", "-p", tmp, "-c", os.path.join(tmp, "nginx.conf")],
            stderr=subprocess.STDOUT,
            stdout=open(os.path.join(tmp, "nginx.out"), "w"),
        )
        procs.append(nginx)
        try:
            for port, proc in zip(ports, procs):
                _wait(f"http://127.0.0.1:{port}/_stcore/health", proc, "streamlit")
            url = f"http://127.0.0.1:{front}"
            _wait(url + "/_stcore/health", nginx, "nginx")
            shown = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
                for i in range(args.users):
                    context = browser.new_context(viewport={"width": 1280, "height": 900})
                    page = context.new_page()
                    page.set_default_timeout(180_000)
                    page.goto(url + f"/lesson?step={keys.index('vanishing') + 1}&lang={'zh' if i % 2 else 'en'}")
                    page.locator("[data-testid=stMain] button[kind=primary]").first.click()  # Reveal
                    page.locator("[data-testid=stMain] .js-plotly-plot").first.wait_for()
                    page.goto(url + f"/lesson?step={keys.index('gradcam') + 1}")
                    page.locator("[data-testid=stMain] button[kind=primary]").first.click()
                    page.wait_for_function(
                        "[...document.querySelectorAll('[data-testid=stImage] img')]"
                        ".filter(i => i.complete && i.naturalWidth > 0).length >= 2"
                    )
                    errors = page.locator("[data-testid=stException], [data-testid=stAlertContentError]").count()
                    shown.append(errors == 0)
                    context.close()
                browser.close()
            by_key = defaultdict(set)
            for line in open(os.path.join(tmp, "access.log")):
                m = re.search(r"key=(\S+) upstream=(\S+)", line)
                if m and m.group(2) != "-":
                    by_key[m.group(1)].add(m.group(2))
            used = set().union(*by_key.values()) if by_key else set()
            split = [k for k, ups in by_key.items() if len(ups) > 1]
            print(
                f"{sum(shown)} of {args.users} sessions revealed a chart and both Grad-CAM pictures through nginx "
                "without an error"
            )
            print(
                f"{len(by_key)} replica keys in the log; keys whose requests reached more than one replica: "
                f"{len(split)}; replicas used: {len(used)} of 2 ({', '.join(sorted(used))})"
            )
            ok = all(shown) and not split and len(used) == 2
            print("OK" if ok else "FAILED")
            sys.exit(0 if ok else 1)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


if __name__ == "__main__":
    main()
