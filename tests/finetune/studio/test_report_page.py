"""The Report page from a report.json the evaluation's own summary builds: per language, the figures before and
after and the answers that changed most, the significant differences, and report.html served without scripts."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi.testclient import TestClient

from finetune.eval._metrics import Answer
from finetune.eval._report_html import render_html
from finetune.eval._suites import EvalItem
from finetune.eval._summary import build_report
from finetune.studio import Studio, create_app

SETTINGS = {"max_new_tokens": 32, "temperature": 0.0, "concurrency": 2, "bootstrap_resamples": 200,
            "confidence": 0.95, "seed": 0, "examples_shown": 24, "glossary": None}


def _report() -> dict:
    items, base, tuned = [], [], []
    for lang, wrong, right in (("ru", "Ответ: Б", "Ответ: А"), ("zh", "答案是Б", "答案是А")):
        for n in range(12):
            items.append(EvalItem(f"mcq:{lang}-{n}", "mcq", "mcq", "mcq", lang,
                                  [{"role": "user", "content": f"Вопрос {lang} {n}?"}], gold="А",
                                  options={"А": "Адреналин", "Б": "Дексаметазон"}))
            base.append(Answer(wrong))
            tuned.append(Answer(right))
    suites = [{"name": "mcq", "format": "mcq", "path": "mcq.jsonl", "sample": False, "items": 24,
               "langs": ["ru", "zh"]}]
    report = build_report("demo", items, suites, {"base": base, "tuned": tuned}, [], SETTINGS)
    report.update(endpoint="http://127.0.0.1:1", models={"base": "base-dir", "tuned": "adapter-dir"})
    return report


def test_the_report_page_shows_each_language_and_what_changed(tmp_path: Path) -> None:
    studio = Studio.open(None, [f"output_dir={tmp_path}"], None, None)
    client = TestClient(create_app(studio), base_url="http://127.0.0.1")
    assert "No report yet" in client.get("/report").text and client.get("/report/html").status_code == 404
    report = _report()
    studio.recipe.eval_dir.mkdir(parents=True)
    (studio.recipe.eval_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")
    (studio.recipe.eval_dir / "report.html").write_text(render_html(report), encoding="utf-8")
    page = client.get("/report").text
    sections = re.findall(r'<section class="lang" id="lang-(\w+)">(.*?)</section>', page, re.S)
    assert [lang for lang, _ in sections] == ["ru", "zh"]
    for lang, body in sections:
        assert "Answers that improved most" in body and "regressed" not in body
        assert body.count('class="changed"') == 12 and f"Вопрос {lang}" in body  # the report's list, by language
        assert ("Ответ: А" if lang == "ru" else "答案是А") in body
    assert "mcq · all · accuracy: better" in page
    assert 'iframe src="/report/html"' in page
    html = client.get("/report/html")
    assert html.status_code == 200 and html.text == render_html(report)
    assert "script-src" not in html.headers["content-security-policy"]  # default-src 'none': no scripts run
