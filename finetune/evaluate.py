"""Before/after evaluation of the test split, sent through the serving API for base and tuned alike.

The evaluator is an HTTP client: it talks to medtune's OpenAI-compatible server (started here on loopback
unless an endpoint is given), so the numbers describe the model as it is served.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from openai import OpenAI
from sacrebleu.metrics import CHRF

from finetune.recipe import Recipe, write_resolved
from finetune.train import StageInputError

MODEL_NAMES = ("base", "tuned")
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def load_test_examples(data_dir: Path, limit: int | None = None) -> list[dict[str, Any]]:
    path = data_dir / "test.jsonl"
    if not path.is_file():
        raise StageInputError(f"{path} is missing: run `medtune prepare` for this recipe first")
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    if not rows:
        raise StageInputError(f"{path} holds no examples")
    return rows[:limit] if limit else rows


def _prompt_and_reference(example: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """Everything before the last assistant turn is the prompt; that turn is the reference answer."""
    messages = example["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return messages[:last], messages[last]["content"]


class APIClient:
    """The few calls evaluation makes, over HTTP."""

    def __init__(self, base_url: str, api_key: str | None = None, concurrency: int = 4) -> None:
        self.openai = OpenAI(base_url=f"{base_url}/v1", api_key=api_key or "unused", max_retries=0, timeout=600)
        self.http = httpx.Client(base_url=base_url, timeout=600,
                                 headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
        self.concurrency = concurrency

    def generate(self, model: str, prompts: list[list[dict[str, Any]]], max_tokens: int) -> list[str]:
        def one(messages: list[dict[str, Any]]) -> str:
            response = self.openai.chat.completions.create(
                model=model, messages=messages, max_tokens=max_tokens, temperature=0.0  # type: ignore[arg-type]
            )
            return response.choices[0].message.content or ""

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(one, prompts))

    def score(self, model: str, conversations: list[list[dict[str, Any]]], batch_size: int) -> list[dict]:
        results: list[dict] = []
        for start in range(0, len(conversations), batch_size):
            response = self.http.post(
                "/v1/score", json={"model": model, "conversations": conversations[start : start + batch_size]}
            )
            response.raise_for_status()
            results.extend(response.json()["data"])
        return results


def _group_metrics(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    nll = sum(r["nll"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    loss = nll / tokens if tokens else float("nan")
    chrf = CHRF().corpus_score([r["prediction"] for r in rows], [[r["reference"] for r in rows]]).score
    return {
        "examples": len(rows),
        "assistant_tokens": tokens,
        "loss": loss,
        "perplexity": math.exp(loss) if tokens else float("nan"),
        "chrf": chrf,
        "mean_answer_chars": sum(len(r["prediction"]) for r in rows) / max(len(rows), 1),
    }


def summarise(per_example: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Metrics per language and overall, for each model, with tuned − base differences."""
    languages = sorted({row["lang"] for rows in per_example.values() for row in rows})
    groups: dict[str, dict[str, Any]] = defaultdict(dict)
    for name, rows in per_example.items():
        groups["all"][name] = _group_metrics(rows)
        for lang in languages:
            groups[lang][name] = _group_metrics(r for r in rows if r["lang"] == lang)
    for metrics in groups.values():
        if "base" in metrics and "tuned" in metrics:
            metrics["delta"] = {
                key: metrics["tuned"][key] - metrics["base"][key] for key in ("loss", "perplexity", "chrf")
            }
    return dict(groups)


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation: {report['recipe']}",
        "",
        f"Test examples: {report['examples']}. Base: `{report['models']['base']}`. "
        f"Tuned: `{report['models']['tuned']}`. Served through `{report['endpoint']}`.",
        "",
        "Loss is the mean negative log-likelihood of the reference answer's tokens (assistant turns only); "
        "chrF compares greedy generations with the reference (character n-grams, so it suits Chinese too).",
        "",
        "| group | n | loss base | loss tuned | Δ loss | ppl base | ppl tuned | chrF base | chrF tuned | Δ chrF |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group, metrics in report["metrics"].items():
        base, tuned, delta = metrics["base"], metrics["tuned"], metrics["delta"]
        lines.append(
            f"| {group} | {base['examples']} | {base['loss']:.3f} | {tuned['loss']:.3f} | {delta['loss']:+.3f} | "
            f"{base['perplexity']:.1f} | {tuned['perplexity']:.1f} | {base['chrf']:.1f} | {tuned['chrf']:.1f} | "
            f"{delta['chrf']:+.1f} |"
        )
    return "\n".join(lines) + "\n"


def run_evaluation(
    client: APIClient, examples: list[dict[str, Any]], max_new_tokens: int, batch_size: int
) -> dict[str, list[dict[str, Any]]]:
    prompts, references = zip(*(_prompt_and_reference(e) for e in examples), strict=True)
    per_example: dict[str, list[dict[str, Any]]] = {}
    for name in MODEL_NAMES:
        predictions = client.generate(name, list(prompts), max_new_tokens)
        scores = client.score(name, [e["messages"] for e in examples], batch_size)
        per_example[name] = [
            {
                "id": example.get("meta", {}).get("id", str(index)),
                "lang": example.get("meta", {}).get("lang", "unknown"),
                "task": example.get("meta", {}).get("task", "unknown"),
                "reference": reference,
                "prediction": prediction,
                "nll": score["nll"],
                "tokens": score["tokens"],
            }
            for index, (example, reference, prediction, score) in enumerate(
                zip(examples, references, predictions, scores, strict=True)
            )
        ]
    return per_example


def evaluate(recipe: Recipe, endpoint: str | None = None, api_key: str | None = None) -> Path:
    """Evaluate base and tuned on the test split; writes report.{json,md} and the generations."""
    examples = load_test_examples(recipe.data_dir, recipe.eval.max_examples)
    if endpoint is None:
        per_example, served = _evaluate_locally(recipe, examples)
    else:
        client = APIClient(endpoint.rstrip("/"), api_key)
        per_example = run_evaluation(client, examples, recipe.eval.max_new_tokens, recipe.eval.batch_size)
        served = endpoint
    out = recipe.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    tuned_source = recipe.merged_dir if recipe.eval.tuned == "merged" else recipe.adapter_dir
    report = {
        "recipe": recipe.name,
        "examples": len(examples),
        "endpoint": served,
        "models": {"base": recipe.model.base, "tuned": str(tuned_source)},
        "metrics": summarise(per_example),
    }
    (out / REPORT_JSON).write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / REPORT_MD).write_text(render_markdown(report), encoding="utf-8")
    with (out / "generations.jsonl").open("w", encoding="utf-8") as handle:
        for name, rows in per_example.items():
            for row in rows:
                handle.write(json.dumps({"model": name, **row}, ensure_ascii=False) + "\n")
    write_resolved(recipe, out)
    return out


def _evaluate_locally(
    recipe: Recipe, examples: list[dict[str, Any]]
) -> tuple[dict[str, list[dict[str, Any]]], str]:
    from finetune.serve import BackgroundServer, create_app, models_for_recipe

    app = create_app(models_for_recipe(recipe), default_max_tokens=recipe.eval.max_new_tokens)
    with BackgroundServer(app) as server:
        client = APIClient(server.base_url)
        per_example = run_evaluation(client, examples, recipe.eval.max_new_tokens, recipe.eval.batch_size)
        return per_example, server.base_url
