"""Asking a served model every item (generation, and the reference's NLL where the server scores) and turning
each answer into the per-answer statistics the metrics are built from."""

from __future__ import annotations

from collections.abc import Sequence

from finetune.eval._cache import GenerationCache
from finetune.eval._client import ServedModel
from finetune.eval._metrics import Answer, GlossaryTerm, Stats, answer_stats
from finetune.eval._suites import EvalItem


def ask(
    served: ServedModel, items: Sequence[EvalItem], default_max_tokens: int, batch_size: int,
    cache: GenerationCache, concurrency: int,
) -> tuple[list[Answer], bool]:
    """Each item's answer (with the reference's NLL for free-text items) and whether scoring was available."""
    prompts = [item.prompt for item in items]
    limits = [item.max_new_tokens or default_max_tokens for item in items]
    generated = served.generate(prompts, limits, cache, concurrency)
    scores = served.score([item.scored_conversation for item in items], batch_size, cache)
    answers = []
    for index, reply in enumerate(generated):
        score = scores[index] if scores is not None else None
        answers.append(Answer(
            text=reply["text"], finish_reason=reply.get("finish_reason", "stop"),
            completion_tokens=reply.get("completion_tokens"),
            nll=score["nll"] if score else None, tokens=score["tokens"] if score else None,
        ))
    return answers, scores is not None


def item_stats(items: Sequence[EvalItem], answers: Sequence[Answer], glossary: Sequence[GlossaryTerm]) -> list[Stats]:
    return [
        answer_stats(item.kind, answer, lang=item.lang, reference=item.reference, gold=item.gold,
                     options=item.options, glossary=glossary,
                     task=item.task.removeprefix("test:") if item.suite == "test" else None)
        for item, answer in zip(items, answers, strict=True)
    ]
