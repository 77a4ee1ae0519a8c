"""Runs that stop: resumed after a kill, stopped on a non-finite loss, stopped early with the best checkpoint kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

from finetune.cli._commands import main
from finetune.train._sft import METRICS_NAME, train
from finetune.train._trainer import NonFiniteLossError

ADAPTER = "adapter_model.safetensors"
FP32 = {"load_in_4bit": False}  # the loop guards do not depend on 4-bit weights; fp32 is faster on CPU


class Killed(Exception):
    """Stands for the process being killed: nothing after it runs."""


class KillAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):  # after checkpoint `step` was written
        if state.global_step == self.step:
            raise Killed


class PoisonAfter(TrainerCallback):
    """Turns one LoRA weight into NaN after `step`, as a diverging run would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            weight = next(p for name, p in model.named_parameters() if "lora_B" in name)
            with torch.no_grad():
                weight.fill_(float("nan"))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in load_file(str(path)).items()}


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_a_killed_run_resumes_to_the_same_adapter(tmp_path: Path, tiny_model_dir: Path, short_recipe) -> None:
    settings = {"max_steps": 4, "eval_steps": 2, "early_stopping_patience": None}
    whole = train(short_recipe(tmp_path / "whole", tiny_model_dir, **settings))

    recipe = short_recipe(tmp_path / "killed", tiny_model_dir, **settings)
    with pytest.raises(Killed):
        train(recipe, callbacks=[KillAt(2)])
    checkpoints = recipe.adapter_dir / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (recipe.adapter_dir / ADAPTER).exists()

    resumed = train(recipe, resume=True)
    metrics = json.loads((resumed / METRICS_NAME).read_text())
    assert metrics["global_steps"] == 4
    assert [e["step"] for e in metrics["log_history"] if "loss" in e][-2:] == [3, 4], "steps 3-4 ran after resume"
    assert _max_difference(_weights(whole / ADAPTER), _weights(resumed / ADAPTER)) < 1e-4
    assert _max_difference(_weights(whole / ADAPTER), _weights(checkpoints / "checkpoint-2" / ADAPTER)) > 1e-3


def test_resume_without_a_checkpoint_says_so(tmp_path: Path, tiny_model_dir: Path, short_recipe,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    recipe = short_recipe(tmp_path, tiny_model_dir)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    assert main(["train", str(path), "--resume"]) == 2
    assert "--resume: no checkpoint in" in capsys.readouterr().err


def test_a_non_finite_loss_stops_the_run_with_its_step_and_cause(tmp_path: Path, tiny_model_dir: Path,
                                                                 short_recipe) -> None:
    recipe = short_recipe(tmp_path, tiny_model_dir, model=FP32, max_steps=5)
    with pytest.raises(NonFiniteLossError) as error:
        train(recipe, callbacks=[PoisonAfter(2)])
    message = str(error.value)
    assert "became NaN at step 3" in message
    assert "lower train.learning_rate (now 0.003)" in message
    assert not (recipe.adapter_dir / ADAPTER).exists(), "a poisoned adapter is never written"


def test_early_stopping_keeps_the_best_checkpoint_not_the_last(tmp_path: Path, tiny_model_dir: Path,
                                                               short_recipe) -> None:
    # A step size this large makes the validation loss rise after the first step.
    recipe = short_recipe(tmp_path, tiny_model_dir, model=FP32, max_steps=6, eval_steps=1, learning_rate=0.3,
                          early_stopping_patience=1)
    adapter = train(recipe)
    metrics = json.loads((adapter / METRICS_NAME).read_text())
    evals = [e["eval_loss"] for e in metrics["log_history"] if "eval_loss" in e]
    assert metrics["stopped_early"] and metrics["global_steps"] == 2, "one evaluation without improvement is enough"
    assert evals[1] > evals[0]
    assert metrics["best_checkpoint"] == "checkpoint-1" and metrics["best_eval_loss"] == pytest.approx(evals[0])
    assert metrics["eval_loss"] == pytest.approx(evals[0], abs=1e-2), "the adapter written is the best one"
    checkpoints = adapter / "checkpoints"
    assert _max_difference(_weights(adapter / ADAPTER), _weights(checkpoints / "checkpoint-1" / ADAPTER)) == 0
    assert _max_difference(_weights(adapter / ADAPTER), _weights(checkpoints / "checkpoint-2" / ADAPTER)) > 1e-3
