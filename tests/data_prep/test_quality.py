"""Quality filters: short, long and duplicate examples are dropped with a reason."""

from __future__ import annotations

from data_prep.config import QualityConfig
from data_prep.quality import filter_examples
from data_prep.records import ChatExample


def example(answer: str, user: str = "Объясните анализы.", n: int = 0) -> ChatExample:
    return ChatExample(
        messages=[
            {"role": "system", "content": "Вы — медицинский ассистент."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ],
        meta={
            "id": f"ru-{n}",
            "lang": "ru",
            "task": "lab_explanation",
            "source": f"ru.jsonl:{n}",
            "group": "g",
        },
    )


LONG_ANSWER = "Гемоглобин 98 г/л — ниже нормы (норма: 120–160 г/л)."


def test_short_answers_are_rejected() -> None:
    kept, rejected = filter_examples([example("Норма."), example(LONG_ANSWER, n=1)], QualityConfig(min_chars=20))
    assert [e.meta["id"] for e in kept] == ["ru-1"]
    [(dropped, reject)] = rejected
    assert dropped.meta["id"] == "ru-0"
    assert reject.to_json() == {
        "source": "ru.jsonl",
        "location": "ru.jsonl:0",
        "reason": "too_short",
        "stage": "quality",
        "task": "lab_explanation",
    }


def test_exact_duplicates_keep_the_first_only() -> None:
    examples = [
        example(LONG_ANSWER, n=0),
        example(LONG_ANSWER, n=1),
        example(LONG_ANSWER, user="Другое", n=2),
    ]
    kept, rejected = filter_examples(examples, QualityConfig(near_dup_threshold=None))
    assert [e.meta["id"] for e in kept] == ["ru-0", "ru-2"]
    assert [(e.meta["id"], r.reason) for e, r in rejected] == [("ru-1", "duplicate")]
    kept, rejected = filter_examples(examples, QualityConfig(dedup=False, near_dup_threshold=None))
    assert len(kept) == 3 and not rejected


def test_long_examples_are_rejected_only_with_a_token_counter() -> None:
    examples = [example(LONG_ANSWER, n=0), example(LONG_ANSWER * 20, n=1)]
    config = QualityConfig(max_tokens=100)

    def count(e: ChatExample) -> int:
        return sum(len(m["content"]) for m in e.messages) // 4

    kept, rejected = filter_examples(examples, config, count)
    assert [e.meta["id"] for e in kept] == ["ru-0"]
    assert [r.reason for _, r in rejected] == ["too_long"]
    kept, rejected = filter_examples(examples, config, None)
    assert len(kept) == 2 and not rejected
    kept, rejected = filter_examples(examples, QualityConfig(max_tokens=None), count)
    assert len(kept) == 2 and not rejected


def test_every_example_is_either_kept_or_rejected() -> None:
    examples = [example(LONG_ANSWER if i % 3 else "да", n=i) for i in range(10)] + [example(LONG_ANSWER, n=1)]
    kept, rejected = filter_examples(examples, QualityConfig())
    assert len(kept) + len(rejected) == len(examples)
