"""Reading clinic records: good lines become Records, every bad line a Reject at file:line."""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.readers import READERS, read_clinic_records
from data_prep.records import Record, Reject


def good(**overrides: object) -> dict:
    record = {
        "record_id": "ru-001",
        "patient_id": "RU-P0001",
        "lang": "ru",
        "department": "Кардиология",
        "complaints": "Одышка при ходьбе.",
        "labs": [{"name": "Гемоглобин", "value": 98, "unit": "г/л", "ref_low": 120, "ref_high": 160}],
        "diagnosis": "Гипертоническая болезнь II стадии",
        "prescriptions": ["Бисопролол 5 мг утром"],
    }
    record.update(overrides)
    return record


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def test_good_line_becomes_a_record_with_its_location(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "ru.jsonl", [good()])
    [record] = list(read_clinic_records(path))
    assert isinstance(record, Record)
    assert (record.source, record.location, record.patient_id, record.lang) == (
        "ru.jsonl",
        "ru.jsonl:1",
        "RU-P0001",
        "ru",
    )
    assert record.fields["labs"][0]["value"] == 98
    assert "patient_id" not in record.fields


def test_bad_lines_become_rejects_pointing_at_file_line_and_field(tmp_path: Path) -> None:
    lines: list[str | dict] = [
        good(),
        '{"patient_id": "RU-P2", "lang": "ru",',  # cut-off JSON
        good(patient_id=None),
        good(diagnosis=""),
        good(labs=[{"name": "Глюкоза", "value": 5.6}, {"name": "Калий", "value": None}]),
        good(lang="de"),
        "[1, 2, 3]",
        good(prescriptions=[1, 2]),
        good(patient={"full_name": 42}),
        good(labs=[{"name": "Глюкоза", "value": 5.6, "ref_high": "6,1"}]),
    ]
    items = list(read_clinic_records(write_lines(tmp_path / "ru.jsonl", lines)))
    assert isinstance(items[0], Record)
    rejects = [(r.location, r.reason, r.field) for r in items[1:]]
    assert rejects == [
        ("ru.jsonl:2", "invalid_json", None),
        ("ru.jsonl:3", "missing_field", "patient_id"),
        ("ru.jsonl:4", "missing_field", "diagnosis"),
        ("ru.jsonl:5", "invalid_field", "labs[1].value"),
        ("ru.jsonl:6", "unsupported_lang", "lang"),
        ("ru.jsonl:7", "not_an_object", None),
        ("ru.jsonl:8", "invalid_field", "prescriptions"),
        ("ru.jsonl:9", "invalid_field", "patient.full_name"),
        ("ru.jsonl:10", "invalid_field", "labs[0].ref_high"),
    ]
    assert all(isinstance(r, Reject) and r.stage == "read" for r in items[1:])


def test_rejects_carry_no_record_content(tmp_path: Path) -> None:
    secret = "Иванов Пётр Сергеевич"
    path = write_lines(tmp_path / "ru.jsonl", [good(patient_id=None, complaints=secret), "{" + secret])
    for reject in read_clinic_records(path):
        assert isinstance(reject, Reject)
        assert secret not in json.dumps(reject.to_json(), ensure_ascii=False)
        assert set(reject.to_json()) <= {"source", "location", "reason", "field", "stage", "task"}


def test_blank_lines_bom_crlf_and_bad_bytes_never_raise(tmp_path: Path) -> None:
    path = tmp_path / "ru.jsonl"
    body = json.dumps(good(), ensure_ascii=False).encode()
    path.write_bytes(b"\xef\xbb\xbf" + body + b"\r\n\r\n" + b"\xff\xfe garbage\n" + body + b"\n")
    items = list(read_clinic_records(path))
    assert [type(i).__name__ for i in items] == ["Record", "Reject", "Record"]
    assert items[1].location == "ru.jsonl:3" and items[1].reason == "bad_encoding"
    assert items[2].location == "ru.jsonl:4"


def test_missing_lang_is_filled_from_the_source(tmp_path: Path) -> None:
    record = good()
    del record["lang"]
    path = write_lines(tmp_path / "kk.jsonl", [record])
    [missing] = list(read_clinic_records(path))
    assert isinstance(missing, Reject) and missing.field == "lang"
    [filled] = list(read_clinic_records(path, lang="kk"))
    assert isinstance(filled, Record) and filled.lang == "kk"


def test_integer_patient_ids_are_read_as_strings(tmp_path: Path) -> None:
    [record] = list(read_clinic_records(write_lines(tmp_path / "a.jsonl", [good(patient_id=1001)])))
    assert isinstance(record, Record) and record.patient_id == "1001"


def test_reader_streams_instead_of_loading_the_file(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "ru.jsonl", [good(), good()])
    items = read_clinic_records(path)
    assert next(items).location == "ru.jsonl:1"
    path.unlink()  # the open handle keeps streaming
    assert next(items).location == "ru.jsonl:2"


def test_registry_names_the_reader_of_each_format() -> None:
    assert READERS["clinic_records"] is read_clinic_records
