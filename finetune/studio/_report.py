"""The Report page's content from `eval/report.json`: per language, the test-split figures before and after and
the answers that changed most (report.html itself, with its figures, is shown beside it as it is)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report_summary(eval_dir: Path) -> dict[str, Any] | None:
    """None until `medtune eval` has written a report."""
    path = eval_dir / "report.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    changed: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for direction in ("improved", "regressed"):
        for example in report.get("examples_changed", {}).get(direction, []):
            changed.setdefault(example.get("lang", "?"), {"improved": [], "regressed": []})[direction].append(example)
    languages = sorted(set(report.get("metrics", {})) | set(changed), key=lambda lang: (lang == "all", lang))
    significant = [c for c in report.get("comparisons", []) if c.get("significant")]
    return {
        "recipe": report.get("recipe"),
        "examples": report.get("examples"),
        "models": report.get("models", {}),
        "metrics": report.get("metrics", {}),
        "languages": languages,
        "changed": changed,
        "significant": significant,
        "notes": report.get("notes", []),
        "has_html": (eval_dir / "report.html").is_file(),
    }
