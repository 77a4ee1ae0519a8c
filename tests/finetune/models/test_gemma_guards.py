"""Gemma 3 guards: each test shows the failure the guard prevents."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer
from trl.chat_template_utils import gemma3_training_chat_template

from finetune.models._gemma import (
    AdapterContentError,
    AssistantMaskError,
    BatchGuard,
    ChatFormatError,
    MarkerIds,
    adapter_summary,
    check_batch,
    check_lora_config,
    check_lora_targets,
    check_messages,
    expected_assistant_mask,
    resolve_compute_dtype,
    sequence_spans,
    text_only_token_type_ids,
    verify_assistant_masks,
)
from finetune.recipe._schema import RecipeError, validate_recipe

CHAT = [
    {"role": "system", "content": "Вы — врач-терапевт."},
    {"role": "user", "content": "Что означает гемоглобин 98 г/л?"},
    {"role": "assistant", "content": "Это ниже нормы: возможна анемия."},
]
MULTI_TURN = [
    {"role": "user", "content": "患者主诉头痛。"},
    {"role": "assistant", "content": "请问持续多久了？"},
    {"role": "user", "content": "三天。"},
    {"role": "assistant", "content": "建议测量血压。"},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _training_mask(tokenizer, messages) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
        chat_template=gemma3_training_chat_template,
    )
    return out["assistant_masks"]


def test_fp16_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="overflow"):
        resolve_compute_dtype("float16", "cuda")
    assert resolve_compute_dtype("auto", "cuda", bf16_supported=lambda: True) is torch.bfloat16
    assert resolve_compute_dtype("auto", "cpu") is torch.float32
    # A GPU without bf16 is not quietly trained in fp16 instead.
    with pytest.raises(ValueError, match="Ampere"):
        resolve_compute_dtype("auto", "cuda", bf16_supported=lambda: False)
    # The recipe says why, instead of listing the allowed literals.
    with pytest.raises(RecipeError, match=r"model.compute_dtype: float16 is refused: .*overflow"):
        validate_recipe({"name": "x", "output_dir": "o", "model": {"base": "b", "compute_dtype": "fp16"}})


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([], "messages is empty"),
        ([{"role": "system", "content": "s"}], "only a system message"),
        ([{"role": "assistant", "content": "a"}], "messages[0].role is 'assistant'"),
        ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "messages[1].role is 'system'"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "alternate"),
        ([{"role": "tool", "content": "a"}], "expected one of system, user, assistant"),
        ([{"role": "user", "content": 3}], "content must be a string"),
    ],
)
def test_bad_chats_fail_before_the_template(messages: list, fragment: str) -> None:
    with pytest.raises(ChatFormatError) as error:
        check_messages(messages)
    assert fragment in str(error.value)


def test_system_text_is_folded_into_first_user_turn(tokenizer) -> None:
    text = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert "<start_of_turn>system" not in text
    assert text.startswith("<bos><start_of_turn>user\nВы — врач-терапевт.\n\nЧто означает")


def test_template_output_has_one_bos_when_tokenized_without_special_tokens(tokenizer) -> None:
    text = tokenizer.apply_chat_template(CHAT, tokenize=False)
    doubled = tokenizer(text)["input_ids"]
    single = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert doubled[:2] == [tokenizer.bos_token_id, tokenizer.bos_token_id]  # the bug the guard avoids
    assert single[0] == tokenizer.bos_token_id and single[1] != tokenizer.bos_token_id


@pytest.mark.parametrize("messages", [CHAT, MULTI_TURN])
def test_training_template_mask_equals_prefix_mask(tokenizer, messages) -> None:
    mask = _training_mask(tokenizer, messages)
    expected = expected_assistant_mask(tokenizer, messages)
    assert mask == expected
    assert sum(expected) > 0
    verify_assistant_masks(tokenizer, [messages], [mask])
    # Every prompt token is outside the mask: the user's text never appears in the trained span.
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
    trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert "Что означает" not in trained and "三天" not in trained
    assert trained.count("<end_of_turn>") == sum(1 for m in messages if m["role"] == "assistant")


def test_stock_template_yields_an_empty_mask_and_the_guard_stops_it(tokenizer) -> None:
    out = tokenizer.apply_chat_template(CHAT, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    assert not any(out["assistant_masks"])
    with pytest.raises(AssistantMaskError, match="empty"):
        verify_assistant_masks(tokenizer, [CHAT], [out["assistant_masks"]])


def test_mask_covering_the_prompt_is_refused(tokenizer) -> None:
    full = [1] * len(expected_assistant_mask(tokenizer, CHAT))
    with pytest.raises(AssistantMaskError, match="prompt token"):
        verify_assistant_masks(tokenizer, [CHAT], [full])


def test_mask_missing_end_of_turn_is_refused(tokenizer) -> None:
    mask = expected_assistant_mask(tokenizer, CHAT)
    last = max(i for i, m in enumerate(mask) if m)
    mask[last - 1] = 0
    with pytest.raises(AssistantMaskError, match="left out"):
        verify_assistant_masks(tokenizer, [CHAT], [mask])


def test_text_only_token_type_ids_are_zeros() -> None:
    ids = torch.tensor([[2, 5, 7], [2, 9, 1]])
    assert torch.equal(text_only_token_type_ids(ids), torch.zeros_like(ids))


def _batch(tokenizer, conversations, packed: bool = False) -> dict[str, torch.Tensor]:
    """Labels as the training template masks them, padded rows or one packed row."""
    rows = []
    for messages in conversations:
        ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=False)
        mask = _training_mask(tokenizer, messages)
        rows.append((ids, [t if m else -100 for t, m in zip(ids, mask, strict=True)]))
    if packed:
        ids = torch.tensor([[t for r in rows for t in r[0]]])
        return {"input_ids": ids, "labels": torch.tensor([[t for r in rows for t in r[1]]]),
                "position_ids": torch.tensor([[p for r in rows for p in range(len(r[0]))]])}
    width = max(len(r[0]) for r in rows)
    pad = lambda seq, value: seq + [value] * (width - len(seq))  # noqa: E731
    return {"input_ids": torch.tensor([pad(r[0], 0) for r in rows]),
            "labels": torch.tensor([pad(r[1], -100) for r in rows]),
            "attention_mask": torch.tensor([pad([1] * len(r[0]), 0) for r in rows])}


@pytest.mark.parametrize("packed", [False, True])
def test_batch_check_passes_good_batches_and_names_the_broken_example(tokenizer, packed: bool) -> None:
    markers = MarkerIds.from_tokenizer(tokenizer)
    batch = _batch(tokenizer, [CHAT, MULTI_TURN], packed=packed)
    check_batch(batch, markers, 0, assistant_only=True)

    empty = {k: v.clone() for k, v in batch.items()}
    second = list(sequence_spans(batch))[1]
    empty["labels"][second[0], second[1]:second[2]] = -100  # what a template without generation markers yields
    with pytest.raises(AssistantMaskError, match="batch 7, example 1: the assistant-only loss mask is empty"):
        check_batch(empty, markers, 7, assistant_only=True)

    prompt = {k: v.clone() for k, v in batch.items()}
    prompt["labels"] = prompt["input_ids"].clone()  # the loss Google's notebook trains: prompt tokens included
    with pytest.raises(AssistantMaskError, match="prompt or image token"):
        check_batch(prompt, markers, 0, assistant_only=True)

    no_stop = {k: v.clone() for k, v in batch.items()}
    no_stop["labels"][no_stop["input_ids"] == tokenizer.convert_tokens_to_ids("<end_of_turn>")] = -100
    with pytest.raises(AssistantMaskError, match="not learn to stop"):
        check_batch(no_stop, markers, 0, assistant_only=True)


def test_batch_check_refuses_a_double_bos(tokenizer) -> None:
    text = tokenizer.apply_chat_template(CHAT, tokenize=False)
    doubled = tokenizer(text, return_tensors="pt")  # the template wrote <bos>, the tokenizer adds another
    batch = {"input_ids": doubled["input_ids"], "attention_mask": doubled["attention_mask"],
             "labels": torch.full_like(doubled["input_ids"], -100)}
    with pytest.raises(AssistantMaskError, match="two <bos>"):
        check_batch(batch, MarkerIds.from_tokenizer(tokenizer), 0, assistant_only=False)
    single = tokenizer(text, add_special_tokens=False, return_tensors="pt")
    check_batch({**single, "labels": torch.full_like(single["input_ids"], -100)},
                MarkerIds.from_tokenizer(tokenizer), 0, assistant_only=False)


def test_text_only_batches_for_the_multimodal_class_get_zero_token_type_ids(tokenizer, tiny_image_text_dir) -> None:
    """transformers 5.0-5.5 raised "token_type_ids is required as a model input when training" without them; 5.24
    accepts their absence. The guard supplies them everywhere, and they must be zeros: ones (a fill some guides
    suggest) turn on Gemma's bidirectional image attention for text, so each token sees the ones after it."""
    from transformers import AutoModelForImageTextToText

    def collate(examples):
        return _batch(tokenizer, [e["messages"] for e in examples])

    batch = BatchGuard(collate, tokenizer, multimodal=True, assistant_only=True)([{"messages": CHAT}])
    assert torch.equal(batch["token_type_ids"], torch.zeros_like(batch["input_ids"]))
    assert "token_type_ids" not in BatchGuard(collate, tokenizer, multimodal=False, assistant_only=True)(
        [{"messages": CHAT}])

    model = AutoModelForImageTextToText.from_pretrained(tiny_image_text_dir, dtype=torch.float32).train()
    ids, mask = batch["input_ids"], batch["attention_mask"]
    changed_tail = ids.clone()
    changed_tail[0, -3:] = tokenizer.convert_tokens_to_ids("<mask>")
    with torch.no_grad():
        def logits(input_ids, types):
            return model(input_ids=input_ids, attention_mask=mask, token_type_ids=types, use_cache=False).logits[0, :-3]
        zeros = torch.zeros_like(ids)
        assert torch.allclose(logits(ids, zeros), model(input_ids=ids, attention_mask=mask).logits[0, :-3], atol=1e-5)
        assert torch.allclose(logits(ids, zeros), logits(changed_tail, zeros), atol=1e-5), "causal: no peeking"
        ones = torch.ones_like(ids)
        assert not torch.allclose(logits(ids, ones), logits(changed_tail, ones), atol=1e-3), "ones leak the future"


