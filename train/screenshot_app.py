"""Screenshot the app for the README: serve it on a free local port, drive Debian's headless
Chromium with Playwright (never a downloaded browser), restore an example, save PNGs.

    python train/screenshot_app.py                       # assets/screenshot.png (Restore tab)
    python train/screenshot_app.py --all-tabs --out-dir runs/screens   # every tab, for review

Uses the shipped checkpoint, snapshots and metrics unless told otherwise.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python train/screenshot_app.py`

import app  # noqa: E402
from bag import Deblurrer  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TABS = ("Restore", "Attention", "Training evolution", "Explain", "About")


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def save_optimised(raw: bytes, path: Path) -> None:
    """Write a Playwright PNG screenshot with Pillow's PNG optimisation (smaller file)."""
    from io import BytesIO

    Image.open(BytesIO(raw)).convert("RGB").save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=app.DEFAULT_CHECKPOINT)
    parser.add_argument("--snapshots", type=Path, default=app.DEFAULT_SNAPSHOTS)
    parser.add_argument("--metrics", type=Path, default=app.DEFAULT_METRICS)
    parser.add_argument("--out", type=Path, default=ROOT / "assets" / "screenshot.png")
    parser.add_argument("--all-tabs", action="store_true", help="also save one PNG per tab")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "screenshots")
    parser.add_argument("--example", type=int, default=0, help="which example row to click")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1050)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    deblurrer = Deblurrer.from_checkpoint(args.checkpoint, device="cpu")
    demo = app.build_demo(
        deblurrer,
        checkpoint_path=args.checkpoint,
        snapshots_dir=args.snapshots,
        metrics_path=args.metrics,
    )
    demo.queue(default_concurrency_limit=1)
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **app.launch_options(),
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.wait_for_selector("#restore-button")
            page.locator("table tbody tr, .gallery-item").nth(args.example).click()
            page.wait_for_selector("#restore-info strong")
            page.wait_for_function("document.querySelectorAll('#comparison img').length >= 2")
            page.evaluate("window.scrollTo(0, 0)")
            time.sleep(1.5)  # let images finish decoding and layout settle
            args.out.parent.mkdir(parents=True, exist_ok=True)
            save_optimised(page.screenshot(), args.out)
            print(f"wrote {args.out}")
            if args.all_tabs:
                args.out_dir.mkdir(parents=True, exist_ok=True)
                for tab in TABS:
                    page.get_by_role("tab", name=tab).click()
                    if (
                        tab == "Training evolution"
                        and page.locator("#evolution-button").is_enabled()
                    ):
                        page.click("#evolution-button")
                        page.wait_for_selector("#evolution-grid img")
                    if tab == "Explain":
                        view = page.locator("#explain-restored img")
                        view.wait_for(state="visible")
                        box = view.bounding_box()
                        page.mouse.click(
                            box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.35
                        )
                        page.wait_for_selector("#lam-map img")
                    page.evaluate("window.scrollTo(0, 0)")
                    time.sleep(1.5)
                    path = args.out_dir / f"{tab.lower().replace(' ', '-')}.png"
                    save_optimised(page.screenshot(full_page=True), path)
                    print(f"wrote {path}")
            browser.close()
    finally:
        demo.close()


if __name__ == "__main__":
    main()
