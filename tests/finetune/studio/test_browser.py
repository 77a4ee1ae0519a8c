"""The studio in a real browser: Debian's Chromium driven by Playwright (no browser download). On the tiny demo:
preview the bundled data with its redactions highlighted, mark a miss and find it in the saved set, run the
demo's stages and follow them, read the report (report.html's figures load), ask base and tuned side by side,
and the pages at a laptop width in dark mode."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from finetune.serve import BackgroundServer
from finetune.studio import Studio, create_app

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
                None)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; .ci/run does)"),
]
# The demo made quick: two optimizer steps of the unquantized tiny model, a small validation split, a few test
# answers of a few tokens, the adapter as `tuned` (no export).
QUICK = ["model.load_in_4bit=false", "train.per_device_train_batch_size=1", "train.logging_steps=1",
         "data.split.validation=0.03", "export.enabled=false", "eval.tuned=adapter", "eval.max_examples=6",
         "eval.max_new_tokens=8"]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Studio:
    root = tmp_path_factory.mktemp("studio") / "run"
    studio = Studio.open(None, [f"output_dir={root}", f"model.base={root / 'base-model'}", *QUICK], None, None)
    from finetune.models import build_tiny_model

    build_tiny_model(Path(studio.recipe.model.base), studio.recipe.model.tiny)
    return studio


@pytest.fixture(scope="module")
def url(studio: Studio) -> Iterator[str]:
    with BackgroundServer(create_app(studio)) as server:
        yield server.base_url
    studio.comparer.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], errors  # no script error on any page


SELECT_WORD = """(section) => {
  // the first word of 4+ letters outside every highlight: what a reviewer would drag over
  const note = section.querySelector("pre.note");
  for (const span of note.querySelectorAll(":scope > span")) {
    const node = span.firstChild, found = /[A-Za-zА-Яа-яЁёӘәҒғҚқҢңӨөҰұҮүІі]{4,}/.exec(node.textContent);
    if (!found) continue;
    const range = document.createRange();
    range.setStart(node, found.index);
    range.setEnd(node, found.index + found[0].length);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    return [Number(span.dataset.start) + found.index, found[0]];
  }
  return null;
}"""


def test_data_page_highlights_redactions_and_saves_a_marked_miss(page: Any, url: str, studio: Studio) -> None:
    page.goto(f"{url}/data")
    records = page.locator("section.record")
    assert records.count() == 5
    first = records.nth(0)
    highlights = first.locator("pre.note mark.pii")
    assert highlights.count() >= 3
    kinds = set(page.locator("pre.note mark.pii").evaluate_all("marks => marks.map(m => m.dataset.kind)"))
    assert {"name", "date"} <= kinds
    assert page.locator("details pre mark.pii").count() > 0  # placeholders in the examples, by kind
    start, word = first.evaluate(SELECT_WORD)
    first.locator("select.mark-kind").select_option("name")
    first.locator("button.mark-missed").click()
    assert first.locator("pre.note mark.missed").inner_text() == word
    wrong = first.locator("pre.note mark.pii:not(.missed)").nth(0)
    wrong_span = [int(wrong.get_attribute("data-start")), int(wrong.get_attribute("data-end")),
                  wrong.get_attribute("data-kind")]
    wrong.click()
    first.locator("button.save-review").click()
    page.wait_for_function("document.querySelector('section.record .review-status').textContent.startsWith('saved')")
    rows = [json.loads(line) for line in (studio.reviewed / "ru.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1 and set(rows[0]) == {"id", "text", "spans"}
    saved = rows[0]
    assert [start, start + len(word), "name"] in saved["spans"]
    assert saved["text"][start:start + len(word)] == word
    assert wrong_span not in saved["spans"]
    page.reload()
    assert first.locator(".badge").inner_text() == "reviewed"
    page.locator("#next-page").click()
    assert "page 2" in page.locator(".pager").inner_text()


def test_run_page_runs_the_demo_with_live_progress(page: Any, url: str, studio: Studio) -> None:
    page.goto(f"{url}/run")
    page.select_option("#run-verb", "run")
    page.fill("#run-overrides", "train.max_steps=2")
    page.click("#run-start")
    page.wait_for_selector("#detail-status.s-running, #detail-status.s-finished", timeout=30_000)
    page.wait_for_selector("#detail-status.s-finished, #detail-status.s-failed", timeout=240_000)
    log = page.locator("#run-log").inner_text()
    assert page.locator("#detail-status").inner_text().startswith("finished"), log[-3000:]
    assert "$ medtune run" in log and "train.max_steps=2" in log
    assert page.locator("#fig-step").inner_text() == "2/2"
    assert float(page.locator("#fig-loss").inner_text()) > 0
    assert page.locator("#fig-tps").inner_text() != "–" and page.locator("#fig-mem").inner_text().endswith("GiB")
    assert page.locator("#report-link").is_visible()
    page.reload()  # listed from disk
    assert "finished" in page.locator("#runs tbody tr").first.inner_text()


def test_report_page_shows_each_language_and_the_report_figures(page: Any, url: str, studio: Studio) -> None:
    if not (studio.recipe.eval_dir / "report.json").is_file():
        pytest.skip("needs the run of the test above")
    page.goto(f"{url}/report")
    languages = page.locator("section.lang h2").all_inner_texts()
    assert "all" in languages and len(languages) >= 2
    assert page.locator("table.metrics").count() >= 2
    frame = page.frame_locator("iframe.report-frame")
    frame.locator("img").first.wait_for()
    sizes = frame.locator("img").evaluate_all("imgs => imgs.map(i => i.complete && i.naturalWidth)")
    assert len(sizes) >= 2 and all(size > 200 for size in sizes)


def test_compare_page_answers_side_by_side(page: Any, url: str, studio: Studio) -> None:
    if not (studio.recipe.adapter_dir / "adapter_config.json").is_file():
        pytest.skip("needs the adapter the run above trains")
    page.goto(f"{url}/compare")
    page.fill("#compare-prompt", "Что означает повышенный гемоглобин?")
    page.fill("#compare-max", "6")
    page.click("#compare-ask")
    page.wait_for_function("document.getElementById('finish-tuned').textContent.includes('tokens')", timeout=120_000)
    assert "tokens" in page.locator("#finish-base").inner_text()
    assert "/v1/chat/completions" in page.locator("#compare-message").inner_text()


@pytest.mark.parametrize("path", ["/data", "/run", "/report", "/compare"])
def test_pages_fit_a_laptop_in_dark_mode(browser: Any, url: str, path: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    page = context.new_page()
    page.goto(f"{url}{path}")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = (int(v) for v in background[background.index("(") + 1:background.index(")")].split(",")[:3])
    assert red + green + blue < 150, background
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()
