"""The report from fixed answers: numbers, significance, markdown without clinic text, a self-contained HTML."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from finetune.eval._metrics import Answer, GlossaryTerm
from finetune.eval._report_html import render_html
from finetune.eval._report_md import render_markdown
from finetune.eval._suites import EvalItem
from finetune.eval._summary import build_report

OPTIONS = {"А": "Адреналин", "Б": "Дексаметазон"}
SECRET = "Иванову назначен адреналин"  # stands for clinic text that must stay out of report.md
SETTINGS = {"max_new_tokens": 32, "temperature": 0.0, "concurrency": 2, "bootstrap_resamples": 300,
            "confidence": 0.95, "seed": 0, "examples_shown": 2, "glossary": "test"}


def _fixture() -> tuple[list[EvalItem], dict[str, list[Answer]]]:
    items, base, tuned = [], [], []
    for lang, answer_base, answer_tuned in (("ru", "Ответ: Б", "Ответ: А"), ("zh", "答案是Б", "答案是А")):
        for n in range(8):
            items.append(EvalItem(f"mcq:{lang}-{n}", "mcq", "mcq", "mcq", lang,
                                  [{"role": "user", "content": f"{SECRET} {n}?"}], gold="А", options=OPTIONS,
                                  meta={"sample": True}))
            base.append(Answer(answer_base))
            tuned.append(Answer(answer_tuned))
    for n in range(6):
        lang = "ru" if n < 3 else "kk"  # the tuned answers are Russian: right for ru, wrong language for kk
        items.append(EvalItem(f"{lang}-{n}", "test", "test:lab_explanation", "free_text", lang,
                              [{"role": "user", "content": f"Анализы {n}"}],
                              reference="Гемоглобин ниже нормы. Обратитесь к врачу."))
        base.append(Answer("Hemoglobin is low.", nll=30.0 + n, tokens=10, completion_tokens=5))
        tuned.append(Answer("Гемоглобин ниже нормы, обратитесь к врачу.", nll=12.0 + n, tokens=10,
                            completion_tokens=9))
    return items, {"base": base, "tuned": tuned}


@pytest.fixture(scope="module")
def report() -> dict:
    items, answers = _fixture()
    glossary = [GlossaryTerm("ru", "гемоглобин", ("гемоглобина",), ("hemoglobin",))]
    suites = [{"name": "test", "format": "test split", "path": "test.jsonl", "sample": False, "items": 6,
               "langs": ["ru"]},
              {"name": "mcq", "format": "mcq", "path": "bundled sample", "sample": True, "items": 16,
               "langs": ["ru", "zh"]}]
    built = build_report("demo", items, suites, answers, glossary, SETTINGS)
    built.update(endpoint="http://127.0.0.1:1", models={"base": "base-dir", "tuned": "merged-dir"})
    return built


@pytest.fixture(scope="module")
def page(report: dict) -> str:
    return render_html(report)


def _comparison(report: dict, task: str, group: str, metric: str) -> dict:
    return next(c for c in report["comparisons"] if (c["task"], c["group"], c["metric"]) == (task, group, metric))


def test_numbers_and_significance(report: dict) -> None:
    accuracy = _comparison(report, "mcq", "all", "accuracy")
    assert (accuracy["base"], accuracy["tuned"], accuracy["n"]) == (0.0, 1.0, 16)
    assert accuracy["test"] == "mcnemar" and accuracy["p_value"] == pytest.approx(2 * 0.5**16)
    assert accuracy["significant"] and accuracy["verdict"] == "better"
    ru = _comparison(report, "mcq", "ru", "accuracy")  # 8 of 8 discordant: p = 0.0078, but n=8
    assert ru["p_value"] < 0.01 and not ru["significant"] and ru["verdict"] == "too few examples"
    assert ru["reason"] == "n=8 < 10: too few for a significance claim"
    for group in ("all", "ru", "kk"):  # 6 and 3 examples: intervals shown, nothing claimed
        loss = _comparison(report, "test", group, "loss")
        assert loss["difference"] == pytest.approx(-1.8) and loss["verdict"] == "too few examples"
        assert loss["ci_low"] <= -1.8 <= loss["ci_high"] < 0 and not loss["significant"]
    fidelity = _comparison(report, "test", "all", "language_fidelity")
    assert (fidelity["base"], fidelity["tuned"]) == (0.0, 0.5)
    assert _comparison(report, "test", "kk", "language_fidelity")["tuned"] == 0.0  # answered in Russian
    assert _comparison(report, "test", "all", "forbidden_terms")["base"] == 1.0  # only ru has glossary terms
    assert report["tasks"]["test"]["groups"]["ru"]["tuned"]["terms_used"] == 1.0
    assert "test:lab_explanation" not in report["tasks"]  # the only test task is the test split itself
    legacy = report["metrics"]["ru"]
    assert legacy["base"]["examples"] == legacy["tuned"]["examples"] == 3
    assert legacy["tuned"]["loss"] < legacy["base"]["loss"] and legacy["base"]["assistant_tokens"] == 30
    assert legacy["delta"]["language_fidelity"] == 1.0 and report["metrics"]["kk"]["delta"]["language_fidelity"] == 0


def test_changed_examples_both_ways(report: dict) -> None:
    improved = report["examples_changed"]["improved"]
    assert len(improved) == 2 and improved[0]["change"] == 1.0 and improved[0]["expected"] == "А) Адреналин"
    assert improved[0]["base"] == "Ответ: Б" and improved[0]["tuned"] == "Ответ: А"
    assert report["examples_changed"]["regressed"] == []


def test_markdown_says_what_is_significant_and_holds_no_clinic_text(report: dict) -> None:
    markdown = render_markdown(report)
    assert "| ru |" in markdown and "## Significant differences (95%)" in markdown
    assert "mcq / all — accuracy: 0.0% → 100.0% (+100.0 pp, 95% CI" in markdown
    assert "McNemar p=" in markdown and "better" in markdown
    assert SECRET not in markdown and "Hemoglobin is low" not in markdown
    assert "bundled sample" in markdown
    [perplexity] = [line for line in markdown.splitlines() if line.startswith("| perplexity")]
    assert all(" → " in cell for cell in perplexity.split("|")[2:-1]), "base and tuned both shown, not tuned alone"


def test_every_format_says_why_small_groups_claim_nothing(report: dict, page: str) -> None:
    markdown = render_markdown(report)
    [why] = [line for line in markdown.splitlines() if line.startswith("No significance is claimed")]
    assert why.startswith("No significance is claimed for groups with fewer than 10 paired examples "
                          "(eval.min_paired_examples): test / all (n=6 < 10: too few for a significance claim); ")
    assert "mcq / ru (n=8 < 10: too few for a significance claim)" in why and "mcq / all" not in why
    [accuracy] = [line for line in markdown.splitlines() if line.startswith("| accuracy")]
    assert accuracy.count("*") == 1 and accuracy.count("†") == 2  # all (n=16) significant; ru and zh too small
    assert "n=8 &lt; 10: too few for a significance claim" in page
    assert report["settings"]["min_paired_examples"] == 10


def test_two_test_examples_claim_nothing_and_the_minimum_is_a_setting() -> None:
    items, answers = _fixture()
    two = [n for n, item in enumerate(items) if item.suite == "test"][:2]
    pair = [items[n] for n in two]
    chosen = {role: [rows[n] for n in two] for role, rows in answers.items()}
    suites = [{"name": "test", "format": "test split", "path": "t", "sample": False, "items": 2, "langs": ["ru"]}]
    built = build_report("demo", pair, suites, chosen, [], SETTINGS)
    built.update(endpoint="http://127.0.0.1:1", models={"base": "b", "tuned": "t"})
    loss = _comparison(built, "test", "all", "loss")
    assert loss["ci_high"] < 0 and not loss["significant"]
    assert loss["reason"] == "n=2 < 10: too few for a significance claim"
    markdown = render_markdown(built)
    assert f"None of the {len(built['comparisons'])} differences is significant at 95%." in markdown
    assert "test / all (n=2 < 10: too few for a significance claim)" in markdown

    lenient = build_report("demo", pair, suites, chosen, [], {**SETTINGS, "min_paired_examples": 2})
    assert _comparison(lenient, "test", "all", "loss")["significant"]
    assert all(c["reason"] is None for c in lenient["comparisons"])


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img":
            self.sources.append(values.get("src") or "")
        if tag in ("script", "link", "iframe") or any(
            (v or "").startswith(("http:", "https:", "//")) for k, v in attrs if k in ("src", "href")
        ):
            self.external.append(tag)


def test_html_is_self_contained_and_every_figure_decodes(page: str) -> None:
    parser = _Images()
    parser.feed(page)
    assert parser.external == []
    assert len(parser.sources) >= 4  # forest plots per metric and per-task breakdowns
    for source in parser.sources:
        assert source.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1], validate=True)))
        image.verify()
        assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 100
    assert "Answers that improved most" in page and "Ответ: А" in page
    assert SECRET in page  # the HTML stays in the eval directory and shows the examples


def test_single_model_report_renders(report: dict) -> None:
    items, answers = _fixture()
    single = build_report("demo", items, report["suites"], {"tuned": answers["tuned"]}, [], SETTINGS)
    single.update(endpoint="http://127.0.0.1:1", models={"tuned": "m"})
    assert single["comparisons"] == [] and "base" not in single["metrics"]["ru"]
    assert "accuracy" in render_markdown(single) and "<img" in render_html(single)


BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(BROWSER is None, reason="Chromium is not installed (apt-get install chromium; .ci/run does)")
def test_report_renders_in_headless_chromium(page: str, tmp_path: Path) -> None:
    probe = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
             "document.title='IMAGES '+i.length+' '+i.filter(x=>x.complete&&x.naturalWidth>0).length;});</script>")
    path = tmp_path / "report.html"
    path.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    result = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r"<title>IMAGES (\d+) (\d+)</title>", result.stdout)
    assert found, result.stderr[-2000:]
    total, rendered = map(int, found.groups())
    assert total >= 4 and rendered == total
