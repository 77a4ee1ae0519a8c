"""The GRPO and DPO parts of the recipe: tasks that fit each objective, whole answer groups, known rewards."""

from __future__ import annotations

import typing

import pytest

from finetune.recipe import RecipeError, validate_recipe
from finetune.recipe._train import RewardName
from finetune.train._rewards import REWARD_NAMES


def _raw(objective: str, sources: list[dict], **train: object) -> dict:
    return {"name": "t", "output_dir": "runs/t", "model": {"base": "some/base"},
            "data": {"sources": sources, "quality": {"max_tokens": 1024}},
            "train": {"objective": objective, "max_length": 1024, **train}}


def test_grpo_takes_tasks_with_a_checkable_answer_only() -> None:
    recipe = validate_recipe(_raw("grpo", [{"lang": "ru", "format": "exam"},
                                           {"lang": "kk", "tasks": ["icd10_coding"]}], gradient_accumulation_steps=4))
    assert recipe.train.grpo.num_generations == 4
    with pytest.raises(RecipeError, match=r"structured_summary, lab_explanation have no checkable answer"):
        validate_recipe(_raw("grpo", [{"lang": "ru"}], gradient_accumulation_steps=4))


def test_grpo_batches_hold_whole_groups_of_answers() -> None:
    with pytest.raises(RecipeError, match=r"\(6\) counts GRPO's answers and must be a multiple of .*\(4\)"):
        validate_recipe(_raw("grpo", [{"lang": "ru", "format": "exam"}], per_device_train_batch_size=2,
                             gradient_accumulation_steps=3))


def test_rewards_are_named_and_weighted() -> None:
    assert set(typing.get_args(RewardName)) == set(REWARD_NAMES)
    with pytest.raises(RecipeError, match=r"train\.grpo\.rewards\.optionletter"):
        validate_recipe(_raw("grpo", [{"lang": "ru", "format": "exam"}], gradient_accumulation_steps=4,
                             grpo={"rewards": {"optionletter": 1.0}}))
    with pytest.raises(RecipeError, match="at least one reward with a non-zero weight"):
        validate_recipe(_raw("grpo", [{"lang": "ru", "format": "exam"}], gradient_accumulation_steps=4,
                             grpo={"rewards": {"language": 0.0}}))


def test_dpo_takes_preference_pairs_only() -> None:
    with pytest.raises(RecipeError, match="DPO trains on preference pairs"):
        validate_recipe(_raw("dpo", [{"lang": "ru", "format": "exam"}]))
    assert validate_recipe(_raw("dpo", [])).train.dpo.beta == 0.1
