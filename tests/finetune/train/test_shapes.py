"""Both MedGemma shapes on tiny models of the same classes: text-only and image+text SFT on the multimodal class.

The 27B text shape (`Gemma3ForCausalLM`) is the `trained_recipe` fixture's model and is covered by the training tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageDraw
from safetensors import safe_open
from trl.chat_template_utils import gemma3_training_chat_template

from finetune.models._gemma import AssistantMaskError
from finetune.train._data import TrainingDataError, load_chat_rows
from finetune.train._sft import METRICS_NAME, build_trainer, train

REPORTS = [
    "Лёгочные поля прозрачные, очаговых теней нет. Синусы свободны.",
    "Справа в нижней доле инфильтрация. Рекомендована КТ.",
    "Сердце не расширено. Корни лёгких структурны.",
    "Слева плевральный выпот небольшого объёма.",
]


def _xray(path: Path, seed: int) -> None:
    """A synthetic chest radiograph: two dark lung fields on a light background, a bright opacity per seed."""
    image = Image.new("L", (64, 64), 200)
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 10, 30, 56), fill=60)
    draw.ellipse((34, 10, 56, 56), fill=60)
    draw.ellipse((10 + 10 * seed, 30, 20 + 10 * seed, 40), fill=230)
    image.convert("RGB").save(path)


def _image_rows(data_dir: Path) -> None:
    (data_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for seed, report in enumerate(REPORTS):
        _xray(data_dir / "images" / f"cxr-{seed}.png", seed)
        rows.append({"messages": [
            {"role": "system", "content": "Вы — врач-рентгенолог."},
            {"role": "user", "content": [{"type": "image", "image": f"images/cxr-{seed}.png"},
                                         {"type": "text", "text": "Опишите рентгенограмму."}]},
            {"role": "assistant", "content": report},
        ]})
    rows.append({"messages": [{"role": "user", "content": "Что такое плевральный выпот?"},
                              {"role": "assistant", "content": "Жидкость в плевральной полости."}]})
    lines = [json.dumps(row, ensure_ascii=False) for row in rows]
    (data_dir / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (data_dir / "validation.jsonl").write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")


def _adapter_keys(adapter: Path) -> list[str]:
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as weights:
        return list(weights.keys())


def test_text_only_sft_on_the_multimodal_class(tmp_path: Path, tiny_image_text_dir: Path, short_recipe) -> None:
    recipe = short_recipe(tmp_path, tiny_image_text_dir)
    batch = next(iter(build_trainer(recipe).get_train_dataloader()))
    assert "pixel_values" not in batch
    assert torch.equal(batch["token_type_ids"], torch.zeros_like(batch["input_ids"]))

    adapter = train(recipe)
    metrics = json.loads((adapter / METRICS_NAME).read_text())
    assert metrics["global_steps"] == 2 and metrics["packing"] is True
    keys = _adapter_keys(adapter)
    assert keys and all("language_model" in key and "lora_" in key for key in keys)


def test_image_text_sft_through_the_processor_keeps_image_tokens_out_of_the_loss(
    tmp_path: Path, tiny_image_text_dir: Path, short_recipe
) -> None:
    recipe = short_recipe(tmp_path, tiny_image_text_dir, per_device_train_batch_size=5)
    _image_rows(recipe.data_dir)
    trainer = build_trainer(recipe)
    assert trainer.args.packing is False, "TRL packs text only"
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = trainer.processing_class.tokenizer
    image_token = tokenizer.convert_tokens_to_ids("<image_soft_token>")
    markers = [tokenizer.convert_tokens_to_ids(t) for t in ("<start_of_image>", "<end_of_image>", "<image_soft_token>")]

    assert batch["pixel_values"].shape[0] == 4, "one image per report, none for the text-only row"
    is_image = batch["input_ids"] == image_token
    assert int(is_image.sum()) == 4 * 4  # tiny processor: 4 soft tokens per image
    assert torch.equal(batch["token_type_ids"].bool(), is_image)
    assert not bool(torch.isin(batch["input_ids"][batch["labels"] != -100], torch.tensor(markers)).any())
    trained = sorted(tokenizer.decode(row[labels != -100]) for row, labels in zip(batch["input_ids"],
                                                                                 batch["labels"], strict=True))
    expected = sorted(f"{answer}<end_of_turn>\n" for answer in [*REPORTS, "Жидкость в плевральной полости."])
    assert trained == expected, "exactly the answers (and their end-of-turn) are trained"

    adapter = train(recipe)
    metrics = json.loads((adapter / METRICS_NAME).read_text())
    assert metrics["global_steps"] == 2 and metrics["packing"] is False
    assert all(entry["loss"] > 0 for entry in metrics["log_history"] if "loss" in entry)
    assert (adapter / "processor_config.json").is_file(), "the adapter loads with its image processor"
    assert all("language_model" in key for key in _adapter_keys(adapter))


def test_image_rows_need_the_image_text_model(tmp_path: Path, tiny_model_dir: Path, short_recipe) -> None:
    recipe = short_recipe(tmp_path, tiny_model_dir)
    _image_rows(recipe.data_dir)
    with pytest.raises(TrainingDataError, match="text-only model"):
        build_trainer(recipe)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{not json", "train.jsonl:2: not valid JSON"),
        (json.dumps({"messages": [{"role": "user", "content": [{"type": "image", "image": "missing.png"}]}]}),
         "train.jsonl:2: messages[0].content[0].image: no such file"),
        (json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
         "train.jsonl:2: messages[1].role is 'user'"),
        (json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [
            {"type": "image", "image": "images/cxr-0.png"}]}]}), "images belong in user turns"),
        (json.dumps({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}), ".type is 'audio'"),
        (json.dumps({"text": "no messages"}), "train.jsonl:2: expected an object with a 'messages' list"),
    ],
)
def test_bad_training_rows_name_file_line_and_field(tmp_path: Path, line: str, fragment: str) -> None:
    _image_rows(tmp_path)
    good = (tmp_path / "train.jsonl").read_text(encoding="utf-8").splitlines()[0]
    (tmp_path / "train.jsonl").write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(TrainingDataError) as error:
        load_chat_rows(tmp_path / "train.jsonl")
    assert fragment in str(error.value)


def test_a_template_that_leaves_end_of_turn_out_of_the_loss_stops_on_the_first_batch(
    tmp_path: Path, tiny_image_text_dir: Path, short_recipe
) -> None:
    """TRL only warns when a template's generation block leaves out the end-of-turn; medtune stops."""
    base = tmp_path / "base"
    shutil.copytree(tiny_image_text_dir, base)
    end = "{{ '<end_of_turn>\n' }}\n        {%- endgeneration -%}"
    assert end in gemma3_training_chat_template
    (base / "chat_template.jinja").write_text(
        gemma3_training_chat_template.replace(end, "{%- endgeneration -%}\n        {{ '<end_of_turn>\n' }}"),
        encoding="utf-8")
    recipe = short_recipe(tmp_path / "run", base)
    _image_rows(recipe.data_dir)
    trainer = build_trainer(recipe)  # image rows are tokenized per batch, so the batch guard is the check
    with pytest.raises(AssistantMaskError, match="batch 0, example 0: <end_of_turn> is not in the loss mask"):
        trainer.train()
