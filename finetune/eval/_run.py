"""Before/after evaluation: the test split and benchmark suites, sent through the serving API for base and tuned.

The evaluator is an HTTP client: it talks to medtune's OpenAI-compatible server (started here on loopback
unless an endpoint is given) or to any other one (vLLM, Ollama), so the numbers describe the model as it is
served. It writes report.{json,md,html} and generations.jsonl to the recipe's eval directory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from data_prep.files import write_jsonl
from finetune.eval._ask import ask
from finetune.eval._cache import GenerationCache
from finetune.eval._judge import judge_for_recipe
from finetune.eval._metrics import Answer, GlossaryTerm
from finetune.eval._report_html import render_html
from finetune.eval._report_md import render_markdown
from finetune.eval._served import serve_models
from finetune.eval._suite_files import bundled_glossary_path, load_glossary
from finetune.eval._suites import EvalItem, load_suite, load_test_split
from finetune.eval._summary import build_report, expected_answer
from finetune.recipe import Recipe, suite_label, write_resolved

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
GENERATIONS = "generations.jsonl"
CACHE_FILE = "cache.jsonl"


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

    with ExitStack() as stack:
        served = serve_models(recipe, stack, endpoint, api_key, model, base_model, base_endpoint,
                              cache_tag or config.cache_tag, cache_on)
        answers: dict[str, list[Answer]] = {}
        scoring: dict[str, bool] = {}
        for role, one in served.models.items():
            answers[role], scoring[role] = ask(one, items, config.max_new_tokens, config.batch_size, cache, workers)
        judged = (judge_for_recipe(recipe, items, answers, cache, workers)
                  if config.judge and len(served.models) == 2 else None)
        where = served.where()

    report = build_report(recipe.name, items, suites, answers, glossary, _settings(recipe, workers, glossary),
                          scoring)
    report.update({
        "endpoint": where, "models": served.described, "judge": judged,
        "cache": {"enabled": cache_on, "hits": cache.hits, "misses": cache.misses, "entries": len(cache),
                  "keyed_by": served.keyed_by},
    })
    _write_outputs(out, report, items, answers)
    write_resolved(recipe, out)
    return out


def _settings(recipe: Recipe, workers: int, glossary: Sequence[GlossaryTerm]) -> dict[str, Any]:
    """The settings the report states, as the run used them."""
    config = recipe.eval
    return {
        "max_new_tokens": config.max_new_tokens, "temperature": 0.0, "concurrency": workers,
        "bootstrap_resamples": config.bootstrap_resamples, "confidence": config.confidence, "seed": config.seed,
        "min_paired_examples": config.min_paired_examples, "examples_shown": config.examples_shown,
        "glossary": (config.glossary or "bundled sample") if glossary else None,
    }


def _write_outputs(out: Path, report: dict[str, Any], items: Sequence[EvalItem],
                   answers: dict[str, list[Answer]]) -> None:
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")
    (out / REPORT_HTML).write_text(render_html(report), encoding="utf-8")
    write_jsonl(out / GENERATIONS, _generations(items, answers))


def _generations(items: Sequence[EvalItem], answers: dict[str, list[Answer]]) -> Iterator[dict[str, Any]]:
    """Every answer of every model with the item it answers, for reading answers side by side (and for a reviewer's
    `preferred` marks, which data prep turns into DPO pairs: `format: preference`)."""
    for role, rows in answers.items():
        for item, answer in zip(items, rows, strict=True):
            yield {
                "model": role, "id": item.id, "task": item.task, "lang": item.lang, "prompt": item.prompt,
                "reference": item.reference if item.reference is not None else expected_answer(item),
                "prediction": answer.text, "finish_reason": answer.finish_reason,
                "completion_tokens": answer.completion_tokens, "nll": answer.nll, "tokens": answer.tokens,
            }
