"""A recipe that chains continued pretraining and SFT in one `medtune run` (the pretrain stage of the table)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune import stages
from finetune.errors import StageInputError
from finetune.train import start_kind, with_start_base

SHORT = {
    "max_steps": 2, "eval_steps": 2, "early_stopping_patience": None,
    "load_best_model_at_end": False, "logging_steps": 1, "per_device_train_batch_size": 2,
}


def chained_recipe(recipe_factory, out: Path, base: Path, hand_over: str):
    return recipe_factory(
        out, base,
        data={"sources": [{"lang": "ru"}], "split": {"validation": 0.2, "test": 0.2, "seed": 3}},
        train=SHORT,
        pretrain={
            "data": {"sources": [{"lang": "ru", "tasks": ["text"]}], "split": {"validation": 0.2, "test": 0.0},
                     "quality": {"max_tokens": None}},
            "train": {"objective": "completion", "learning_rate": 1e-2, "max_length": 128, **SHORT},
            "hand_over": hand_over,
        },
        export={"enabled": False},
        eval={"tuned": "adapter", "max_examples": 2, "max_new_tokens": 4, "suites": []},
    )


@pytest.mark.parametrize("hand_over", ["adapter", "merged"])
def test_pretrain_then_sft_in_one_run(tmp_path: Path, tiny_model_dir: Path, recipe_factory, hand_over: str) -> None:
    recipe = chained_recipe(recipe_factory, tmp_path / "run", tiny_model_dir, hand_over)
    assert [stage.name for stage in stages.STAGES if stage.in_run(recipe)][:3] == ["pretrain", "prepare", "train"]
    with pytest.raises(StageInputError, match="run its pretrain stage first"):
        stages.run_stage("train", recipe)  # SFT cannot start before the pretraining it starts from
    eval_dir = stages.run_all(recipe)

    pretrain = recipe.root / "pretrain"
    rows = [json.loads(line) for line in (pretrain / "data" / "train.jsonl").open(encoding="utf-8")]
    assert rows and all(set(row) == {"text", "meta"} for row in rows)
    cpt = json.loads((pretrain / "adapter" / "training_metrics.json").read_text(encoding="utf-8"))
    assert cpt["objective"] == "completion" and cpt["global_steps"] == 2
    sft = json.loads((recipe.adapter_dir / "provenance.json").read_text(encoding="utf-8"))
    assert sft["objective"] == "sft"
    assert sft["start_from"] == str(pretrain / hand_over)
    assert start_kind(pretrain / hand_over) == hand_over
    if hand_over == "merged":  # the merged weights are the base of SFT, export and eval
        assert sft["base_model"] == str(pretrain / "merged")
        assert with_start_base(recipe).model.base == str(pretrain / "merged")
    else:  # one adapter on model.base that carries on from the pretraining adapter
        assert sft["base_model"] == str(tiny_model_dir)
        config = json.loads((recipe.adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
        assert config["r"] == 8
    report = json.loads((eval_dir / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["all"]["tuned"]["examples"] == 2
