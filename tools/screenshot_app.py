"""Screenshot the app for the README: serve it on a free local port, drive Debian's headless
Chromium with Playwright (never a downloaded browser), restore an example, save PNGs.

    python tools/screenshot_app.py                       # assets/screenshot.png (Restore tab)
    python tools/screenshot_app.py --all-tabs --out-dir runs/screens   # every tab, for review

Uses the shipped checkpoint, snapshots and metrics unless told otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import sys
import time
from pathlib import Path
from types import ModuleType

from PIL import Image

from bag import Deblurrer

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, path: Path, package: bool = False) -> ModuleType:
    """A module (or package) of the checkout by its file path, registered as `name`."""
    if name in sys.modules:
        return sys.modules[name]
    locations = [str(path.parent)] if package else None
    spec = importlib.util.spec_from_file_location(name, path, submodule_search_locations=locations)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _load_app() -> ModuleType:
    """app.py and its explorer/ package from the checkout: they sit beside the installed
    library, not in it, and this script runs from train/."""
    _load("explorer", ROOT / "explorer" / "__init__.py", package=True)
    return _load("app", ROOT / "app.py")


app = _load_app()
config = sys.modules["explorer"].config  # the app's default paths

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
    parser.add_argument("--checkpoint", type=Path, default=config.DEFAULT_CHECKPOINT)
    parser.add_argument("--snapshots", type=Path, default=config.DEFAULT_SNAPSHOTS)
    parser.add_argument("--metrics", type=Path, default=config.DEFAULT_METRICS)
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
    app.configure_queue(demo)
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
