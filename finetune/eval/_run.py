"""Before/after evaluation: the test split and benchmark suites, sent through the serving API for base and tuned.

The evaluator is an HTTP client: it talks to medtune's OpenAI-compatible server (started here on loopback
unless an endpoint is given) or to any other one (vLLM, Ollama), so the numbers describe the model as it is
served. It writes report.{json,md,html} and generations.jsonl to the recipe's eval directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from finetune.eval._cache import GenerationCache
from finetune.eval._client import APIClient, ServedModel, endpoint_identity, fingerprint
from finetune.eval._metrics import (
    METRICS,
    Answer,
    GlossaryTerm,
    Stats,
    answer_stats,
    metric_names,
    metric_value,
    primary_score,
)
from finetune.eval._report import render_html, render_markdown
from finetune.eval._stats import compare
from finetune.eval._suites import (
    EvalItem,
    bundled_glossary_path,
    load_glossary,
    load_suite,
    load_test_split,
)
from finetune.recipe import MIN_PAIRED_EXAMPLES, Recipe, RecipeError, suite_label, write_resolved

log = logging.getLogger(__name__)

MODEL_ROLES = ("base", "tuned")
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
GENERATIONS = "generations.jsonl"
CACHE_FILE = "cache.jsonl"
LEGACY_METRICS = ("loss", "perplexity", "chrf", "rouge_l", "language_fidelity", "terms_used", "forbidden_terms",
                  "truncated")


# --- what to evaluate --------------------------------------------------------------------------------


def collect_items(recipe: Recipe) -> tuple[list[EvalItem], list[dict[str, Any]]]:
    """The test split followed by every configured suite, and a description of each suite for the report."""
    items = load_test_split(recipe.data_dir, recipe.eval.max_examples)
    described = [{"name": "test", "format": "test split", "path": str(recipe.data_dir / "test.jsonl"),
                  "sample": False, "items": len(items), "langs": sorted({i.lang for i in items})}]
    langs = sorted({source.lang for source in recipe.data.sources})
    for suite in recipe.eval.suites:
        loaded = load_suite(suite, langs)
        items.extend(loaded)
        described.append({"name": suite_label(suite), "format": suite.format,
                          "path": suite.path or "bundled sample", "sample": suite.path is None,
                          "items": len(loaded), "langs": sorted({i.lang for i in loaded})})
    return items, described


def recipe_glossary(recipe: Recipe) -> list[GlossaryTerm]:
    if not recipe.eval.terminology:
        return []
    return load_glossary(Path(recipe.eval.glossary) if recipe.eval.glossary else bundled_glossary_path())


# --- asking the models -------------------------------------------------------------------------------


def ask(
    served: ServedModel, items: Sequence[EvalItem], default_max_tokens: int, batch_size: int,
    cache: GenerationCache, concurrency: int,
) -> tuple[list[Answer], bool]:
    """Each item's answer (with the reference's NLL for free-text items) and whether scoring was available."""
    prompts = [item.prompt for item in items]
    limits = [item.max_new_tokens or default_max_tokens for item in items]
    generated = served.generate(prompts, limits, cache, concurrency)
    scores = served.score([item.scored_conversation for item in items], batch_size, cache)
    answers = []
    for index, reply in enumerate(generated):
        score = scores[index] if scores is not None else None
        answers.append(Answer(
            text=reply["text"], finish_reason=reply.get("finish_reason", "stop"),
            completion_tokens=reply.get("completion_tokens"),
            nll=score["nll"] if score else None, tokens=score["tokens"] if score else None,
        ))
    return answers, scores is not None


def item_stats(items: Sequence[EvalItem], answers: Sequence[Answer], glossary: Sequence[GlossaryTerm]) -> list[Stats]:
    return [
        answer_stats(item.kind, answer, lang=item.lang, reference=item.reference, gold=item.gold,
                     options=item.options, glossary=glossary)
        for item, answer in zip(items, answers, strict=True)
    ]


# --- summaries ---------------------------------------------------------------------------------------


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
            "expected": _expected(item),
            "base": answers["base"][n].text, "tuned": answers["tuned"][n].text,
        }

    improved = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))[:shown]
    regressed = sorted((s for s in scored if s[0] < 0), key=lambda s: (s[0], s[1]))[:shown]
    return {"improved": [describe(*s) for s in improved], "regressed": [describe(*s) for s in regressed]}


def _expected(item: EvalItem) -> str:
    if item.kind == "mcq" and item.options:
        return f"{item.gold}) {item.options[item.gold]}"
    if item.kind == "extraction":
        return json.dumps([{"type": t, "text": s} for t, s in item.gold], ensure_ascii=False)
    if item.kind == "icd10":
        return ", ".join(item.gold)
    if item.kind == "safety":
        return "a referral to a doctor or emergency care"
    return str(item.reference if item.reference is not None else item.gold)


# --- the run ------------------------------------------------------------------------------------------


def _local_identities(recipe: Recipe) -> dict[str, str]:
    base = fingerprint(recipe.model.base) + (f"@{recipe.model.revision}" if recipe.model.revision else "")
    if recipe.eval.tuned == "merged":
        return {"base": f"base:{base}", "tuned": f"merged:{fingerprint(recipe.merged_dir)}"}
    return {"base": f"base:{base}", "tuned": f"adapter:{base}:{fingerprint(recipe.adapter_dir)}"}


class _LocalServer:
    """medtune's own server for the recipe's base and tuned models, started on loopback when first needed."""

    def __init__(self, recipe: Recipe, stack: ExitStack) -> None:
        self.recipe, self.stack = recipe, stack
        self.base_url: str | None = None
        self._client: APIClient | None = None

    def client(self) -> APIClient:
        if self._client is None:
            from finetune.serve import BackgroundServer, create_app, models_for_recipe

            app = create_app(models_for_recipe(self.recipe), default_max_tokens=self.recipe.eval.max_new_tokens)
            server = self.stack.enter_context(BackgroundServer(app))
            self.base_url = server.base_url
            self._client = APIClient(server.base_url)
        return self._client


def _identify(client: APIClient, name: str, cache_tag: str | None, cached: bool) -> tuple[str, str]:
    """The cache identity of `name` at `client` and how it was found; the server is asked either way."""
    if cached:
        return endpoint_identity(client, name, cache_tag)
    client.require_model(name)
    return f"{client.base_url}#{name}", "not cached"


def _endpoint_models(
    endpoint: str, api_key: str | None, model: str | None, base_model: str | None, base_endpoint: str | None,
    cache_tag: str | None, cached: bool,
) -> tuple[dict[str, ServedModel], dict[str, str]]:
    """The models at the endpoint(s), each identified by what it serves before any cached answer is used."""
    tuned_client = APIClient(endpoint, api_key)
    named = {"tuned": (model or "tuned", tuned_client)}
    if base_model:
        base_client = APIClient(base_endpoint, api_key) if base_endpoint else tuned_client
        named = {"base": (base_model, base_client), **named}
    served: dict[str, ServedModel] = {}
    keyed_by: dict[str, str] = {}
    for role, (name, client) in named.items():
        identity, keyed_by[role] = _identify(client, name, cache_tag, cached)
        served[role] = ServedModel(role, name, identity, lambda client=client: client)
    return served, keyed_by


def _local_models(
    recipe: Recipe, local: _LocalServer, cache_tag: str | None,
) -> tuple[dict[str, ServedModel], dict[str, str]]:
    """The recipe's base and tuned models, identified by their files: a cached run starts no server."""
    identities = _local_identities(recipe)
    suffix = f"#tag:{cache_tag}" if cache_tag else ""
    served = {role: ServedModel(role, role, identities[role] + suffix, local.client) for role in MODEL_ROLES}
    how = "local weight files" + (f" and cache tag {cache_tag!r}" if cache_tag else "")
    return served, dict.fromkeys(MODEL_ROLES, how)


