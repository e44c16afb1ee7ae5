"""The app in a real browser: Debian's headless Chromium driven by Playwright (never a
downloaded browser). Upload, restore, the before/after slider, the four attention maps, a
cached example, and a click on the restored image that produces attribution maps."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import save_png, smooth_photo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from screenshot_app import CHROMIUM_ARGS  # noqa: E402  (the same flags as the README screenshot)

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(app_url)
        page.wait_for_selector("#restore-button")
        yield page
        browser.close()


def _image_sources(page, selector: str) -> list[str]:
    return page.locator(f"{selector} img").evaluate_all("images => images.map(i => i.src)")


def test_upload_restore_slider_and_four_attention_maps(page, tmp_path):
    photo = save_png(tmp_path / "upload.png", smooth_photo(48, 64))
    page.get_by_role("tab", name="Restore").click()
    page.locator("#input-image input[type=file]").set_input_files(str(photo))
    page.wait_for_selector("#input-image img")
    page.click("#restore-button")
    page.wait_for_function(
        "document.querySelectorAll('#comparison img').length >= 2", timeout=60_000
    )
    assert len(_image_sources(page, "#comparison")) >= 2
    page.wait_for_selector("#restore-info :text('64 x 48 px')")
    page.get_by_role("tab", name="Attention").click()
    for name in ("A1", "A2", "A3", "A4"):
        heat = page.locator(f"#heatmap-{name} img")
        heat.wait_for(state="visible")
        assert heat.evaluate("i => i.naturalWidth") == 64
        page.locator(f"#overlay-{name} img").wait_for(state="visible")
    page.wait_for_selector("text=share > 0.5")


def test_example_is_cached_and_shown(page, app_files):
    page.get_by_role("tab", name="Restore").click()
    page.locator("#restore-button ~ div table tbody tr, .gallery-item").first.click()
    page.wait_for_selector("#restore-info :text('example: computed once')", timeout=60_000)
    page.wait_for_selector("#restore-quality :text('PSNR (dB)')")
    assert any(app_files.examples_cache.rglob("log.csv"))  # cached after first use


def test_click_on_the_restored_image_explains_that_patch(page):
    page.get_by_role("tab", name="Explain").click()
    view = page.locator("#explain-restored img")
    view.wait_for(state="visible")
    # The view must show the latest result (the cached example, 56 px wide) before the click:
    # a click on the previous picture would be answered and then cleared by the new result.
    page.wait_for_function(
        "document.querySelector('#explain-restored img')?.naturalWidth === 56", timeout=60_000
    )
    box = view.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.wait_for_selector("#ig-map img", timeout=60_000)
    page.wait_for_selector("#lam-map img")
    page.wait_for_selector("text=diffusion index")
