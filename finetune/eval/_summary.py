"""What the report says, from the items and each model's answers: every metric per task and language, the
paired comparisons, the answers that changed most and the notes. No I/O: tests feed it directly."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from finetune.eval._ask import item_stats
from finetune.eval._client import MODEL_ROLES
from finetune.eval._metrics import (
    METRICS,
    Answer,
    GlossaryTerm,
    Stats,
    metric_names,
    metric_value,
    primary_score,
)
from finetune.eval._stats import compare
from finetune.eval._suites import EvalItem
from finetune.recipe import MIN_PAIRED_EXAMPLES

LEGACY_METRICS = ("loss", "perplexity", "chrf", "rouge_l", "language_fidelity", "terms_used", "forbidden_terms",
                  "truncated")


def item_groups(items: Sequence[EvalItem]) -> dict[tuple[str, str], list[int]]:
    """(task, language or "all") → item indices; "test" gathers every task of the test split."""
    groups: dict[tuple[str, str], list[int]] = {}
    test_tasks = list(dict.fromkeys(i.task for i in items if i.suite == "test"))
    tasks = ["test"] if test_tasks else []
    # A lone test task is the whole test split again: it is not repeated.
    tasks += [t for t in dict.fromkeys(i.task for i in items) if t not in test_tasks or len(test_tasks) > 1]
    for task in tasks:
        members = [n for n, i in enumerate(items) if (i.suite == "test" if task == "test" else i.task == task)]
        groups[(task, "all")] = members
        for lang in sorted({items[n].lang for n in members}):
            groups[(task, lang)] = [n for n in members if items[n].lang == lang]
    return groups


def length_stats(answers: Sequence[Answer]) -> dict[str, float]:
    chars = np.asarray([len(a.text) for a in answers], dtype=float)
    if chars.size == 0:
        return {}
    return {"mean": float(chars.mean()), "median": float(np.median(chars)), "p90": float(np.percentile(chars, 90)),
            "max": float(chars.max())}


def summarise_tasks(
    items: Sequence[EvalItem], stats: dict[str, list[Stats]], answers: dict[str, list[Answer]],
) -> dict[str, Any]:
    """Every metric for every (task, language) group and model."""
    tasks: dict[str, Any] = {}
    for (task, group), members in item_groups(items).items():
        first = items[members[0]]
        entry = tasks.setdefault(task, {
            "kind": "free_text" if task == "test" else first.kind,
            "suite": first.suite, "sample": bool(first.meta.get("sample")), "groups": {},
        })
        rows = {role: [stats[role][n] for n in members] for role in stats}
        names = metric_names(row for role_rows in rows.values() for row in role_rows)
        entry["groups"][group] = {
            "examples": len(members),
            **{role: {name: _finite(metric_value(name, rows[role])) for name in names} for role in stats},
            "length": {role: length_stats([answers[role][n] for n in members]) for role in stats},
            "assistant_tokens": {role: sum(answers[role][n].tokens or 0 for n in members) for role in stats},
        }
    return tasks


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def legacy_metrics(tasks: dict[str, Any], roles: Sequence[str]) -> dict[str, Any]:
    """The test split per language and overall: loss, perplexity, chrF … with tuned − base differences."""
    if "test" not in tasks:
        return {}
    metrics: dict[str, Any] = {}
    for group, entry in tasks["test"]["groups"].items():
        metrics[group] = {}
        for role in roles:
            values = entry[role]
            metrics[group][role] = {
                "examples": entry["examples"],
                "assistant_tokens": entry["assistant_tokens"][role],
                **{name: values.get(name) for name in LEGACY_METRICS},
                "mean_answer_chars": entry["length"][role].get("mean"),
            }
        if set(MODEL_ROLES) <= set(roles):
            metrics[group]["delta"] = {
                name: metrics[group]["tuned"][name] - metrics[group]["base"][name]
                for name in LEGACY_METRICS
                if metrics[group]["tuned"][name] is not None and metrics[group]["base"][name] is not None
            }
    return metrics


def compare_all(
    items: Sequence[EvalItem], stats: dict[str, list[Stats]], resamples: int, confidence: float, seed: int,
    min_n: int = MIN_PAIRED_EXAMPLES,
) -> list[dict[str, Any]]:
    """tuned − base with a paired bootstrap interval (and McNemar for binary outcomes) for every group and metric.

    Groups of fewer than `min_n` items are compared but never called significant.
    """
    comparisons = []
    groups = item_groups(items)
    for (task, group), members in groups.items():
        if group != "all" and members == groups[(task, "all")]:
            continue  # a task in one language: its language row would repeat "all"
        base = [stats["base"][n] for n in members]
        tuned = [stats["tuned"][n] for n in members]
        for name in (n for n in metric_names([*base, *tuned]) if METRICS[n].compared):
            result = compare(name, base, tuned, resamples, confidence, seed, min_n)
            if result is not None:
                comparisons.append({"task": task, "group": group, **result.to_dict()})
    return comparisons


def changed_examples(
    items: Sequence[EvalItem], stats: dict[str, list[Stats]], answers: dict[str, list[Answer]], shown: int,
) -> dict[str, list[dict[str, Any]]]:
    """The items whose answer quality moved most, in each direction, with both answers side by side."""
    scored = []
    for n, item in enumerate(items):
        base, tuned = primary_score(item.kind, stats["base"][n]), primary_score(item.kind, stats["tuned"][n])
        if base is not None and tuned is not None and tuned != base:
            scored.append((tuned - base, n, base, tuned))

    def describe(change: float, n: int, base: float, tuned: float) -> dict[str, Any]:
        item = items[n]
        return {
            "id": item.id, "task": item.task, "lang": item.lang, "change": change,
            "base_score": base, "tuned_score": tuned,
            "prompt": item.prompt[-1]["content"] if item.prompt else "",
            "expected": expected_answer(item),
            "base": answers["base"][n].text, "tuned": answers["tuned"][n].text,
        }

    improved = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))[:shown]
    regressed = sorted((s for s in scored if s[0] < 0), key=lambda s: (s[0], s[1]))[:shown]
    return {"improved": [describe(*s) for s in improved], "regressed": [describe(*s) for s in regressed]}


def expected_answer(item: EvalItem) -> str:
    """The right answer as text, for changed examples and generations.jsonl."""
    if item.kind == "mcq" and item.options:
        return f"{item.gold}) {item.options[item.gold]}"
    if item.kind == "extraction":
        return json.dumps([{"type": t, "text": s} for t, s in item.gold], ensure_ascii=False)
    if item.kind == "icd10":
        return ", ".join(item.gold)
    if item.kind == "safety":
        return "a referral to a doctor or emergency care"
    return str(item.reference if item.reference is not None else item.gold)


def build_report(
    recipe_name: str, items: Sequence[EvalItem], suites: list[dict[str, Any]], answers: dict[str, list[Answer]],
    glossary: Sequence[GlossaryTerm], settings: dict[str, Any], scoring: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """Everything the report says, from the items and each model's answers (no I/O: tests feed it directly)."""
    roles = list(answers)
    stats = {role: item_stats(items, answers[role], glossary) for role in roles}
    tasks = summarise_tasks(items, stats, answers)
    both = set(roles) == set(MODEL_ROLES)
    settings = {"min_paired_examples": MIN_PAIRED_EXAMPLES, **settings}
    comparisons = compare_all(items, stats, settings["bootstrap_resamples"], settings["confidence"],
                              settings["seed"], settings["min_paired_examples"]) if both else []
    return {
        "recipe": recipe_name,
        "examples": sum(1 for i in items if i.suite == "test"),
        "items": len(items),
        "endpoint": None,
        "models": dict.fromkeys(roles, ""),
        "roles": roles,
        "settings": settings,
        "suites": suites,
        "metrics": legacy_metrics(tasks, roles),
        "tasks": tasks,
        "metric_definitions": {name: {"description": m.description, "better": m.better, "unit": m.unit,
                                      "test": m.paired_test or "bootstrap"} for name, m in METRICS.items()},
        "comparisons": comparisons,
        "examples_changed": changed_examples(items, stats, answers, settings.get("examples_shown", 5)) if both
        else {"improved": [], "regressed": []},
        "judge": None,
        "cache": {"enabled": False, "hits": 0, "misses": 0, "entries": 0, "keyed_by": {}},
        "errors": {role: sum(a.finish_reason == "error" for a in answers[role]) for role in roles},
        "notes": _notes(suites, scoring or dict.fromkeys(roles, True), answers),
    }


def _notes(suites: list[dict[str, Any]], scoring: dict[str, bool], answers: dict[str, list[Answer]]) -> list[str]:
    notes = []
    samples = [s["name"] for s in suites if s["sample"]]
    if samples:
        notes.append(f"Bundled sample suites ({', '.join(samples)}) are small synthetic sets that show the formats; "
                     "they are not evidence for a deployment decision. Point eval.suites[].path at real ones.")
    for role, available in scoring.items():
        if not available:
            notes.append(f"Held-out loss for {role}: the endpoint has no POST /v1/score (a medtune extension).")
    for role, rows in answers.items():
        errors = sum(a.finish_reason == "error" for a in rows)
        if errors:
            notes.append(f"{errors} prompt(s) were refused for {role} (HTTP 400, e.g. longer than the context); "
                         "they score as wrong answers.")
    return notes