def evaluate(
    recipe: Recipe,
    endpoint: str | None = None,
    api_key: str | None = None,
    *,
    model: str | None = None,
    base_model: str | None = "base",
    base_endpoint: str | None = None,
    concurrency: int | None = None,
    use_cache: bool | None = None,
    cache_tag: str | None = None,
) -> Path:
    """Evaluate base and tuned (or one model, with `base_model=None`) on the test split and the suites.

    Without `endpoint`, medtune's own server is started on loopback with the recipe's models. With one, the
    models named `model` (default "tuned") and `base_model` are asked there (the base at `base_endpoint` if set);
    every server is contacted and its models identified (see `endpoint_identity`) before the cache is read.
    `cache_tag` (default eval.cache_tag) names the served checkpoint in cache keys instead of probing.
    """
    config = recipe.eval
    items, suites = collect_items(recipe)
    glossary = recipe_glossary(recipe)
    out = recipe.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    cache_on = config.cache if use_cache is None else use_cache
    cache = GenerationCache(out / CACHE_FILE if cache_on else None)
    workers = concurrency or config.concurrency
    tag = cache_tag or config.cache_tag

    with ExitStack() as stack:
        if endpoint is None:
            local = _LocalServer(recipe, stack)
            served, keyed_by = _local_models(recipe, local, tag)
            tuned_source = recipe.merged_dir if config.tuned == "merged" else recipe.adapter_dir
            described = {"base": recipe.model.base, "tuned": str(tuned_source)}
        else:
            served, keyed_by = _endpoint_models(endpoint, api_key, model, base_model, base_endpoint, tag, cache_on)
            described = {role: f"{s.name} @ {s.client.base_url}" for role, s in served.items()}
            where = served["tuned"].client.base_url
        answers: dict[str, list[Answer]] = {}
        scoring: dict[str, bool] = {}
        for role, one in served.items():
            answers[role], scoring[role] = ask(one, items, config.max_new_tokens, config.batch_size, cache, workers)
        judged = _judge(recipe, items, answers, cache, workers) if config.judge and len(served) == 2 else None
        if endpoint is None:
            where = local.base_url or "http://127.0.0.1 (not started: every answer came from the cache)"

    settings = {
        "max_new_tokens": config.max_new_tokens, "temperature": 0.0, "concurrency": workers,
        "bootstrap_resamples": config.bootstrap_resamples, "confidence": config.confidence, "seed": config.seed,
        "min_paired_examples": config.min_paired_examples, "examples_shown": config.examples_shown,
        "glossary": (config.glossary or "bundled sample") if glossary else None,
    }
    report = build_report(recipe.name, items, suites, answers, glossary, settings, scoring)
    report.update({
        "endpoint": where, "models": described, "judge": judged,
        "cache": {"enabled": cache_on, "hits": cache.hits, "misses": cache.misses, "entries": len(cache),
                  "keyed_by": keyed_by},
    })
    _write_outputs(out, report, items, answers)
    write_resolved(recipe, out)
    return out


