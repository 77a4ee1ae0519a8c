"""The opening of report.md: headline numbers per language with intervals, and two short answers side by side."""

from __future__ import annotations

from finetune.eval._report_story import render_story


def _comparison(group: str, metric: str, base: float, tuned: float, significant: bool) -> dict:
    return {"task": "test", "group": group, "metric": metric, "n": 12, "base": base, "tuned": tuned,
            "ci_low": tuned - base - 0.05, "ci_high": tuned - base + 0.05, "significant": significant}


def test_story_lists_each_language_and_quotes_the_two_shortest_improved_answers() -> None:
    report = {
        "roles": ["base", "tuned"], "settings": {"confidence": 0.95},
        "comparisons": [
            _comparison("all", "chrf", 10.0, 40.0, True),
            *(_comparison(lang, "format_adherence", 0.0, 0.9, True) for lang in ("ru", "kk", "zh")),
            _comparison("kk", "truncated", 1.0, 0.1, True),
        ],
        "examples_changed": {"improved": [
            {"task": "test:lab_explanation", "lang": "kk", "expected": "x" * 50, "base": "\n\n", "tuned": "Жақсы | ok"},
            {"task": "test:structured_summary", "lang": "ru", "expected": "x" * 500, "base": "a", "tuned": "b"},
            {"task": "test:structured_summary", "lang": "zh", "expected": "x" * 10, "base": "乱码",
             "tuned": "主诉：咳嗽"},
        ]},
    }
    text = "\n".join(render_story(report))
    assert "| ru | 12 |" in text and "| kk | 12 |" in text and "| zh | 12 |" in text
    assert "0.0% → 90.0% (+85.0 pp … +95.0 pp) ✓" in text
    assert "100.0% → 10.0%" in text  # kk answers cut by the limit
    assert "主诉：咳嗽" in text and "Жақсы \\| ok" in text and "| structured_summary | ru |" not in text
    assert "(empty)" in text  # a blank answer is shown as such


def test_no_story_without_both_models() -> None:
    assert render_story({"roles": ["tuned"], "comparisons": []}) == []
