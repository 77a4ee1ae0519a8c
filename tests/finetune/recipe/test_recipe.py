"""Recipe schema: errors that say where and how to fix, overrides, the shipped recipes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from finetune.cli._commands import main
from finetune.recipe._schema import (
    RESOLVED_RECIPE_NAME,
    Recipe,
    RecipeError,
    apply_overrides,
    default_recipe_path,
    load_recipe,
    validate_recipe,
    write_resolved,
)

RECIPES = sorted((Path(__file__).resolve().parents[3] / "recipes").glob("*.yaml"))
MINIMAL = {"name": "x", "output_dir": "out", "model": {"base": "google/medgemma-4b-it"}}


def test_every_shipped_recipe_validates() -> None:
    names = {path.stem for path in RECIPES}
    assert {"tiny-demo", "medgemma-4b-ru", "medgemma-4b-kk", "medgemma-4b-zh", "medgemma-27b-text-ru"} <= names
    for path in RECIPES:
        recipe = load_recipe(path)
        assert recipe.name == path.stem


@pytest.mark.parametrize(
    ("stem", "base"),
    [
        ("medgemma-4b-ru", "google/medgemma-4b-it"),
        ("medgemma-4b-kk", "google/medgemma-4b-it"),
        ("medgemma-4b-zh", "google/medgemma-4b-it"),
        ("medgemma-27b-text-ru", "google/medgemma-27b-text-it"),
    ],
)
def test_gpu_recipes_are_qlora_for_one_consumer_gpu(stem: str, base: str) -> None:
    recipe = load_recipe(Path(__file__).resolve().parents[3] / "recipes" / f"{stem}.yaml")
    assert recipe.model.base == base
    assert recipe.model.load_in_4bit and recipe.model.quant_type == "nf4" and recipe.model.double_quant
    assert recipe.model.compute_dtype == "bfloat16"
    assert recipe.train.gradient_checkpointing
    assert recipe.train.per_device_train_batch_size == 1
    assert [s.lang for s in recipe.data.sources] == [stem.rsplit("-", 1)[1]]


def test_embedded_default_is_the_tiny_demo() -> None:
    recipe = load_recipe(None)
    assert default_recipe_path().name == "tiny-demo.yaml"
    assert recipe.model.tiny is not None and recipe.model.tiny.variant == "causal"
    assert {s.lang for s in recipe.data.sources} == {"ru", "kk", "zh"}


def test_unknown_key_names_dotted_path_and_closest_key() -> None:
    raw = {**MINIMAL, "train": {"learning_rat": 1e-4}}
    with pytest.raises(RecipeError) as error:
        validate_recipe(raw)
    assert "train.learning_rat: unknown key" in str(error.value)
    assert "did you mean 'train.learning_rate'" in str(error.value)


def test_unknown_nested_key_in_data_section() -> None:
    raw = {**MINIMAL, "data": {"split": {"tset": 0.2}}}
    with pytest.raises(RecipeError, match=r"data\.split\.tset: unknown key; did you mean 'data\.split\.test'"):
        validate_recipe(raw)


def test_unknown_section_lists_valid_keys_when_nothing_is_close() -> None:
    with pytest.raises(RecipeError, match=r"zzz: unknown key; valid keys here: name, output_dir"):
        validate_recipe({**MINIMAL, "zzz": 1})


def test_wrong_type_names_field_and_expected_type() -> None:
    with pytest.raises(RecipeError) as error:
        validate_recipe({**MINIMAL, "train": {"learning_rate": "fast"}})
    message = str(error.value)
    assert "train.learning_rate" in message and "valid number" in message and "'fast'" in message


def test_fp16_is_not_a_choice() -> None:
    with pytest.raises(RecipeError, match=r"model\.compute_dtype"):
        validate_recipe({**MINIMAL, "model": {"base": "b", "compute_dtype": "float16"}})


def test_all_errors_are_reported_at_once() -> None:
    with pytest.raises(RecipeError) as error:
        validate_recipe({"name": "x", "lora": {"r": 0}})
    message = str(error.value)
    assert "output_dir: required field is missing" in message
    assert "model: required field is missing" in message
    assert "lora.r" in message


def test_examples_longer_than_max_length_are_refused_at_validation() -> None:
    expected = r"recipe: data\.quality\.max_tokens \(1024\) must be set and at most train\.max_length \(512\)"
    with pytest.raises(RecipeError, match=expected):
        validate_recipe({**MINIMAL, "train": {"max_length": 512}})


def test_dotted_overrides_keep_yaml_types() -> None:
    raw = apply_overrides(dict(MINIMAL), ["train.learning_rate=1e-4", "lora.r=8", "train.report_to=[wandb]"])
    recipe = validate_recipe(raw)
    assert recipe.train.learning_rate == pytest.approx(1e-4)
    assert recipe.lora.r == 8
    assert recipe.train.report_to == ["wandb"]


def test_override_without_equals_is_explained() -> None:
    with pytest.raises(RecipeError, match=r"expected section\.key=value"):
        apply_overrides({}, ["train.learning_rate"])


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(None, ["train.learning_rate=5e-4", f"output_dir={tmp_path}"])
    written = write_resolved(recipe, tmp_path / "stage")
    assert written.name == RESOLVED_RECIPE_NAME
    again = Recipe.model_validate(yaml.safe_load(written.read_text(encoding="utf-8")))
    assert again == recipe
    assert again.train.learning_rate == pytest.approx(5e-4)


def test_cli_validate_accepts_and_rejects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(RECIPES[0])]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\noutput_dir: o\nmodel: {base: b}\ntrain: {epochs: 3}\n", encoding="utf-8")
    assert main(["validate", str(bad)]) == 2
    assert "train.epochs: unknown key" in capsys.readouterr().err


def test_cli_override_without_recipe_uses_embedded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "train.max_steps=3"]) == 0
    assert '"max_steps": 3' in capsys.readouterr().out


OUT_OF_RANGE = [
    ("train.learning_rate=inf", "train.learning_rate: Input should be a finite number"),
    ("train.learning_rate=.nan", "train.learning_rate: Input should be a finite number"),
    ("train.learning_rate=0", "train.learning_rate: Input should be greater than 0"),
    ("train.learning_rate=5", "train.learning_rate: Input should be less than or equal to 1"),
    ("train.num_train_epochs=1e400", "train.num_train_epochs: Input should be a finite number"),
    ("train.num_train_epochs=1.0e+9", "train.num_train_epochs: Input should be less than or equal to 1000"),
    ("train.per_device_train_batch_size=1.0e+15", "train.per_device_train_batch_size: Input should be less than"),
    ("train.per_device_train_batch_size=1.0e+20", "train.per_device_train_batch_size: Unable to parse"),
    ("train.gradient_accumulation_steps=0", "train.gradient_accumulation_steps: Input should be greater than"),
    ("train.max_length=10000000", "train.max_length: Input should be less than or equal to 131072"),
    ("serve.max_body_bytes=100", "serve.max_body_bytes: Input should be greater than or equal to 1024"),
    ("train.max_steps=-5", "train.max_steps: Input should be greater than or equal to -1"),
    ("train.warmup_ratio=-.inf", "train.warmup_ratio: Input should be a finite number"),
    ("train.max_grad_norm=.inf", "train.max_grad_norm: Input should be a finite number"),
    ("train.weight_decay=-0.1", "train.weight_decay: Input should be greater than or equal to 0"),
    ("lora.r=0", "lora.r: Input should be greater than or equal to 1"),
    ("data.workers=0", "data.workers: Input should be greater than or equal to 1"),
    ("data.quality.near_dup_threshold=.nan", "data.quality.near_dup_threshold: Input should be a finite number"),
    ("serve.batch_wait_ms=.inf", "serve.batch_wait_ms: Input should be a finite number"),
    ("export.max_shard_size=0GB", "export.max_shard_size: expected a whole positive number and a unit"),
    ("export.max_shard_size=lots", "export.max_shard_size: expected a whole positive number and a unit"),
    ("seed=-1", "seed: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("override", "message"), OUT_OF_RANGE)
def test_out_of_range_numbers_are_refused_with_the_field(override: str, message: str) -> None:
    with pytest.raises(RecipeError) as error:
        load_recipe(None, [override])
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [("num_train_epochs: 1e400", "train.num_train_epochs"), ("learning_rate: .inf", "train.learning_rate"),
     ("per_device_train_batch_size: 1.0e+20", "train.per_device_train_batch_size")],
)
def test_out_of_range_numbers_in_a_yaml_file_are_refused(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(f"name: x\noutput_dir: o\nmodel: {{base: b}}\ntrain:\n  {text}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=rf"{path}: invalid recipe\n  {re.escape(field)}: "):
        load_recipe(path)


def test_assigning_an_out_of_range_number_is_refused() -> None:
    recipe = load_recipe(None)
    with pytest.raises(ValidationError, match="learning_rate"):
        recipe.train.learning_rate = float("inf")
    with pytest.raises(ValidationError, match="workers"):
        recipe.data.workers = 0


@pytest.mark.parametrize("source", ["{out}/data/train.jsonl", "{out}/data", "{out}", "{out}/data/export/ru.jsonl"])
def test_a_source_where_prepare_writes_is_refused(tmp_path: Path, source: str) -> None:
    out = tmp_path / "run"
    raw = {**MINIMAL, "output_dir": str(out), "data": {"sources": [{"path": source.format(out=out), "lang": "ru"}]}}
    with pytest.raises(RecipeError, match=r"data\.sources\[0\]\.path: .* \(output_dir/data\), where prepare writes"):
        validate_recipe(raw)
    raw["data"]["sources"][0]["path"] = str(tmp_path / "exports" / "ru.jsonl")
    assert validate_recipe(raw).data.sources[0].path.endswith("ru.jsonl")
