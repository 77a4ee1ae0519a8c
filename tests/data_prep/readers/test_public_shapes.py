"""Layouts of public medical benchmarks that `format: auto` places (look-alike files written here), and the error,
with a mapping to paste, when it still cannot tell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from data_prep.config import DataConfig, SourceConfig
from data_prep.prepare import prepare
from data_prep.readers import SourceError, detect_format, read_source
from data_prep.records import Record, Reject


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


CODING = [
    {"idx": "a1", "symptoms": "Кашель, насморк и температура 37,5 третий день.", "code": "J06.9"},
    {"idx": "a2", "symptoms": "Боль в пояснице после подъёма тяжести, отдаёт в ногу.", "code": "M54.5"},
    {"idx": "a3", "symptoms": "Жжение при мочеиспускании, частые позывы.", "code": "N30.0"},
    {"idx": "a4", "symptoms": "Головная боль, давление 160/100.", "code": "I10"},
]


def test_complaints_with_an_icd10_code_become_coding_examples_one_patient_per_row(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "coding.jsonl", CODING)
    assert detect_format(path) == "clinic_records"
    card = prepare(DataConfig(sources=[{"path": str(path), "format": "auto", "lang": "ru"}]), tmp_path / "out")
    assert card["records"]["converted"] == 4 and card["records"]["rejected"] == 0
    assert card["examples"]["by_task"].keys() == {"icd10_coding"}
    written = [e for name in ("train", "validation", "test") for e in jsonl(tmp_path / "out" / f"{name}.jsonl")]
    answers = sorted(e["messages"][-1]["content"] for e in written)
    assert answers == ["I10", "J06.9", "M54.5", "N30.0"]
    assert len({e["meta"]["group"] for e in written}) == 4
    assert any("Жжение при мочеиспускании" in e["messages"][-2]["content"] for e in written)


INSTRUCTIONS = [
    {
        "sample_id": 1,
        "input": "以下症状属于哪个科室？患者咳嗽、咳痰一周。选项：呼吸内科，消化内科，骨科",
        "target": "呼吸内科",
        "answer_choices": ["呼吸内科", "消化内科", "骨科"],
        "task_type": "cls",
    },
    {
        "sample_id": 2,
        "input": "判断两句话意思是否相同：“头痛怎么办”与“头疼如何处理”。选项：相同，不同",
        "target": "相同",
        "answer_choices": ["相同", "不同"],
        "task_type": "cls",
    },
    {
        "sample_id": 3,
        "input": "找出句子中的疾病：患者有高血压病史十年。",
        "target": "上述句子中的疾病包括：高血压",
        "answer_choices": ["疾病", "药物"],
        "task_type": "ner",
    },
    {"sample_id": 4, "input": "请解释什么是糖尿病。", "target": "糖尿病是一种血糖长期偏高的代谢性疾病。",
     "answer_choices": [], "task_type": "qa"},
]  # fmt: skip


def test_instruction_rows_in_a_json_that_is_json_lines_become_questions(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "dev.json", INSTRUCTIONS)
    assert detect_format(path) == "exam"
    items = list(read_source(path, SourceConfig(path=str(path), format="auto", lang="zh"))[1])
    assert all(isinstance(i, Record) and not i.eval_only for i in items)
    kinds = [(i.fields["qtype"], i.fields.get("answer_index"), i.fields.get("answer")) for i in items]  # type: ignore[union-attr]
    assert kinds == [
        ("multiple_choice", 0, None),
        ("multiple_choice", 0, None),
        ("open", None, "上述句子中的疾病包括：高血压"),
        ("open", None, "糖尿病是一种血糖长期偏高的代谢性疾病。"),
    ]
    card = prepare(DataConfig(sources=[{"path": str(path), "format": "auto", "lang": "zh"}]), tmp_path / "out")
    assert card["examples"]["by_task"]["multiple_choice"]["made"] == 2
    assert card["examples"]["by_task"]["qa"]["made"] == 2


def test_instruction_rows_without_choices_are_chat(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "answer_choices"} for row in INSTRUCTIONS]
    path = _write_jsonl(tmp_path / "train.json", rows)
    assert detect_format(path) == "chat"
    items = list(read_source(path, SourceConfig(path=str(path), format="auto", lang="zh"))[1])
    first = items[0]
    assert isinstance(first, Record) and first.patient_id == "train.json#1"
    assert first.fields["messages"] == [
        {"role": "user", "content": INSTRUCTIONS[0]["input"]},
        {"role": "assistant", "content": "呼吸内科"},
    ]


CASES = [
    {
        "id": "case-1",
        "title": "Мужчина 58 лет с болью в груди",
        "description": "Давящая боль за грудиной 30 минут, не проходит после нитроглицерина. На ЭКГ подъём ST.",
        "QA_pairs": [
            {"question": "Какой предварительный диагноз?", "answer": "Острый инфаркт миокарда с подъёмом ST."},
            {"question": "Какое лечение показано первым?", "answer": "Экстренная реперфузия: ЧКВ в первые часы."},
        ],
    },
    {
        "id": "case-2",
        "title": "Ребёнок 4 лет с лихорадкой",
        "description": "Температура 39, сыпь на третий день.",
        "QA_pairs": [{"question": "Что исключить в первую очередь?", "answer": ""}],
    },
]


def test_cases_with_question_lists_become_multi_turn_conversations(tmp_path: Path) -> None:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(CASES, ensure_ascii=False), encoding="utf-8")
    assert detect_format(path) == "chat"
    good, broken = read_source(path, SourceConfig(path=str(path), format="auto", lang="ru"))[1]
    assert isinstance(good, Record) and good.patient_id == "cases.json#case-1"
    messages = good.fields["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"] == (
        f"{CASES[0]['title']}\n{CASES[0]['description']}\n\n{CASES[0]['QA_pairs'][0]['question']}"
    )
    assert messages[2]["content"] == "Какое лечение показано первым?"
    assert isinstance(broken, Reject) and (broken.reason, broken.field) == ("invalid_chat", "QA_pairs[0]")


def test_when_auto_cannot_tell_the_error_lists_the_columns_and_a_mapping_that_works_once_pasted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "карта,жалоба_пациента,заключение,мкб_код\n17,Кашель и одышка,Бронхиальная астма,J45.9\n", encoding="utf-8"
    )
    with pytest.raises(SourceError) as caught:
        detect_format(path)
    message = str(caught.value)
    assert "columns: карта, жалоба_пациента, заключение, мкб_код" in message
    pasted = yaml.safe_load(message.split("(check each column):\n", 1)[1])
    assert pasted["columns"]["icd10"] == "мкб_код"
    source = SourceConfig.model_validate({"path": str(path), "lang": "ru", **pasted})
    [record] = read_source(path, source)[1]
    assert isinstance(record, Record) and record.fields["icd10"] == "J45.9"
    assert set(pasted["columns"].values()) == {"карта", "жалоба_пациента", "заключение", "мкб_код"}
