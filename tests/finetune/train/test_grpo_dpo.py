"""GRPO and DPO on the tiny model: a few steps each, an adapter the server loads, rewards that see the decoded
answers of the right example, DPO continuing an earlier adapter, and bad rows refused with their line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors import safe_open

from finetune.serve._engine import ChatModel
from finetune.train import train
from finetune.train._data import TrainingDataError
from finetune.train._dpo import load_pair_rows
from finetune.train._grpo import load_prompt_rows

FP32 = {"load_in_4bit": False}  # the loop does not depend on 4-bit weights; fp32 is faster on CPU
QUESTIONS = [
    ("Что вызывает гастрит?", {"A": "Вирус гриппа", "B": "Helicobacter pylori"}, "B", "ru"),
    ("Қан қысымы 150/95 жоғары ма?", {"A": "Иә", "B": "Жоқ"}, "A", "kk"),
    ("高血压的诊断标准是什么？", {"A": "140/90 mmHg", "B": "100/60 mmHg"}, "A", "zh"),
    ("Норма пульса у взрослого?", {"A": "60–90 в минуту", "B": "120–160 в минуту"}, "A", "ru"),
]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _prompt_rows() -> list[dict]:
    rows = []
    for index, (question, options, answer, lang) in enumerate(QUESTIONS):
        user = f"[{index}] {question}\n" + "\n".join(f"{label}) {text}" for label, text in options.items())
        rows.append({"messages": [{"role": "system", "content": "Вы — врач."}, {"role": "user", "content": user}],
                     "meta": {"id": str(index), "lang": lang, "task": "multiple_choice",
                              "reference": {"kind": "choice", "answer": answer, "options": options, "index": index}}})
    return rows


def _grpo_recipe(recipe_factory, out: Path, base: Path, **train: object):
    settings = {"objective": "grpo", "max_steps": 2, "per_device_train_batch_size": 4, "max_length": 128,
                "gradient_accumulation_steps": 1, "logging_steps": 1, "save_total_limit": 1,
                "grpo": {"num_generations": 4, "max_completion_length": 6,
                         "rewards": {"option_letter": 1.0, "language": 0.5}}, **train}
    recipe = recipe_factory(out, base, model=FP32, lora={"r": 4, "alpha": 8}, train=settings,
                            data={"quality": {"max_tokens": 128},
                                  "sources": [{"lang": "ru", "tasks": ["icd10_coding"]}]})
    _write(recipe.data_dir / "train.jsonl", _prompt_rows())
    _write(recipe.data_dir / "validation.jsonl", _prompt_rows()[:1])
    return recipe


def _adapter_keys(adapter: Path) -> list[str]:
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        return list(weights.keys())


def test_grpo_rewards_see_each_decoded_answer_with_its_own_example_and_the_adapter_serves(
    tmp_path: Path, tiny_model_dir: Path, recipe_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from finetune.train import _grpo

    seen: list[tuple[str, str, dict]] = []
    real = _grpo.reward_functions

    def recording(weights, max_chars):
        functions, weight_list = real(weights, max_chars)

        def spy(prompts, completions, reference, **columns):
            for prompt, completion, ref in zip(prompts, completions, reference, strict=True):
                seen.append((prompt[-1]["content"], completion[0]["content"], json.loads(ref)))
            return [0.0] * len(completions)

        return [*functions, spy], [*weight_list, 0.0]

    monkeypatch.setattr(_grpo, "reward_functions", recording)
    recipe = _grpo_recipe(recipe_factory, tmp_path / "grpo", tiny_model_dir)
    adapter = train(recipe)

    assert len(seen) >= 2 * 4  # two steps of four answers (plus the evaluations)
    for prompt, completion, reference in seen:
        assert prompt.startswith(f"[{reference['index']}] ")  # the reference of the example that was asked
        assert isinstance(completion, str)  # decoded text, not token ids
    metrics = json.loads((adapter / "training_metrics.json").read_text(encoding="utf-8"))
    assert metrics["objective"] == "grpo" and metrics["global_steps"] == 2
    assert list(metrics["best_metric"]) == ["eval_reward"] and metrics["eval_perplexity"] is None
    logged = [entry for entry in metrics["log_history"] if "reward" in entry]
    assert logged and all("rewards/option_letter/mean" in entry and "tokens_per_second" in entry for entry in logged)
    assert all(".lora_" in key for key in _adapter_keys(adapter))
    served = ChatModel.load(recipe.model.base, adapter=adapter, name="tuned")
    assert isinstance(served.chat([{"role": "user", "content": "Норма пульса?"}], max_new_tokens=4), str)


def _pairs() -> list[dict]:
    rows = []
    for question, options, answer, _ in QUESTIONS:
        wrong = next(label for label in options if label != answer)
        rows.append({"messages": [{"role": "user", "content": question},
                                  {"role": "assistant", "content": f"Ответ: {answer}) {options[answer]}"}],
                     "meta": {"rejected": f"Ответ: {wrong}) {options[wrong]}"}})
    return rows


def _weights(adapter: Path) -> dict:
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        return {key: weights.get_tensor(key) for key in weights.keys()}  # noqa: SIM118


def test_dpo_continues_an_sft_adapter_and_writes_one_adapter_the_server_loads(
    tmp_path: Path, tiny_model_dir: Path, short_recipe, recipe_factory
) -> None:
    sft = train(short_recipe(tmp_path / "sft", tiny_model_dir, model=FP32))
    recipe = recipe_factory(
        tmp_path / "dpo", tiny_model_dir, model=FP32, lora={"r": 4, "alpha": 8},
        data={"quality": {"max_tokens": 128}, "sources": []},
        train={"objective": "dpo", "start_from": str(sft), "max_steps": 2, "per_device_train_batch_size": 2,
               "max_length": 128, "logging_steps": 1, "learning_rate": 1e-2},
    )
    _write(recipe.data_dir / "train.jsonl", _pairs())
    _write(recipe.data_dir / "validation.jsonl", _pairs()[:2])
    adapter = train(recipe)

    metrics = json.loads((adapter / "training_metrics.json").read_text(encoding="utf-8"))
    assert metrics["objective"] == "dpo" and metrics["global_steps"] == 2
    assert any("rewards/margins" in entry for entry in metrics["log_history"])
    before, after = _weights(sft), _weights(adapter)
    assert before.keys() == after.keys()  # the SFT adapter went on training: same layers, no reference copy
    assert any(not (before[key] == after[key]).all() for key in before)
    assert not (adapter / "ref").exists()
    served = ChatModel.load(recipe.model.base, adapter=adapter, name="tuned")
    assert isinstance(served.chat([{"role": "user", "content": "Норма пульса?"}], max_new_tokens=4), str)


def test_pairs_with_a_missing_or_identical_side_are_refused_with_their_line(tmp_path: Path) -> None:
    good = _pairs()[0]
    same = {"messages": good["messages"], "meta": {"rejected": good["messages"][-1]["content"]}}
    _write(tmp_path / "same.jsonl", [good, same])
    with pytest.raises(TrainingDataError, match=r"same\.jsonl:2: the chosen and rejected answers are the same"):
        load_pair_rows(tmp_path / "same.jsonl")
    _write(tmp_path / "missing.jsonl", [good, good, {"messages": good["messages"], "meta": {}}])
    with pytest.raises(TrainingDataError, match=r"missing\.jsonl:3: meta\.rejected .* is missing"):
        load_pair_rows(tmp_path / "missing.jsonl")


def test_grpo_rows_need_a_reference(tmp_path: Path) -> None:
    rows = _prompt_rows()
    del rows[1]["meta"]["reference"]
    _write(tmp_path / "train.jsonl", rows)
    with pytest.raises(TrainingDataError, match=r"train\.jsonl:2: meta\.reference is missing"):
        load_prompt_rows(tmp_path / "train.jsonl")
    answered = _prompt_rows()[:1]
    answered[0]["messages"].append({"role": "assistant", "content": "Ответ: B"})  # a test split's row
    _write(tmp_path / "test.jsonl", answered)
    assert [m["role"] for m in load_prompt_rows(tmp_path / "test.jsonl")[0]["prompt"]] == ["system", "user"]


def test_vllm_generation_is_refused_off_gpu_before_anything_loads(tmp_path: Path, recipe_factory) -> None:
    from finetune.errors import StageInputError
    from finetune.train._grpo import build_grpo_trainer

    recipe = _grpo_recipe(recipe_factory, tmp_path / "vllm", tmp_path / "no-model-here",
                          grpo={"num_generations": 4, "use_vllm": True})
    with pytest.raises(StageInputError, match="vLLM generates on a CUDA GPU only"):
        build_grpo_trainer(recipe)
