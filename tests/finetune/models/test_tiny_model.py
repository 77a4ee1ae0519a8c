"""The tiny base: MedGemma's classes and tokenizer code paths, deterministic from a seed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from PIL import Image
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

from finetune.cli._commands import main
from finetune.models._tiny import build_tiny_model
from finetune.recipe._schema import TinyModelConfig


def _digest(directory: Path, name: str) -> str:
    return hashlib.sha256((directory / name).read_bytes()).hexdigest()


def test_same_seed_builds_identical_files(tmp_path: Path, tiny_model_dir: Path) -> None:
    again = build_tiny_model(tmp_path / "again", TinyModelConfig(seed=0))
    for name in ("model.safetensors", "tokenizer.model", "config.json"):
        assert _digest(again, name) == _digest(tiny_model_dir, name)
    other = build_tiny_model(tmp_path / "other", TinyModelConfig(seed=1))
    assert _digest(other, "model.safetensors") != _digest(tiny_model_dir, "model.safetensors")


def test_causal_variant_is_gemma3_for_causal_lm(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Gemma3ForCausalLM"
    assert type(tokenizer).__name__ == "GemmaTokenizer"
    assert model.config.vocab_size == len(tokenizer)
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn in model.generation_config.eos_token_id


def test_tokenizer_round_trips_all_three_languages(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    samples = ("Гемоглобин 98 г/л, ниже нормы.", "Науқастың қан қысымы 150/95 мм сын. бағ.", "血红蛋白 98 g/L，偏低。")
    for text in samples:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text


def test_image_text_variant_loads_with_processor_and_runs(tiny_image_text_dir: Path) -> None:
    model = AutoModelForImageTextToText.from_pretrained(tiny_image_text_dir)
    processor = AutoProcessor.from_pretrained(tiny_image_text_dir)
    assert type(model).__name__ == "Gemma3ForConditionalGeneration"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Опишите снимок."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[text], images=[[Image.new("RGB", (64, 64), (90, 90, 90))]], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(logits).all()


def test_cli_builds_a_tiny_model(tmp_path: Path) -> None:
    assert main(["tiny-model", str(tmp_path / "m"), "--seed", "3"]) == 0
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert (tmp_path / "m" / "chat_template.jinja").is_file()
