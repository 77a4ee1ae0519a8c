"""MinHash signatures, the near-duplicate index and the example's line and key."""

from __future__ import annotations

import json
import random
import re

import numpy as np

from data_prep.dedup import NUM_PERM, NearDuplicateIndex, example_line, message_key, signature, signatures
from data_prep.records import ChatExample

NOTE = (
    "Пациентка 67 лет поступила с жалобами на головные боли, головокружение и одышку при ходьбе. "
    "Артериальная гипертензия в течение 15 лет, максимальные цифры АД до 210/120 мм рт. ст., адаптирована "
    "к 140/90. Гипотензивную терапию принимала нерегулярно. Ухудшение на фоне стресса, доставлена в стационар. "
    "Назначены эналаприл 10 мг утром и бисопролол 5 мг утром, контроль АД, диета с ограничением соли."
)
ZH_NOTE = (
    "患者因头痛、头晕3天入院。既往高血压病史10年，服药不规律。查体：血压180/100mmHg，心率88次/分。诊断：高血压病3级。"
)


def estimated(a: bytes, b: bytes) -> float:
    return float(np.mean(np.frombuffer(a, np.uint32) == np.frombuffer(b, np.uint32)))


def word_jaccard(a: str, b: str) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def test_signature_estimates_word_trigram_jaccard() -> None:
    rng = random.Random(0)
    words = NOTE.split()
    errors = []
    for _ in range(40):
        edited = list(words)
        for _ in range(rng.randint(1, 12)):
            edited[rng.randrange(len(edited))] = rng.choice(["слабость", "кашель", "12", "отёки"])
        other = " ".join(edited)
        errors.append(estimated(signature(NOTE), signature(other)) - word_jaccard(NOTE, other))
    assert abs(np.mean(errors)) < 0.05  # unbiased
    assert np.std(errors) < 2 * (0.25 / NUM_PERM) ** 0.5  # within MinHash's own spread at 64 values


def test_signature_ignores_case_punctuation_order_of_batch_and_repeats() -> None:
    assert signature(NOTE) == signature(NOTE.upper().replace(",", " ;"))
    texts = [NOTE, ZH_NOTE, "", "да", NOTE + " " + NOTE]
    batch = signatures(texts)
    assert batch == [signature(t) for t in texts] == signatures(texts[::-1])[::-1]
    assert all(len(s) == 4 * NUM_PERM for s in batch)
    assert len(set(batch)) == 5 and batch[0] != batch[4]  # a note said twice has shingles across the seam


def test_chinese_text_uses_character_shingles() -> None:
    edited = ZH_NOTE.replace("10年", "12年")
    assert 0.7 < estimated(signature(ZH_NOTE), signature(edited)) < 1.0
    assert signature(ZH_NOTE) == signature(ZH_NOTE.replace("。", "。 \n"))  # spaces are left out
    assert estimated(signature(ZH_NOTE), signature("患者咳嗽、发热2天，无胸痛。")) < 0.2


def test_near_duplicate_index_catches_near_copies_only() -> None:
    index = NearDuplicateIndex(0.9)
    near = NOTE.replace("15 лет", "16 лет")
    other = NOTE.replace("головные боли", "кашель с мокротой").replace("15 лет", "20 лет").replace("67", "54")
    assert word_jaccard(NOTE, near) > 0.9 > word_jaccard(NOTE, other)
    assert index.seen_before(signature(NOTE)) is False
    assert index.seen_before(signature(near)) is True
    assert index.seen_before(signature(ZH_NOTE)) is False
    assert index.seen_before(signature(ZH_NOTE)) is True


def test_example_line_is_the_json_of_the_example_and_the_key_its_messages() -> None:
    example = ChatExample(
        messages=[{"role": "user", "content": 'Что такое "АД"?\n'}, {"role": "assistant", "content": "Давление."}],
        meta={"lang": "ru", "task": "qa", "source": "q.jsonl:3", "eval_only": False},
    )
    line, key = example_line(example)
    assert line == (json.dumps(example.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n").encode()
    assert json.loads(line) == example.to_json() and line.count(b"\n") == 1  # the content's newline is escaped
    assert key == message_key(example) and len(key) == 32
    other = ChatExample(messages=[dict(m) for m in example.messages], meta={**example.meta, "source": "q.jsonl:9"})
    assert message_key(other) == key  # the same conversation from elsewhere is the same example
    other.messages[1]["content"] = "Артериальное давление."
    assert message_key(other) != key


def test_compact_json_takes_what_orjson_does_not_in_the_same_form() -> None:
    from data_prep.dedup import compact_json

    for number in (2**60, 2**70):  # orjson's own range, then one it refuses
        value = {"id": number, "text": "Жалобы: \x1f", "score": 0.5}
        assert compact_json(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
