"""Preference pairs: a reviewed pair file (JSONL, CSV, XLSX) and reviewed evaluation answers, through prepare."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from openpyxl import Workbook

from data_prep.config import DataConfig, SourceConfig
from data_prep.prepare import prepare
from data_prep.readers import detect_format
from data_prep.readers.preference import read_preferences
from data_prep.records import Record, Reject

PAIRS = [
    {"prompt": "Как принимать метформин?", "chosen": "Во время еды, дважды в день, как назначил врач.",
     "rejected": "Натощак, сколько хотите."},
    {"prompt": "Что означает гемоглобин 98 г/л?", "chosen": "Это ниже нормы: возможна анемия, обратитесь к врачу.",
     "rejected": ""},  # a side missing
    {"prompt": "Давление 150/95 — это много?", "chosen": "Да, это гипертензия.", "rejected": "Да, это гипертензия."},
    {"prompt": "Нужен ли рентген при кашле три недели?", "chosen": "Да, нужна рентгенография грудной клетки.",
     "rejected": "Нет, само пройдёт. Звоните мне: +7 916 123-45-67."},
]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


def _outcome(items: list) -> tuple[list[Record], list[Reject]]:
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, Reject)]


def test_pairs_with_a_missing_or_identical_side_are_rejected_with_their_line(tmp_path: Path) -> None:
    source = _write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    assert detect_format(source) == "preference"
    records, rejects = _outcome(list(read_preferences(source, "ru")))
    assert [r.fields["prompt"] for r in records] == [PAIRS[0]["prompt"], PAIRS[3]["prompt"]]
    assert [(r.location, r.reason, r.field) for r in rejects] == [
        ("pairs.jsonl:2", "missing_field", "rejected"), ("pairs.jsonl:3", "identical_answers", "rejected"),
    ]


def test_csv_and_xlsx_pairs_read_like_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    with path.open("w", encoding="cp1251", newline="") as handle:  # a Russian export in cp1251
        writer = csv.DictWriter(handle, fieldnames=["prompt", "chosen", "rejected"], delimiter=";")
        writer.writeheader()
        writer.writerows(PAIRS)
    records, rejects = _outcome(list(read_preferences(path, "ru")))
    assert [r.location for r in records] == ["pairs.csv:2", "pairs.csv:5"]  # file lines, the header being line 1
    assert [(r.location, r.reason) for r in rejects] == [("pairs.csv:3", "missing_field"),
                                                         ("pairs.csv:4", "identical_answers")]
    book = Workbook()
    sheet = book.active
    sheet.append(["вопрос", "chosen", "rejected"])  # a Russian heading for the prompt
    for pair in PAIRS:
        sheet.append([pair["prompt"], pair["chosen"], pair["rejected"] or None])
    book.save(tmp_path / "pairs.xlsx")
    records, rejects = _outcome(list(read_preferences(tmp_path / "pairs.xlsx", "ru")))
    assert [r.fields["chosen"] for r in records] == [PAIRS[0]["chosen"], PAIRS[3]["chosen"]]
    assert [r.reason for r in rejects] == ["missing_field", "identical_answers"]


def test_reviewed_evaluation_answers_become_pairs(tmp_path: Path) -> None:
    def answer(model: str, item: str, prediction: str, mark: str = "") -> dict:
        prompt = [{"role": "system", "content": "Вы — врач."}, {"role": "user", "content": f"Вопрос {item}?"}]
        return {"model": model, "id": item, "lang": "ru", "prompt": prompt, "prediction": prediction,
                "reference": "…", "preferred": mark}

    rows = [answer("base", "1", "Не знаю."), answer("base", "2", "Ответ: A", "yes"), answer("base", "3", "A"),
            answer("tuned", "1", "Ответ: B) Гастрит", "✓"), answer("tuned", "2", "Ответ: B"),
            answer("tuned", "3", "B"), answer("base", "4", "x", "да"), answer("tuned", "4", "y", "1")]
    source = _write_jsonl(tmp_path / "generations.jsonl", rows)
    assert detect_format(source) == "preference"
    items = list(read_preferences(source, "ru"))
    records, rejects = _outcome(items)
    assert [(r.fields["chosen"], r.fields["rejected"]) for r in records] == [
        ("Ответ: B) Гастрит", "Не знаю."), ("Ответ: A", "Ответ: B"),
    ]
    assert [r.fields["prompt"] for r in records] == ["Вопрос 1?", "Вопрос 2?"]
    assert [(r.reason, r.field) for r in rejects] == [("more_than_one_preferred", "preferred")]
    assert [i.reason for i in items if not isinstance(i, Record | Reject)] == ["not_reviewed"]  # item 3


def test_prepare_writes_pairs_deidentified_with_rejects_and_card(tmp_path: Path) -> None:
    source = _write_jsonl(tmp_path / "pairs.jsonl", PAIRS)
    config = DataConfig(sources=[SourceConfig(path=str(source), format="preference", lang="ru")],
                        split={"validation": 0.0, "test": 0.0, "seed": 1})
    card = prepare(config, tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 and {row["meta"]["task"] for row in rows} == {"preference"}
    assert rows[0]["messages"][-1] == {"role": "assistant", "content": PAIRS[0]["chosen"]}
    assert rows[0]["meta"]["rejected"] == PAIRS[0]["rejected"]
    assert "916 123-45-67" not in rows[1]["meta"]["rejected"]  # the rejected side is de-identified too
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["location"], r["reason"]) for r in rejects] == [
        ("pairs.jsonl:2", "missing_field"), ("pairs.jsonl:3", "identical_answers"),
    ]
    assert json.dumps(card, ensure_ascii=False).count("preference") >= 1
