"""The ``pica serve`` page in headless Chromium (Playwright driving Debian's /usr/bin/chromium).

Uploads the shared demo photo (``../shared/images/glove_boy.jpeg``), types a question and a caption, and reads the answer and the
retrieved examples off the page. Set ``PICA_SERVE_SCREENSHOT=docs/serve.png`` to write the README's
screenshot.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from serve_server import CAPTION, QUESTION, pica_server

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# The shared demo photos beside the repository (PICA_TEST_IMAGES overrides, e.g. for a worktree).
IMAGES = Path(os.environ.get("PICA_TEST_IMAGES") or Path(__file__).parents[2] / "shared" / "images")
PHOTO = IMAGES / "glove_boy.jpeg"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def server():
    examples = ["--examples-dir", str(IMAGES)] if IMAGES.is_dir() else []
    with pica_server("--timeout", "300", *examples) as running:
        yield running


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1180, "height": 860})
    page = context.new_page()
    page.set_default_timeout(120_000)
    failures: list[str] = []
    page.on("pageerror", lambda e: failures.append(str(e)))
    page.goto(server.base_url + "/")
    yield page
    context.close()
    assert not failures, failures  # no JavaScript errors


def ask(page, question: str, caption: str) -> None:
    page.fill("#question", question)
    page.fill("#caption", caption)
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])")
    page.wait_for_selector("#submit:enabled")


def test_upload_ask_and_see_the_answer_and_examples(page, server, tmp_path):
    if not PHOTO.is_file():
        pytest.skip(f"demo photo missing: {PHOTO}")
    page.set_input_files("#image", str(PHOTO))
    # The preview shows once the browser has decoded the file (asynchronous): wait, then check.
    page.wait_for_selector("#preview", state="visible")
    assert page.eval_on_selector("#preview", "img => img.naturalWidth") > 0
    ask(page, QUESTION, CAPTION)
    assert page.is_hidden("#error"), page.text_content("#error")
    expected = server.post_form("/v1/answer", {"question": QUESTION, "caption": CAPTION},
                                {"image": (PHOTO.name, PHOTO.read_bytes(), "image/jpeg")}).json
    assert page.text_content("#answer") == expected["answer"]
    assert page.text_content("#used-caption") == CAPTION
    examples = page.locator("li.example")
    assert examples.count() == len(expected["examples"][0]) > 0
    first = expected["examples"][0][0]
    assert first["question"] in examples.nth(0).text_content()
    assert page.locator("#candidates tbody tr").count() == 1
    assert "total" in page.text_content("#seconds")
    assert "Q: " + QUESTION in page.text_content("#prompts")
    shot = Path(os.environ.get("PICA_SERVE_SCREENSHOT") or tmp_path / "serve.png")
    save_screenshot(page, shot)
    assert shot.stat().st_size > 0

    # The caption is editable: fix it and ask again.
    ask(page, QUESTION, "a man holding a tennis racket on a court")
    assert page.text_content("#used-caption") == "a man holding a tennis racket on a court"


def test_caption_only_and_input_errors_on_the_page(page):
    page.click("#submit")  # nothing typed: the browser's own required-field check stops it
    assert page.is_hidden("#result")
    page.fill("#question", QUESTION)
    page.click("#submit")
    assert "image or type a caption" in page.text_content("#error")
    ask(page, QUESTION, CAPTION)
    assert page.text_content("#answer")


def test_example_images_to_try(page):
    if not page.locator("button.demo").count():
        pytest.skip("no example images on this machine")
    page.locator("button.demo").first.click()
    page.wait_for_selector("#preview:not([hidden])")
    assert page.input_value("#question")
    assert page.input_value("#caption")
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])")
    page.wait_for_selector("#submit:enabled")
    assert page.text_content("#answer")


def save_screenshot(page, path: Path) -> None:
    """A full-page PNG, quantized to 128 colours to stay small enough to commit."""
    from PIL import Image

    raw = page.screenshot(full_page=True)
    image = Image.open(io.BytesIO(raw)).convert("RGB").quantize(colors=128)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, optimize=True)