def test_lora_stays_out_of_the_vision_tower_unless_asked(tiny_image_text_dir) -> None:
    from peft import get_peft_model
    from transformers import AutoModelForImageTextToText

    from finetune.models._loading import lora_config
    from finetune.recipe._schema import LoraConfig

    model = AutoModelForImageTextToText.from_pretrained(tiny_image_text_dir)
    everywhere = get_peft_model(model, lora_config(model, LoraConfig(r=2, alpha=4, language_model_only=False)))
    with pytest.raises(AdapterContentError, match="vision tower or projector"):
        check_lora_targets(everywhere, language_model_only=True)
    assert any("vision_tower" in name for name in check_lora_targets(everywhere, language_model_only=False))
    model = AutoModelForImageTextToText.from_pretrained(tiny_image_text_dir)
    text_only = get_peft_model(model, lora_config(model, LoraConfig(r=2, alpha=4)))
    assert all("language_model" in name for name in check_lora_targets(text_only, language_model_only=True))


def test_no_embedding_copies_in_the_adapter_and_its_size_is_reported(tiny_model_dir, tmp_path) -> None:
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    copying = PeftLoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=["lm_head"],
                             ensure_weight_tying=True)
    with pytest.raises(AdapterContentError, match=r"0\.7B"):
        check_lora_config(copying)
    check_lora_config(copying, tokens_added=True)  # new tokens are the one reason to train the embeddings

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), copying)
    model.save_pretrained(tmp_path / "copying")
    with pytest.raises(AdapterContentError, match=r"full copies of .*lm_head"):
        adapter_summary(tmp_path / "copying")

    lean = PeftLoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), lean)
    model.save_pretrained(tmp_path / "lean")
    summary = adapter_summary(tmp_path / "lean")
    assert summary["adapter_parameters"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert summary["adapter_bytes"] == (tmp_path / "lean" / "adapter_model.safetensors").stat().st_size


def test_a_trained_embedding_stays_tied_through_the_merge(tiny_model_dir) -> None:
    """Without ensure_weight_tying, PEFT trains a copy of lm_head apart from embed_tokens: base+adapter then computes
    with two matrices while the merged, still tied checkpoint (and GGUF, which keeps one) has only one."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    untied = PeftLoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=["lm_head"])
    with pytest.raises(AdapterContentError, match="ensure_weight_tying=True"):
        check_lora_config(untied, tokens_added=True)
    with pytest.warns(UserWarning, match="tie_word_embeddings=True` and a tied layer is part of the adapter"):
        untied_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), untied)
    head = untied_model.base_model.model.lm_head.modules_to_save["default"]
    assert head.weight.data_ptr() != untied_model.base_model.model.model.embed_tokens.weight.data_ptr()

    tied = PeftLoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"], modules_to_save=["embed_tokens"],
                          ensure_weight_tying=True)
    check_lora_config(tied, tokens_added=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tied).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # what training new tokens does: the embedding rows change
        embedding = model.base_model.model.model.embed_tokens.modules_to_save["default"].weight
        embedding[100:120] += 0.5 * torch.randn_like(embedding[100:120])
    ids = torch.tensor([[2, 100, 105, 110, 115, 300, 400]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
        merged = model.merge_and_unload().eval()
        got = merged(input_ids=ids).logits
    assert merged.lm_head.weight.data_ptr() == merged.model.embed_tokens.weight.data_ptr(), "still one matrix"
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def test_an_evaluation_does_not_cut_the_gradients_of_4bit_layers(tiny_model_dir) -> None:
    """bitsandbytes repacks 4-bit layers for CPU inference on the first eval forward; the packed kernel has no
    backward, so training after an evaluation would send almost no gradient below the top layer."""
    from bitsandbytes.functional import has_avx512bf16
    from peft import get_peft_model

    from finetune.models._loading import load_for_training, lora_config
    from finetune.recipe._schema import LoraConfig, ModelConfig

    base = load_for_training(ModelConfig(base=str(tiny_model_dir)))
    model = get_peft_model(base, lora_config(base, LoraConfig(r=2, alpha=4, dropout=0.0)))
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    ids = torch.tensor([[2, 100, 200, 300, 400, 500, 600, 700]])
    first = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"

    def first_layer_gradient() -> torch.Tensor:
        model.train()
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return dict(model.named_parameters())[first].grad.clone()

    def evaluate() -> None:
        model.eval()
        with torch.no_grad():
            model(input_ids=ids)

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*gemv_4bit.*autograd kernel was not registered")
        before = first_layer_gradient()
        evaluate()
        assert torch.allclose(first_layer_gradient(), before, rtol=1e-4, atol=1e-7)
    if has_avx512bf16():  # the failure, on CPUs where bitsandbytes takes the packed path
        for layer in model.modules():
            if hasattr(layer, "support_avx512bf16_for_cpu"):
                layer.support_avx512bf16_for_cpu = True
        evaluate()
        with pytest.warns(UserWarning, match="gemv_4bit: an autograd kernel was not registered"):
            cut = first_layer_gradient()
        assert (cut - before).norm() > 0.5 * before.norm()


def test_lora_gradients_through_the_4bit_base_equal_those_through_its_dequantized_copy(tiny_model_dir) -> None:
    """The QLoRA training path on CPU differentiates through bitsandbytes' dequantize-then-matmul, not through a
    kernel without a backward: every LoRA gradient equals the one computed on a full-precision copy of the 4-bit
    weights, after an evaluation too."""
    from bitsandbytes.functional import dequantize_4bit
    from bitsandbytes.nn import Linear4bit
    from peft import get_peft_model

    from finetune.models._loading import load_for_training, load_full_precision, lora_config
    from finetune.recipe._schema import LoraConfig, ModelConfig

    quantized = load_for_training(ModelConfig(base=str(tiny_model_dir)))
    full = load_full_precision(str(tiny_model_dir), dtype=torch.float32, device="cpu")
    layers = {name: module for name, module in quantized.named_modules() if isinstance(module, Linear4bit)}
    assert len(layers) >= 14
    with torch.no_grad():
        for name, module in layers.items():
            full.get_submodule(name).weight.copy_(dequantize_4bit(module.weight.data, module.weight.quant_state))
    settings = LoraConfig(r=4, alpha=8, dropout=0.0)
    models = [get_peft_model(base, lora_config(base, settings)) for base in (quantized, full)]
    torch.manual_seed(0)
    for parameter in models[0].parameters():
        if parameter.requires_grad:
            torch.nn.init.normal_(parameter, std=0.05)
    lora_weights = {name: p for name, p in models[0].named_parameters() if p.requires_grad}
    models[1].load_state_dict(lora_weights, strict=False)
    ids = torch.tensor([[2, 100, 200, 300, 400, 500, 600, 700, 800, 900]])

    def lora_gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        model.eval()
        with torch.no_grad():
            model(input_ids=ids)  # an evaluation first, as training with eval_steps does
        model.train()
        model.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*autograd kernel was not registered")
        through_4bit, through_copy = (lora_gradients(model) for model in models)
    assert through_4bit.keys() == through_copy.keys() and len(through_4bit) == 2 * len(layers)
    for name, gradient in through_4bit.items():
        expected = through_copy[name]
        assert expected.norm() > 0, name
        assert torch.allclose(gradient, expected, rtol=1e-3, atol=1e-6), (name, (gradient - expected).abs().max())

