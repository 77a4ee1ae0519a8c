"""Folders of exports, and input that is not what it should be: every format reads a folder of its files
(recursively, in a stable order, each record located by its file), `auto` decides per file, and an empty file,
an empty folder, garbage bytes or a folder where a file is expected end in a message, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from data_prep.config import DataConfig, FormatName, SourceConfig
from data_prep.prepare import prepare
from data_prep.readers import Skip, SourceError, read_source
from data_prep.records import Record, Reject

ICD10 = "http://hl7.org/fhir/sid/icd-10"


def _bundle(i: int) -> str:
    patient = f"urn:uuid:pt-{i}"
    entries = [
        {"fullUrl": patient, "resource": {"resourceType": "Patient", "id": f"pt-{i}", "name": [{"family": "Ли"}]}},
        {
            "fullUrl": f"urn:uuid:enc-{i}",
            "resource": {
                "resourceType": "Encounter",
                "id": f"enc-{i}",
                "subject": {"reference": patient},
                "period": {"start": "2024-03-1{i}T10:00:00", "end": "2024-03-2{i}"},
                "reasonCode": [{"text": "Кашель и одышка"}],
            },
        },
        {
            "resource": {
                "resourceType": "Condition",
                "subject": {"reference": patient},
                "encounter": {"reference": f"urn:uuid:enc-{i}"},
                "code": {"coding": [{"system": ICD10, "code": "J20.9", "display": "Бронхит"}]},
            }
        },
    ]
    return json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}, ensure_ascii=False)


HL7 = (
    "MSH|^~\\&|LIS|HOSP|EHR|HOSP|20240312101500||ORU^R01|MSG{i}|P|2.5\r"
    "PID|1||RU-{i}^^^HOSP||Петров^Иван||19700101|M\r"
    "DG1|1||J18.9^Пневмония^I10\r"
    "OBX|1|NM|718-7^Гемоглобин^LN||98|г/л|120-160|L|||F\r"
)
CCDA = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3">
  <recordTarget><patientRole><id extension="MRN-{i}" root="2.16.840.1.113883.19"/></patientRole></recordTarget>
  <component><structuredBody>
    <component><section><code code="10154-3"/><title>Chief complaint</title>
      <text>Chest pain for {i} days.</text></section></component>
  </structuredBody></component>
</ClinicalDocument>
"""
CLINIC = '{{"patient_id": "p{i}", "lang": "ru", "complaints": "Кашель {i} дней", "diagnosis": "Бронхит"}}\n'
NOTE = "Жалобы: головная боль {i} дней.\nДиагноз: Мигрень (G43.9).\n"
DIALOGUE = "Пациент: Болит голова уже {i} дня.\nВрач: Давление измеряли?\nПациент: Нет.\nВрач: Измерьте сегодня.\n"
EXAM = '{{"question": "Вопрос {i}: препарат выбора при АГ?", "options": ["A", "B", "C"], "answer": "A"}}\n'
CHAT = '{{"messages": [{{"role": "user", "content": "Вопрос {i}?"}}, {{"role": "assistant", "content": "Ответ."}}]}}\n'
GLOSSARY = "термин,определение\nТермин {i},Определение термина номер {i}\n"
PREFERENCE = '{{"prompt": "Вопрос {i}?", "chosen": "Хороший ответ {i}.", "rejected": "Плохой ответ."}}\n'

FILES: dict[str, tuple[str, str]] = {
    "clinic_records": (".jsonl", CLINIC),
    "fhir": (".json", "{bundle}"),
    "hl7v2": (".hl7", HL7),
    "ccda": (".xml", CCDA),
    "notes": (".txt", NOTE),
    "dialogue": (".txt", DIALOGUE),
    "exam": (".jsonl", EXAM),
    "chat": (".jsonl", CHAT),
    "glossary": (".csv", GLOSSARY),
    "preference": (".jsonl", PREFERENCE),
}
"""A small file of each format that makes one record; ``{i}`` numbers it."""
FOLDER_FORMATS = [f for f in get_args(FormatName) if f not in ("auto", "brat")]


def _content(fmt: str, i: int) -> str:
    template = FILES[fmt][1]
    return _bundle(i) if fmt == "fhir" else template.format(i=i)


def _folder(root: Path, fmt: str) -> Path:
    """b/2, a/1 and 3 under the folder, plus a PDF and a hidden file that no format reads."""
    suffix = FILES[fmt][0]
    for place, i in (("b/f2", 2), ("a/f1", 1), ("f3", 3)):
        path = root / f"{place}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_content(fmt, i), encoding="utf-8")
    (root / "manifest.pdf").write_bytes(b"%PDF-1.4")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def _read(path: Path, fmt: str) -> tuple[str, list[Record | Reject | Skip]]:
    items: list[Record | Reject | Skip] = []  # what the readers skip, in place among the rest
    found, stream = read_source(path, SourceConfig(path=str(path), format=fmt, lang="auto"), items.append)  # type: ignore[arg-type]
    for item in stream:
        items.append(item)
    return found, items


