"""Memory planner: estimates against measured peaks, suggestions per GPU, recipe profiles, `medtune plan`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import Gemma3TextConfig

from finetune.cli._commands import main
from finetune.models._architectures import medgemma_4b, medgemma_27b_text
from finetune.models._random import build_random_qlora_base
from finetune.recipe._schema import RecipeError, load_recipe
from finetune.train._memory_plan import Shape, TrainShape, estimate, parse_memory, plan_recipe, suggest

RECIPES = Path(__file__).resolve().parents[3] / "recipes"
# torch.cuda.max_memory_allocated (GiB) of scripts/bench_train.py on an NVIDIA H100 80GB HBM3 (BENCHMARKS.md):
# (model, seq_len, medtune settings?) -> measured peak.
MEASURED_PEAK_GIB = {
    ("4b", 1024, True): 3.73, ("4b", 1024, False): 6.41, ("4b", 2048, True): 4.31, ("4b", 2048, False): 9.60,
    ("27b", 1024, True): 17.15, ("27b", 1024, False): 19.30, ("27b", 2048, True): 19.21, ("27b", 2048, False): 22.96,
}
SHAPES = {"4b": Shape.from_config(medgemma_4b()), "27b": Shape.from_config(medgemma_27b_text())}


@pytest.mark.parametrize(("model", "seq_len", "chunked"), list(MEASURED_PEAK_GIB))
def test_estimate_is_within_ten_percent_of_measured_peak(model: str, seq_len: int, chunked: bool) -> None:
    train = TrainShape(seq_len=seq_len, chunked_loss=chunked, loss_fraction=0.5 if chunked else 1.0)
    planned = estimate(SHAPES[model], train).total_gib
    assert planned == pytest.approx(MEASURED_PEAK_GIB[(model, seq_len, chunked)], rel=0.10)


def test_medgemma_shapes_have_their_published_sizes() -> None:
    assert SHAPES["4b"].language_linear_params == pytest.approx(3.21e9, rel=0.01)
    assert SHAPES["27b"].language_linear_params == pytest.approx(25.6e9, rel=0.01)
    assert SHAPES["4b"].vocab == SHAPES["27b"].vocab == 262_208


def test_chunked_loss_is_what_makes_4b_fit_8gb_at_2048() -> None:
    chunked = estimate(SHAPES["4b"], TrainShape(seq_len=2048))
    full = estimate(SHAPES["4b"], TrainShape(seq_len=2048, chunked_loss=False))
    assert full.logits_gib - chunked.logits_gib > 4.5
    assert chunked.total_gib < 8 - 1 < full.total_gib


def test_gradient_checkpointing_shrinks_activations() -> None:
    with_ckpt = estimate(SHAPES["27b"], TrainShape(seq_len=2048))
    without = estimate(SHAPES["27b"], TrainShape(seq_len=2048, gradient_checkpointing=False))
    assert without.activations_gib > 5 * with_ckpt.activations_gib


def test_suggestions_per_gpu_size() -> None:
    small = suggest(SHAPES["4b"], 8, 2048)
    assert small["fits"] and small["seq_len"] == 2048 and small["estimate"]["total_gib"] <= 7
    assert small["batch_size"] * small["gradient_accumulation_steps"] * small["seq_len"] >= 16_384
    assert not suggest(SHAPES["27b"], 16, 2048)["fits"]
    big = suggest(SHAPES["27b"], 24, 2048)
    assert big["fits"] and big["estimate"]["total_gib"] <= 23


def test_parse_memory_units() -> None:
    assert parse_memory("8GiB") == 8
    assert parse_memory("24") == 24
    assert parse_memory("16GB") == pytest.approx(14.9, abs=0.01)
    with pytest.raises(ValueError, match="expected a size"):
        parse_memory("lots")


def test_every_gpu_recipe_profile_fits_its_card() -> None:
    for name in ("medgemma-4b-ru", "medgemma-4b-kk", "medgemma-4b-zh", "medgemma-27b-text-ru"):
        report = plan_recipe(load_recipe(RECIPES / f"{name}.yaml"))
        assert report["profiles"], name
        assert all(p["fits"] for p in report["profiles"].values()), name
    assert set(plan_recipe(load_recipe(RECIPES / "medgemma-4b-ru.yaml"))["profiles"]) == {"8gb", "12gb", "16gb", "24gb"}


def test_profile_is_applied_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    recipe = load_recipe(RECIPES / "medgemma-4b-ru.yaml", profile="16gb")
    assert recipe.train.per_device_train_batch_size == 4
    with pytest.raises(RecipeError, match="no profile '4gb'"):
        load_recipe(RECIPES / "medgemma-4b-ru.yaml", profile="4gb")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\noutput_dir: o\nmodel: {base: b}\nprofiles:\n  8gb: {train.batch: 2}\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=r"(?s)profile 8gb\).*train\.batch: unknown key"):
        load_recipe(bad)


def test_cli_plan_exits_non_zero_when_a_profile_does_not_fit(tmp_path: Path, capsys) -> None:
    assert main(["plan", str(RECIPES / "medgemma-27b-text-ru.yaml")]) == 0
    out = capsys.readouterr().out
    assert "peak allocated" in out and "24gb" in out and "does not fit" in out  # 8 GiB cannot hold 27B
    squeezed = tmp_path / "27b-8gb.yaml"
    text = (RECIPES / "medgemma-27b-text-ru.yaml").read_text(encoding="utf-8")
    squeezed.write_text(text + "  8gb: {train.per_device_train_batch_size: 1}\n", encoding="utf-8")
    assert main(["plan", str(squeezed)]) == 1
    assert "8gb" in capsys.readouterr().out


def test_plan_reads_a_local_config(tiny_model_dir: Path) -> None:
    recipe = load_recipe(None, [f"model.base={tiny_model_dir}"])
    report = plan_recipe(recipe, "8GiB")
    assert report["estimate"]["total_gib"] < 0.5
    assert list(report["suggestions"]) == ["8GiB"]


def test_random_qlora_base_has_the_shape_and_runs() -> None:
    config = Gemma3TextConfig(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=32)
    model = build_random_qlora_base(config, device="cpu", compute_dtype=torch.bfloat16)
    quantized = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    assert len(quantized) == 7 * 2
    assert model.lm_head.weight is model.model.embed_tokens.weight
    with torch.no_grad():
        logits = model(input_ids=torch.randint(0, 512, (1, 16))).logits
    assert logits.shape == (1, 16, 512) and torch.isfinite(logits.float()).all()


@pytest.mark.parametrize("text", ["0", "0GiB", "-8GiB", "...", "1e400", "inf", "99999GiB", ""])
def test_parse_memory_refuses_sizes_that_are_not_positive_and_finite(text: str) -> None:
    with pytest.raises(ValueError, match=r"--gpu-mem .*expected a size"):
        parse_memory(text)


@pytest.mark.parametrize(("gpu_mem", "code", "shown"), [("1GiB", 1, "does not fit"), ("24GiB", 0, "24GiB: seq")])
def test_cli_plan_exits_non_zero_when_nothing_fits_the_given_gpu(gpu_mem: str, code: int, shown: str, capsys) -> None:
    assert main(["plan", str(RECIPES / "medgemma-4b-ru.yaml"), "--gpu-mem", gpu_mem]) == code
    assert shown in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpu-mem", "0GiB"], "--gpu-mem '0GiB': expected a size above 0"),
        (["train.per_device_train_batch_size=1.0e+15"], "train.per_device_train_batch_size: Input should be less"),
        (["train.max_length=1.0e+12"], "train.max_length: Input should be less than or equal to 131072"),
    ],
)
def test_cli_plan_refuses_out_of_range_numbers(args: list[str], message: str, capsys) -> None:
    assert main(["plan", str(RECIPES / "medgemma-4b-ru.yaml"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medtune plan: error: ") and message in err