def _write_outputs(out: Path, report: dict[str, Any], items: Sequence[EvalItem],
                   answers: dict[str, list[Answer]]) -> None:
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")
    (out / REPORT_HTML).write_text(render_html(report), encoding="utf-8")
    with (out / GENERATIONS).open("w", encoding="utf-8") as handle:
        for role, rows in answers.items():
            for item, answer in zip(items, rows, strict=True):
                handle.write(json.dumps({
                    "model": role, "id": item.id, "task": item.task, "lang": item.lang,
                    "reference": item.reference if item.reference is not None else _expected(item),
                    "prediction": answer.text, "finish_reason": answer.finish_reason,
                    "completion_tokens": answer.completion_tokens, "nll": answer.nll, "tokens": answer.tokens,
                }, ensure_ascii=False) + "\n")


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


def _judge(
    recipe: Recipe, items: Sequence[EvalItem], answers: dict[str, list[Answer]], cache: GenerationCache,
    concurrency: int,
) -> dict[str, Any]:
    from finetune.eval._judge import judge_answers

    config = recipe.eval.judge
    assert config is not None
    key = None
    if config.api_key_env:
        key = os.environ.get(config.api_key_env)
        if not key:
            raise RecipeError(f"eval.judge.api_key_env: environment variable {config.api_key_env} is not set")
    chosen = _spread([n for n, i in enumerate(items) if i.kind in ("free_text", "safety")], items,
                     config.max_items)
    client = APIClient(config.endpoint, key)
    identity, _ = _identify(client, config.model, None, cache.path is not None)
    judge = ServedModel("judge", config.model, identity, lambda: client)
    return judge_answers(
        judge, [items[n] for n in chosen], [answers["base"][n].text for n in chosen],
        [answers["tuned"][n].text for n in chosen], cache, concurrency, config.max_tokens,
        recipe.eval.bootstrap_resamples, recipe.eval.confidence, recipe.eval.seed, recipe.eval.min_paired_examples,
    )


def _spread(indices: list[int], items: Sequence[EvalItem], limit: int | None) -> list[int]:
    """Up to `limit` items, taken in turn from each task so that no task crowds the others out."""
    if limit is None or len(indices) <= limit:
        return indices
    by_task: dict[str, list[int]] = {}
    for n in indices:
        by_task.setdefault(items[n].task, []).append(n)
    chosen: list[int] = []
    queues = list(by_task.values())
    while len(chosen) < limit:
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return sorted(chosen)
