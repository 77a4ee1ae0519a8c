"""References for GRPO's rewards in example metadata, and the prompt-only train/validation splits of a GRPO run."""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.config import DataConfig, SourceConfig
from data_prep.prepare import prepare

EXAM = [
    {"question": "Какой препарат вводят первым при анафилаксии?", "options": ["Адреналин", "Дексаметазон"],
     "answer": "A"},
    {"question": "Повышен ли риск инсульта при фибрилляции предсердий?", "answer": "да", "qtype": "yes_no"},
    {"question": "Что назначают при гастрите с H. pylori?", "options": ["Эрадикацию", "Покой"], "answer": 0},
    {"question": "Норма пульса 60–90 в минуту?", "answer": "да", "qtype": "yes_no"},
]


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_prompt_only_splits_keep_the_reference_and_test_keeps_its_answers(tmp_path: Path) -> None:
    exam = tmp_path / "exam.jsonl"
    exam.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in EXAM * 5), encoding="utf-8")
    sources = [SourceConfig(lang="ru", tasks=["icd10_coding"]),
               SourceConfig(path=str(exam), format="exam", lang="ru")]
    config = DataConfig(sources=sources, split={"validation": 0.2, "test": 0.2, "seed": 1},
                        quality={"dedup": False, "near_dup_threshold": None})
    card = prepare(config, tmp_path / "out", prompt_only=True)

    rows = {split: _rows(tmp_path / "out" / f"{split}.jsonl") for split in ("train", "validation", "test")}
    assert sum(len(r) for r in rows.values()) == sum(card["splits"][s]["examples"] for s in rows)
    kinds = set()
    for split in ("train", "validation"):
        for row in rows[split]:
            assert row["messages"][-1]["role"] == "user"  # prompt only
            kinds.add(row["meta"]["reference"]["kind"])
    assert kinds == {"icd10", "choice", "yes_no"}
    assert rows["test"] and all(row["messages"][-1]["role"] == "assistant" for row in rows["test"])
    choice = next(r["meta"]["reference"] for r in rows["train"] + rows["test"]
                  if r["meta"]["task"] == "multiple_choice")
    assert choice["answer"] == "A" and choice["options"]["A"] in ("Адреналин", "Эрадикацию")
    codes = [r["meta"]["reference"]["code"] for r in rows["train"] if r["meta"]["task"] == "icd10_coding"]
    assert codes and all(code[0].isalpha() and code[1:3].isdigit() for code in codes)


def test_sft_splits_carry_the_reference_beside_the_answer(tmp_path: Path) -> None:
    exam = tmp_path / "exam.jsonl"
    exam.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in EXAM), encoding="utf-8")
    config = DataConfig(sources=[SourceConfig(path=str(exam), format="exam", lang="ru")],
                        split={"validation": 0.0, "test": 0.0, "seed": 1})
    prepare(config, tmp_path / "out")
    rows = _rows(tmp_path / "out" / "train.jsonl")
    assert len(rows) == 4 and all(row["messages"][-1]["role"] == "assistant" for row in rows)
    references = [row["meta"]["reference"] for row in rows]
    assert references.count({"kind": "yes_no", "answer": "yes"}) == 2
    assert [ref["answer"] for ref in references if ref["kind"] == "choice"] == ["A", "A"]
