"""Packing: packed rows train on exactly the tokens, mask and per-token loss of unpacked batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from finetune.models._gemma import AssistantMaskError, PackingError, check_packing_supported, sequence_spans
from finetune.train._sft import build_trainer

MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", "token_type_ids")


def _batches(trainer) -> list[dict[str, torch.Tensor]]:
    return list(trainer.get_train_dataloader())


def _examples(batches) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """(input_ids, loss mask) of every example, whether it sits alone in a padded row or inside a packed row."""
    found = []
    for batch in batches:
        for row, start, end in sequence_spans(batch):
            ids = batch["input_ids"][row, start:end]
            if bool((ids == 0).all()):  # <pad> run after a short packed row
                continue
            found.append((tuple(ids.tolist()), tuple((batch["labels"][row, start:end] != -100).int().tolist())))
    return sorted(found)


def _per_token_nll(model, batches, **overrides) -> dict[tuple, float]:
    """Loss of every trained token, keyed by (its example's ids, its position in the example)."""
    losses = {}
    for batch in batches:
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS} | overrides
        inputs = {k: (v(batch) if callable(v) else v) for k, v in inputs.items()}
        with torch.no_grad():
            log_probs = torch.log_softmax(model(**inputs, use_cache=False).logits.float(), dim=-1)
        labels = batch["labels"]
        for row, start, end in sequence_spans(batch):
            ids = tuple(batch["input_ids"][row, start:end].tolist())
            for position in range(start + 1, end):
                if labels[row, position] != -100:
                    losses[(ids, position - start)] = -float(log_probs[row, position - 1, labels[row, position]])
    return losses


@pytest.mark.parametrize(("variant", "attention"), [("causal", "eager"), ("causal", "sdpa"), ("image_text", "eager")])
def test_packed_and_unpacked_batches_train_the_same_tokens_with_the_same_loss(
    variant: str, attention: str, tmp_path: Path, tiny_model_dir: Path, tiny_image_text_dir: Path, short_recipe
) -> None:
    base = tiny_model_dir if variant == "causal" else tiny_image_text_dir
    recipes = short_recipe(tmp_path / "packed", base), short_recipe(tmp_path / "plain", base, packing=False)
    for recipe in recipes:
        recipe.model.attn_implementation = attention
    packed_trainer, plain_trainer = (build_trainer(recipe) for recipe in recipes)
    assert packed_trainer.model.config._attn_implementation == attention
    packed, plain = _batches(packed_trainer), _batches(plain_trainer)

    assert len(packed_trainer.train_dataset) < len(plain_trainer.train_dataset) == 16  # rows really hold several
    assert any(len(list(sequence_spans(b))) > b["input_ids"].shape[0] for b in packed)
    assert "attention_mask" not in packed[0] and "position_ids" in packed[0]
    if variant == "image_text":  # the guard gives the multimodal class its zero token_type_ids
        assert all(torch.equal(b["token_type_ids"], torch.zeros_like(b["input_ids"])) for b in packed + plain)
    assert _examples(packed) == _examples(plain), "same examples, same tokens, same loss mask"

    model = packed_trainer.model.eval()
    packed_loss, plain_loss = _per_token_nll(model, packed), _per_token_nll(model, plain)
    assert packed_loss.keys() == plain_loss.keys() and len(packed_loss) > 100
    assert max(abs(packed_loss[k] - plain_loss[k]) for k in packed_loss) < 1e-4

    if variant == "causal":  # the failure avoided: one attention mask over the whole row lets examples mix
        leaky = _per_token_nll(model, packed, attention_mask=lambda b: torch.ones_like(b["input_ids"]))
        assert max(abs(leaky[k] - plain_loss[k]) for k in plain_loss) > 1e-2


def test_packing_is_refused_where_examples_would_see_each_other(tmp_path: Path, tiny_model_dir: Path,
                                                                short_recipe) -> None:
    trainer = build_trainer(short_recipe(tmp_path, tiny_model_dir))
    model = trainer.model.get_base_model()
    check_packing_supported(model)
    model.config.use_cache = True  # with a KV cache transformers builds one causal mask over the whole row
    with pytest.raises(PackingError, match="use_cache=True"):
        check_packing_supported(model)
    model.config.use_cache = False
    model.config._attn_implementation = "flex_attention"
    with pytest.raises(PackingError, match="flex_attention"):
        check_packing_supported(model)


@pytest.mark.parametrize("packing", [True, False])
def test_answers_cut_off_by_max_length_are_refused(packing: bool, tmp_path: Path, tiny_model_dir: Path,
                                                   short_recipe) -> None:
    recipe = short_recipe(tmp_path, tiny_model_dir, packing=packing)
    long_answer = "Давление повышено, рекомендована консультация кардиолога. " * 12  # data prepared for longer rows
    with (recipe.data_dir / "train.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"messages": [{"role": "user", "content": "Что делать?"},
                                              {"role": "assistant", "content": long_answer}]}, ensure_ascii=False))
    with pytest.raises(AssistantMaskError, match=r"1 of 17 training examples are longer than train.max_length"):
        build_trainer(recipe)


@pytest.mark.parametrize("variant", ["causal", "image_text"])
def test_sdpa_matches_eager_on_packed_rows(variant: str, tmp_path: Path, tiny_model_dir: Path,
                                           tiny_image_text_dir: Path, short_recipe) -> None:
    """sdpa is the default attention: on Gemma 3's packed rows (sliding window, block-diagonal masks) it gives
    eager's per-token losses and gradients."""
    base = tiny_model_dir if variant == "causal" else tiny_image_text_dir
    trainers = {}
    for attention in ("eager", "sdpa"):
        recipe = short_recipe(tmp_path / attention, base)
        recipe.model.attn_implementation = attention
        trainers[attention] = build_trainer(recipe)
        assert trainers[attention].model.config._attn_implementation == attention
    packed = _batches(trainers["eager"])
    assert any(len(list(sequence_spans(b))) > b["input_ids"].shape[0] for b in packed)
    losses = {name: _per_token_nll(trainer.model.eval(), packed) for name, trainer in trainers.items()}
    assert losses["eager"].keys() == losses["sdpa"].keys() and len(losses["eager"]) > 100
    assert max(abs(losses["eager"][k] - losses["sdpa"][k]) for k in losses["eager"]) < 1e-4

    grads = {}
    for name, trainer in trainers.items():
        trainer.model.train()
        with torch.no_grad():
            for parameter_name, parameter in trainer.model.named_parameters():
                if "lora_B" in parameter_name:
                    parameter.fill_(0.01)
        loss = trainer.compute_loss(trainer.model, {k: v for k, v in packed[0].items()})
        loss.backward()
        grads[name] = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
    assert grads["eager"].keys() == grads["sdpa"].keys() and grads["eager"]
    for name, grad in grads["eager"].items():
        torch.testing.assert_close(grads["sdpa"][name], grad, rtol=1e-3, atol=1e-5, msg=name)