def test_every_format_has_a_folder_sample() -> None:
    assert set(FILES) == set(FOLDER_FORMATS)


@pytest.mark.parametrize("declared", ["named", "auto"])
@pytest.mark.parametrize("fmt", FOLDER_FORMATS)
def test_a_folder_of_files_is_read_recursively_in_order_each_record_located_by_its_file(
    tmp_path: Path, fmt: str, declared: str
) -> None:
    folder = _folder(tmp_path / "export", fmt)
    found, items = _read(folder, fmt if declared == "named" else "auto")
    assert found == fmt
    read = [i for i in items if isinstance(i, Record)]
    assert [r.source for r in read] == [f"a/f1{FILES[fmt][0]}", f"b/f2{FILES[fmt][0]}", f"f3{FILES[fmt][0]}"]
    assert all(r.location.startswith(r.source) for r in read)
    skipped = [i for i in items if isinstance(i, Skip)]
    assert [(s.source, s.reason, s.what) for s in skipped] == [("manifest.pdf", "not_an_export", ".pdf")]
    assert not [i for i in items if isinstance(i, Reject)]


@pytest.mark.parametrize("fmt", [*FOLDER_FORMATS, "brat", "auto"])
def test_empty_files_empty_folders_garbage_and_folders_give_messages_not_tracebacks(tmp_path: Path, fmt: str) -> None:
    empty_file = tmp_path / f"empty{FILES.get(fmt, ('.txt',))[0]}"
    empty_file.write_bytes(b"")
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    garbage = tmp_path / f"garbage{FILES.get(fmt, ('.txt',))[0]}"
    garbage.write_bytes(bytes(range(256)) * 8)
    for path in (empty_file, empty_dir, garbage):
        try:
            _, items = _read(path, fmt)
        except SourceError as exc:
            assert path.name in str(exc)
        else:
            assert all(isinstance(i, Reject) for i in items) and items, (path, items)
    half = tmp_path / "half"
    half.mkdir()
    (half / f"good{FILES.get(fmt, ('.txt',))[0]}").write_text(_content(fmt if fmt in FILES else "notes", 1), "utf-8")
    (half / f"zero{FILES.get(fmt, ('.txt',))[0]}").write_bytes(b"")
    if fmt == "brat":
        (half / "good.ann").write_text("T1\tDisease 10 18\tголовная\n", encoding="utf-8")
    _, items = _read(half, fmt)
    zero = [i for i in items if i.source.startswith("zero")]
    assert [(type(i).__name__, i.reason) for i in zero] == [("Reject", "empty_file")] or fmt == "brat"
    assert any(isinstance(i, Record) for i in items)


def test_a_folder_of_bundles_prepares_every_encounter_and_an_empty_one_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "bundles"
    for i in range(1, 5):
        (folder / f"patient{i}").mkdir(parents=True)
        (folder / f"patient{i}" / "bundle.json").write_text(_bundle(i), encoding="utf-8")
    card = prepare(DataConfig(sources=[{"path": str(folder), "format": "auto", "lang": "ru"}]), tmp_path / "out")
    assert card["records"]["converted"] == 4 and card["examples"]["written"] > 0
    assert set(card["records"]["by_source"]) == {f"patient{i}/bundle.json" for i in range(1, 5)}
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    (nothing / "notes.pdf").write_bytes(b"%PDF-1.4")
    for fmt in ("auto", "fhir"):
        with pytest.raises(SourceError, match=r"nothing.*(1 \.pdf)"):
            config = DataConfig(sources=[{"path": str(nothing), "format": fmt, "lang": "auto"}])
            prepare(config, tmp_path / f"out-{fmt}")


def test_auto_decides_per_file_and_refuses_a_folder_that_mixes_kinds(tmp_path: Path) -> None:
    folder = tmp_path / "clinical"
    folder.mkdir()
    (folder / "a.json").write_text(_bundle(1), encoding="utf-8")
    (folder / "b.xml").write_text(_content("ccda", 2), encoding="utf-8")
    (folder / "c.hl7").write_text(_content("hl7v2", 3), encoding="utf-8")
    (folder / "d.txt").write_text(_content("notes", 4), encoding="utf-8")
    (folder / "e.json").write_text("{not json", encoding="utf-8")
    found, items = _read(folder, "auto")
    assert found in ("fhir", "ccda", "hl7v2", "notes")
    assert [(type(i).__name__, i.source) for i in items] == [
        ("Record", "a.json"),
        ("Record", "b.xml"),
        ("Record", "c.hl7"),
        ("Record", "d.txt"),
        ("Reject", "e.json"),
    ]
    (folder / "f.txt").write_text(_content("dialogue", 5), encoding="utf-8")
    with pytest.raises(SourceError, match="mixes files that make different kinds of record"):
        _read(folder, "auto")
