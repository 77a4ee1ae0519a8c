"""GRPO on the demo: mean reward at the start and end of the run (training_metrics.json), and the same rewards on
the held-out validation prompts for the SFT adapter it started from and the GRPO adapter, sampled alike.

    python scripts/bench_grpo.py recipes/tiny-demo-grpo.yaml [--samples 4] [key=value ...]

Run `medtune run recipes/tiny-demo.yaml` and `medtune train recipes/tiny-demo-grpo.yaml` first. Prints numbers only.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from finetune.recipe import load_recipe
from finetune.serve._engine import ChatModel
from finetune.train._grpo import load_prompt_rows
from finetune.train._rewards import reward_functions


def _window(history: list[dict], steps: int, last: bool) -> float:
    rewards = [entry["reward"] for entry in history if "reward" in entry]
    chosen = rewards[-steps:] if last else rewards[:steps]
    return statistics.mean(chosen)


def held_out_rewards(recipe, adapter: Path, samples: int) -> dict[str, float]:
    """Mean of each weighted reward over `samples` answers to every validation prompt (seeded, as for both)."""
    rows = load_prompt_rows(recipe.data_dir / "validation.jsonl")
    grpo = recipe.train.grpo
    functions, weights = reward_functions(grpo.rewards, grpo.max_answer_chars)
    model = ChatModel.load(recipe.model.base, adapter=adapter)
    totals: dict[str, list[float]] = {f.__name__: [] for f in functions}
    totals["reward"] = []
    for index, row in enumerate(rows):
        answers = [model.generate([row["prompt"]], max_new_tokens=grpo.max_completion_length,
                                  temperature=grpo.temperature, seed=1000 * index + k)[0].text for k in range(samples)]
        columns = {"reference": [row["reference"]] * samples, "lang": [row["lang"]] * samples}
        scored = [f(completions=answers, **columns) for f in functions]
        for function, values in zip(functions, scored, strict=True):
            totals[function.__name__].extend(values)
        totals["reward"].extend(sum(w * v[i] for w, v in zip(weights, scored, strict=True)) for i in range(samples))
    return {name: round(statistics.mean(values), 3) for name, values in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--window", type=int, default=3, help="logged rewards averaged at each end of the run")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.overrides)
    metrics = json.loads((recipe.adapter_dir / "training_metrics.json").read_text(encoding="utf-8"))
    history = metrics["log_history"]
    logged = [entry for entry in history if "reward" in entry]
    report = {
        "steps": metrics["global_steps"],
        "runtime_seconds": metrics["runtime_seconds"],
        "train_reward_start": round(_window(history, args.window, last=False), 3),
        "train_reward_end": round(_window(history, args.window, last=True), 3),
        "tokens_per_second": round(statistics.mean(entry["tokens_per_second"] for entry in logged), 1),
        "peak_rss_gib": max(entry["peak_memory_gib"] for entry in logged),
        "held_out_sft": held_out_rewards(recipe, recipe.start_from, args.samples),
        "held_out_sft_grpo": held_out_rewards(recipe, recipe.adapter_dir, args.samples),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
