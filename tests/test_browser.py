"""The app in a real browser: Debian's headless Chromium driven by Playwright (never a
downloaded browser). Upload, restore, the before/after slider (its handle back in the middle
for a new result), the four attention maps, a cached example, a click on the restored image
that produces attribution maps, the evolution and About tabs, a refused oversized upload, and
the Restore tab at phone width."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_script, save_png, smooth_photo
from PIL import Image

# The same flags as the README screenshot.
CHROMIUM_ARGS = load_script("tools/screenshot_app.py").CHROMIUM_ARGS

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.goto(app_url)
    page.wait_for_selector("#restore-button")
    yield page
    page.close()


# Where the slider handle stands, as a share of the restored image's width.
HANDLE_SHARE = """() => {
    const handle = document.querySelector('#comparison [data-testid="slider"]');
    const images = document.querySelectorAll('#comparison img');
    if (!handle || !images.length) return -1;
    const h = handle.getBoundingClientRect(), i = images[images.length - 1].getBoundingClientRect();
    return (h.left + h.width / 2 - i.left) / i.width;
}"""


def _drag_handle(page, share: float) -> None:
    handle = page.locator('#comparison [data-testid="slider"]').bounding_box()
    image = page.locator("#comparison img").last.bounding_box()
    middle = handle["y"] + handle["height"] / 2
    page.mouse.move(handle["x"] + handle["width"] / 2, middle)
    page.mouse.down()
    page.mouse.move(image["x"] + image["width"] * share, middle, steps=8)
    page.mouse.up()


def _restore(page, path, size_text: str) -> None:
    page.locator("#input-image input[type=file]").set_input_files(str(path))
    page.wait_for_selector("#input-image img")
    page.click("#restore-button")
    page.wait_for_selector(f"#restore-info :text('{size_text}')", timeout=60_000)


def _image_sources(page, selector: str) -> list[str]:
    return page.locator(f"{selector} img").evaluate_all("images => images.map(i => i.src)")


def test_upload_restore_slider_and_four_attention_maps(page, tmp_path):
    photo = save_png(tmp_path / "upload.png", smooth_photo(48, 64))
    page.get_by_role("tab", name="Restore").click()
    _restore(page, photo, "64 x 48 px")
    page.wait_for_function("document.querySelectorAll('#comparison img').length >= 2")
    assert len(_image_sources(page, "#comparison")) >= 2
    # Drag the handle to the right; a new result must bring it back to the middle. The reset
    # of this result may still arrive (it follows the restore): drag again until it stays.
    for _ in range(5):
        _drag_handle(page, 0.9)
        page.wait_for_timeout(1500)
        if page.evaluate(HANDLE_SHARE) > 0.75:
            break
    assert page.evaluate(HANDLE_SHARE) > 0.75
    _restore(page, save_png(tmp_path / "second.png", smooth_photo(40, 80, seed=2)), "80 x 40 px")
    page.wait_for_function(f"({HANDLE_SHARE})() > 0.4 && ({HANDLE_SHARE})() < 0.6")
    _restore(page, photo, "64 x 48 px")
    page.get_by_role("tab", name="Attention").click()
    for name in ("A1", "A2", "A3", "A4"):
        heat = page.locator(f"#heatmap-{name} img")
        heat.wait_for(state="visible")
        assert heat.evaluate("i => i.naturalWidth") == 64
        page.locator(f"#overlay-{name} img").wait_for(state="visible")
    page.wait_for_selector("text=share > 0.5")
    page.wait_for_selector("#stretch-A4 :text('Stretch A4:')")  # labelled with A4's range


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


def test_evolution_and_about_tabs(page):
    page.get_by_role("tab", name="Training evolution").click()
    page.click("#evolution-button")
    page.wait_for_selector("#evolution-grid img", timeout=60_000)
    page.get_by_role("tab", name="About").click()
    page.wait_for_selector("#model-card :text('Test model card')")
    assert page.locator("#model-card h1, #model-card h2").count() == 1  # one heading, not two


def test_an_oversized_upload_is_refused_with_a_clear_message(page, tmp_path):
    large = tmp_path / "large.png"
    Image.new("RGB", (600, 400), (90, 120, 150)).save(large)  # over the test app's limit
    page.get_by_role("tab", name="Restore").click()
    page.locator("#input-image input[type=file]").set_input_files(str(large))
    page.wait_for_selector("#input-image img")
    page.click("#restore-button")
    page.wait_for_selector("text=megapixels", timeout=60_000)


def test_at_phone_width_the_result_comes_before_the_examples(browser, app_url):
    phone = browser.new_page(viewport={"width": 390, "height": 900})
    try:
        phone.goto(app_url)
        phone.wait_for_selector("#restore-button")
        button, results, examples = (
            phone.locator(selector).bounding_box()
            for selector in ("#restore-button", "#restore-results", "#restore-examples")
        )
        assert button["y"] < results["y"] < examples["y"]
    finally:
        phone.close()
