"""Screenshots of every page of the app, and a contact sheet of them, for the README.

Starts ``streamlit run app.py`` on a free port of 127.0.0.1 (the browser tests' server), opens each page in
Debian's Chromium at /usr/bin/chromium through Playwright, waits until Streamlit has finished running the page,
and writes one PNG per page plus ``contact-sheet.png``, downscaled and reduced to 256 colours so the repository
stays small.

    python tools/screenshots.py                 # English, into docs/screenshots/
    python tools/screenshots.py --lang zh --sheet-only   # Chinese contact sheet, into docs/screenshots/zh/

Needs ``requirements-dev.txt`` (Playwright) and ``apt-get install -y chromium`` (plus ``fonts-wqy-microhei`` for
Chinese); it never downloads a browser.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from PIL import Image, ImageDraw, ImageFont

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from conftest import CHROMIUM_ARGS, DRAWING, running_app  # noqa: E402  (the browser tests' server and browser flags)

# (file name, URL path, label on the contact sheet), in the sidebar's order.
PAGES = [
    ("home", "/", "Home"),
    ("lesson", "/lesson", "Lesson"),
    ("explain", "/explain", "Explain"),
    ("gradient-flow", "/gradient_flow", "Gradient flow"),
    ("shattered-gradients", "/shattered_gradients", "Shattered gradients"),
    ("residual-vs-identity", "/residual_vs_identity", "Residual vs identity"),
    ("inside-a-block", "/inside_a_block", "Inside a block"),
    ("training-race", "/training_race", "Training race"),
    ("loss-landscape", "/loss_landscape", "Loss landscape"),
]
LOCALES = {"en": "en-US", "zh": "zh-CN"}


class ScriptWatcher:
    """Follows the app's WebSocket: whether the page's script is running, and when the server last sent anything.

    The header's "Running..." widget is not shown (``client.toolbarMode = "minimal"``), and a page may compute for
    a minute without changing what is on screen, so the server's own messages say when a page is done.
    """

    def __init__(self, page):
        self.running = True
        self.finished = 0
        self.last_message = time.monotonic()
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def reset(self) -> None:
        self.running, self.finished, self.last_message = True, 0, time.monotonic()

    def _received(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        self.last_message = time.monotonic()
        if isinstance(payload, str):
            return
        message = ForwardMsg()
        try:
            message.ParseFromString(payload)
        except Exception:  # not a ForwardMsg: say nothing about the script
            return
        kind = message.WhichOneof("type")
        if kind == "session_status_changed":
            self.running = message.session_status_changed.script_is_running
        elif kind == "script_finished":
            self.finished += 1

    def idle_for(self) -> float:
        return 0.0 if self.running or not self.finished else time.monotonic() - self.last_message


def wait_until_idle(page, watcher: ScriptWatcher, *, quiet_s: float, timeout_s: float) -> None:
    """Return once the script has finished, the server has been silent for ``quiet_s`` and the page is drawn."""
    page.locator("[data-testid=stSidebarNav]").wait_for()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if watcher.idle_for() >= quiet_s and not page.evaluate(DRAWING):
            page.wait_for_timeout(500)  # let plotly finish its transitions
            return
        page.wait_for_timeout(250)
    print(f"  still running after {timeout_s:.0f} s; taking the screenshot anyway", file=sys.stderr)


def content_height(page) -> int:
    """Pixels from the top to the end of the page's main column (the viewport is taller than most pages)."""
    return round(
        page.evaluate("document.querySelector('[data-testid=stMainBlockContainer]').getBoundingClientRect().bottom")
    )


def scaled(image: Image.Image, width: int) -> Image.Image:
    return image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)


def save_small(image: Image.Image, path: str) -> None:
    image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True
    )


def contact_sheet(
    shots: list[tuple[str, Image.Image]], *, columns: int, tile_width: int, crop_height: int
) -> Image.Image:
    """The top ``crop_height`` pixels of each page, ``columns`` to a row, each under its page's name."""
    font = ImageFont.load_default(size=22)
    label_h, gap = 34, 12
    tiles = [
        (label, scaled(shot.crop((0, 0, shot.width, min(shot.height, crop_height))), tile_width))
        for label, shot in shots
    ]
    tile_h = max(t.height for _, t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (gap + columns * (tile_width + gap), gap + rows * (label_h + tile_h + gap)), "#e8eaf0")
    draw = ImageDraw.Draw(sheet)
    for i, (label, tile) in enumerate(tiles):
        x = gap + (i % columns) * (tile_width + gap)
        y = gap + (i // columns) * (label_h + tile_h + gap)
        draw.text((x + 4, y + 4), label, fill="#1f2430", font=font)
        sheet.paste(tile, (x, y + label_h))
        draw.rectangle((x - 1, y + label_h - 1, x + tile.width, y + label_h + tile.height), outline="#9aa0ad")
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang", choices=sorted(LOCALES), default="en")
    parser.add_argument("--out", help="folder for the PNGs (default docs/screenshots, or docs/screenshots/zh)")
    parser.add_argument(
        "--pages", nargs="+", choices=[name for name, _, _ in PAGES], help="only these pages (default: all)"
    )
    parser.add_argument(
        "--viewport",
        type=int,
        nargs=2,
        default=(1400, 3600),
        metavar=("W", "H"),
        help="browser window; 3600 px high shows a whole page (default 1400 3600)",
    )
    parser.add_argument("--page-width", type=int, default=800, help="width of each page's PNG (default 800)")
    parser.add_argument(
        "--sheet-crop",
        type=int,
        default=1000,
        help="how many pixels from the top of each page the contact sheet shows (default 1000)",
    )
    parser.add_argument("--tile-width", type=int, default=520, help="width of a page on the contact sheet")
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--sheet-only", action="store_true", help="write only contact-sheet.png")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for one page (default 600)")
    args = parser.parse_args()
    out = args.out or os.path.join(ROOT, "docs", "screenshots", *(["zh"] if args.lang == "zh" else []))
    os.makedirs(out, exist_ok=True)
    chosen = [p for p in PAGES if not args.pages or p[0] in args.pages]

    from playwright.sync_api import sync_playwright

    shots = []
    with running_app() as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": args.viewport[0], "height": args.viewport[1]}, locale=LOCALES[args.lang]
        )
        page = context.new_page()
        page.set_default_timeout(args.timeout * 1000)
        watcher = ScriptWatcher(page)
        for name, path, label in chosen:
            start = time.monotonic()
            watcher.reset()
            page.goto(f"{url}{path}?lang={args.lang}")
            wait_until_idle(page, watcher, quiet_s=2.0, timeout_s=args.timeout)
            raw = os.path.join(out, f".{name}.raw.png")
            page.screenshot(path=raw)
            shot = Image.open(raw)
            shot = shot.crop((0, 0, shot.width, min(shot.height, content_height(page))))
            os.remove(raw)
            if not args.sheet_only:
                save_small(scaled(shot, args.page_width), os.path.join(out, f"{name}.png"))
            shots.append((label, shot))
            print(f"{name}: {time.monotonic() - start:.1f} s, {shot.width}x{shot.height} px")
        browser.close()
    sheet = contact_sheet(shots, columns=args.columns, tile_width=args.tile_width, crop_height=args.sheet_crop)
    save_small(sheet, os.path.join(out, "contact-sheet.png"))
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith(".png"))
    print(f"wrote {len(shots)} pages and contact-sheet.png to {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
