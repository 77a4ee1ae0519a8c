"""The planner for GRPO (the answers sampled at once and their KV cache, full logits of answer tokens) and DPO
(pairs as one batch, a reference pass without a second copy of the base)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from finetune.models._architectures import medgemma_4b
from finetune.train._memory_plan import Shape, TrainShape, estimate, suggest

SHAPE = Shape.from_config(medgemma_4b())
SFT = TrainShape(seq_len=1024, batch_size=2)


def test_grpo_counts_every_sampled_answer_in_its_kv_cache() -> None:
    grpo = replace(SFT, objective="grpo", completion_len=256, generation_batch=8)
    small, large = estimate(SHAPE, grpo), estimate(SHAPE, replace(grpo, generation_batch=32))
    # 34 layers × 2 (K, V) × 4 KV heads × 256 dims × 2 bytes per token, for 8 answers of 1024 tokens: 1.06 GiB
    assert abs(small.generation_gib - (8 * 1024 * 2 * 34 * 4 * 256 * 2 + 8 * SHAPE.vocab * 4) / 2**30) < 1e-6
    assert large.generation_gib == pytest.approx(4 * small.generation_gib)
    assert small.logits_gib > estimate(SHAPE, SFT).logits_gib  # full logits of the answer tokens
    # sampling and the step do not hold memory at the same time: the larger phase counts
    assert large.total_gib == large.weights_gib + large.lora_gib + large.overhead_gib + max(
        large.activations_gib + large.logits_gib, large.generation_gib)


def test_dpo_runs_both_answers_and_a_reference_pass_without_a_second_base() -> None:
    sft, dpo = estimate(SHAPE, SFT), estimate(SHAPE, replace(SFT, objective="dpo", reference_pass=True))
    assert dpo.weights_gib == sft.weights_gib  # the reference is the base with the adapter disabled
    assert dpo.activations_gib > 1.9 * sft.activations_gib - 0.2
    assert dpo.logits_gib > sft.logits_gib


def test_grpo_suggestions_fit_8_and_24_gib() -> None:
    grpo = TrainShape(seq_len=1024, objective="grpo", completion_len=256, generation_batch=8)
    for gpu in (8, 24):
        found = suggest(SHAPE, gpu, 1024, like=grpo)
        assert found["fits"] and found["estimate"]["total_gib"] <= gpu - 1.0
        assert found["estimate"]["generation_gib"] > 0
    assert suggest(SHAPE, 24, 1024, like=grpo)["batch_size"] > suggest(SHAPE, 8, 1024, like=grpo)["batch_size"]
