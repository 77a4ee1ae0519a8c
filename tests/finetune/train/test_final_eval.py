"""The adapter's validation metrics come from the evaluation of the model that was kept, not a repeated one."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import TrainerCallback

from finetune.train._sft import METRICS_NAME, train


class CountEvaluations(TrainerCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_evaluate(self, args, state, control, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.steps.append(state.global_step)


def test_the_kept_checkpoint_is_not_evaluated_twice(tmp_path: Path, tiny_model_dir: Path, short_recipe) -> None:
    recipe = short_recipe(tmp_path, tiny_model_dir, model={"load_in_4bit": False}, max_steps=2, eval_steps=1,
                          early_stopping_patience=None)
    counter = CountEvaluations()
    adapter = train(recipe, callbacks=[counter])
    assert counter.steps == [1, 2]  # one evaluation per interval, none after training
    metrics = json.loads((adapter / METRICS_NAME).read_text())
    best_step = int(metrics["best_checkpoint"].rsplit("-", 1)[-1])
    logged = [e["eval_loss"] for e in metrics["log_history"] if "eval_loss" in e and e["step"] == best_step]
    assert metrics["eval_loss"] == metrics["best_eval_loss"] == logged[0]
