"""Readers of every export format, on small files written here in Russian, Kazakh, Chinese and English."""

from __future__ import annotations

import base64
import json
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import get_args

import pytest

from data_prep.config import FormatName, SourceConfig
from data_prep.readers import READERS, Skip, SourceError, detect_format, read_source
from data_prep.records import Record, Reject


def read(path: Path, fmt: str = "auto", lang: str = "auto", **options: object) -> list[Record | Reject]:
    source = SourceConfig.model_validate({"path": str(path), "format": fmt, "lang": lang, **options})
    items: list[Record | Reject | Skip] = []  # what the readers skip, in place among the rest
    for item in read_source(path, source, items.append)[1]:
        items.append(item)
    return items  # type: ignore[return-value]


def records(items: list[Record | Reject]) -> list[Record]:
    return [i for i in items if isinstance(i, Record)]


# --- CSV / TSV, encodings, mapping ----------------------------------------------------------------

RU_CSV = (
    "ID пациента;ФИО;Жалобы;Диагноз;Код МКБ;Рекомендации\n"
    'P-1;Иванов Пётр Сергеевич;"Головная боль,\nтошнота в течение трёх дней";Гипертоническая болезнь II стадии;'
    "I11.9;Контроль АД\n"
    "P-2;Смирнова Ольга;Кашель с мокротой, температура 38,5;Внебольничная пневмония;J18.9;Рентген через 2 недели\n"
)


@pytest.mark.parametrize("encoding", ["cp1251", "utf-8", "utf-8-sig", "utf-16"])
def test_russian_csv_in_any_encoding_with_embedded_newline_and_known_headings(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "ru.csv"
    path.write_bytes(RU_CSV.encode(encoding))
    items = read(path, lang="ru")
    assert [type(i).__name__ for i in items] == ["Record", "Record"]
    first, second = items
    assert first.fields["complaints"] == "Головная боль,\nтошнота в течение трёх дней"
    assert first.fields["patient"] == {"full_name": "Иванов Пётр Сергеевич"}
    assert (first.fields["icd10"], first.patient_id) == ("I11.9", "P-1")
    assert (first.location, second.location) == ("ru.csv:2", "ru.csv:4")  # the quoted newline takes a line


def test_chinese_gbk_csv_and_kazakh_utf16_tsv(tmp_path: Path) -> None:
    zh = tmp_path / "zh.csv"
    zh.write_bytes(
        "患者编号,姓名,主诉,诊断,医嘱\nZ1,王建国,头痛三天伴恶心呕吐,高血压病,低盐饮食定期复查\nZ2,李秀英,咳嗽咳痰一周伴发热,社区获得性肺炎,多饮水\n".encode(
            "gbk"
        )
    )
    [a, b] = read(zh, lang="zh")
    assert a.fields["diagnosis"] == "高血压病" and b.fields["complaints"] == "咳嗽咳痰一周伴发热"
    kk = tmp_path / "kk.tsv"
    kk.write_bytes(
        "patient_id\tШағымдары\tДиагнозы\nK1\tБас ауруы, әлсіздік\tАртериялық гипертензия\n".encode("utf-16")
    )
    [record] = read(kk, lang="kk")
    assert record.fields["complaints"] == "Бас ауруы, әлсіздік"


def test_explicit_column_mapping_and_missing_mapped_column(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("pid,txt,dx\n7,Одышка при ходьбе,ХСН\n", encoding="utf-8")
    [record] = read(
        path, fmt="clinic_records", lang="ru", columns={"patient_id": "pid", "complaints": "txt", "diagnosis": "dx"}
    )
    assert (record.patient_id, record.fields["complaints"], record.fields["diagnosis"]) == (
        "7",
        "Одышка при ходьбе",
        "ХСН",
    )
    with pytest.raises(
        SourceError, match=r"export.csv: mapped column\(s\) 'Диагноз' \(for diagnosis\) not in the file"
    ):
        read(path, fmt="clinic_records", lang="ru", columns={"diagnosis": "Диагноз"})


def test_xlsx_and_parquet_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Выписки"
    sheet.append(["patient_id", "complaints", "diagnosis", "admission_date"])
    sheet.append([101, "Боль в груди", "ИБС", None])
    sheet.append([102, "Слабость", "Анемия", None])
    book.save(tmp_path / "visits.xlsx")
    items = read(tmp_path / "visits.xlsx", lang="ru")
    assert [r.location for r in records(items)] == ["visits.xlsx:Выписки!2", "visits.xlsx:Выписки!3"]
    assert records(items)[0].patient_id == "101"
    table = pa.table({"patient_id": ["a", "b"], "complaints": ["胸痛", "乏力"], "diagnosis": ["冠心病", "贫血"]})
    pq.write_table(table, tmp_path / "visits.parquet")
    items = read(tmp_path / "visits.parquet", lang="zh")
    assert [(r.location, r.fields["diagnosis"]) for r in records(items)] == [
        ("visits.parquet:row 1", "冠心病"),
        ("visits.parquet:row 2", "贫血"),
    ]


def test_json_array_json_that_is_json_lines_and_u_escapes(tmp_path: Path) -> None:
    row = {"patient_id": "P1", "lang": "ru", "complaints": "Кашель", "diagnosis": "Бронхит"}
    array = tmp_path / "array.json"
    array.write_text(json.dumps([row, row | {"patient_id": "P2"}]), encoding="utf-8")  # ensure_ascii: \u escapes
    assert "\\u041a" in array.read_text()
    items = read(array)
    assert [r.location for r in records(items)] == ["array.json:[0]", "array.json:[1]"]
    assert records(items)[0].fields["complaints"] == "Кашель"
    lines = tmp_path / "lines.json"
    lines.write_text("\n".join(json.dumps(row | {"patient_id": f"P{i}"}) for i in range(3)), encoding="utf-8")
    assert [r.location for r in records(read(lines))] == ["lines.json:1", "lines.json:2", "lines.json:3"]


def test_json_lines_keep_huge_integers_nan_and_lone_surrogate_escapes(tmp_path: Path) -> None:
    """Read exactly as `json` reads them (a faster parser that turns a 30-digit ID into a float must not slip in);
    a broken line is a reject."""
    lines = [
        '{"patient_id": 123456789012345678901234567890, "complaints": "Кашель", "diagnosis": "ОРВИ"}',
        '{"patient_id": "P2", "complaints": "Одышка", "diagnosis": "ХСН", "temperature": NaN}',
        '{"patient_id": "P3", "complaints": "Слабость \\ud83d", "diagnosis": "Анемия"}',
        '{"patient_id": "P4", "complaints": "Боль в груди", "diagnosis": "ИБС"',
    ]
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = read(path, lang="ru")
    read_fields = [r.fields for r in records(items)]
    assert [json.loads(line)["complaints"] for line in lines[:3]] == [f["complaints"] for f in read_fields]
    assert read_fields[1]["temperature"] != read_fields[1]["temperature"]  # NaN
    assert [r.patient_id for r in records(items)] == ["123456789012345678901234567890", "P2", "P3"]
    assert [(i.location, i.reason) for i in items if isinstance(i, Reject)] == [("odd.jsonl:4", "invalid_json")]


# --- FHIR -----------------------------------------------------------------------------------------


def _bundle(kind: str) -> dict:
    note = "Жалобы: одышка.\nДиагноз: Хроническая сердечная недостаточность (I50.0).\nРекомендации: контроль веса."
    patient_ref = "urn:uuid:p1" if kind == "transaction" else "Patient/p1"
    entries = [
        {
            "resource": {
                "resourceType": "Observation",
                "subject": {"reference": patient_ref},
                "code": {"text": "Гемоглобин"},
                "valueQuantity": {"value": 98, "unit": "г/л"},
                "referenceRange": [{"low": {"value": 120}, "high": {"value": 160}}],
            }
        },
        {
            "fullUrl": "urn:uuid:p1" if kind == "transaction" else "http://h/fhir/Patient/p1",
            "resource": {
                "resourceType": "Patient",
                "id": "p1",
                "name": [{"family": "Иванов", "given": ["Пётр"]}],
                "birthDate": "1961-05-04",
                "telecom": [{"system": "phone", "value": "+7 916 482 17 39"}],
                "communication": [{"language": {"coding": [{"code": "ru"}]}}],
            },
            "request": {"method": "POST", "url": "Patient"},
        },
        {
            "resource": {
                "resourceType": "Encounter",
                "subject": {"reference": patient_ref},
                "period": {"start": "2024-03-12T10:00:00", "end": "2024-03-20"},
                "serviceType": {"text": "Кардиология"},
            }
        },
        {
            "resource": {
                "resourceType": "Condition",
                "subject": {"reference": patient_ref},
                "code": {
                    "coding": [
                        {
                            "system": "http://hl7.org/fhir/sid/icd-10",
                            "code": "I11.9",
                            "display": "Гипертоническая болезнь",
                        }
                    ]
                },
            }
        },
        {
            "resource": {
                "resourceType": "MedicationRequest",
                "subject": {"reference": patient_ref},
                "medicationCodeableConcept": {"text": "Бисопролол 5 мг"},
                "dosageInstruction": [{"text": "утром"}],
            }
        },
        {
            "resource": {
                "resourceType": "AllergyIntolerance",
                "patient": {"reference": patient_ref},
                "code": {"text": "Пенициллин"},
            }
        },
        {
            "resource": {
                "resourceType": "Procedure",
                "subject": {"reference": patient_ref},
                "code": {"text": "Коронарография"},
            }
        },
        {
            "resource": {
                "resourceType": "DocumentReference",
                "subject": {"reference": patient_ref},
                "content": [
                    {
                        "attachment": {
                            "contentType": "text/plain; charset=utf-8",
                            "data": base64.b64encode(note.encode()).decode(),
                        }
                    }
                ],
            }
        },
        {"resource": {"resourceType": "Basic", "subject": {"reference": patient_ref}}},
        {
            "resource": {
                "resourceType": "Observation",
                "code": {"text": "Глюкоза"},
                "valueQuantity": {"value": 5.6, "unit": "ммоль/л"},
            }
        },
    ]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


@pytest.mark.parametrize("kind", ["collection", "transaction", "batch", "searchset"])
def test_fhir_bundles_become_one_record_per_patient(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(_bundle(kind), ensure_ascii=False), encoding="utf-8")
    assert detect_format(path) == "fhir"
    items = read(path)
    rejects = [(r.location, r.reason, r.field) for r in items if isinstance(r, Reject)]
    assert rejects == [("bundle.json:entry[9]", "missing_reference", "subject")]
    skips = [(s.location, s.reason, s.what) for s in items if isinstance(s, Skip)]
    assert skips == [("bundle.json:entry[8]", "unread_resource", "Basic")]
    [record] = records(items)
    fields = record.fields
    assert record.lang == "ru" and record.location == "bundle.json:entry[2]"  # its encounter
    assert fields["labs"] == [{"name": "Гемоглобин", "value": 98, "unit": "г/л", "ref_low": 120, "ref_high": 160}]
    assert (fields["admission_date"], fields["discharge_date"], fields["department"]) == (
        "2024-03-12",
        "2024-03-20",
        "Кардиология",
    )
    assert fields["diagnosis"].startswith("Гипертоническая болезнь") and fields["icd10"] == "I11.9"
    assert fields["prescriptions"] == ["Бисопролол 5 мг утром"]
    assert fields["allergies"] == ["Пенициллин"] and fields["procedures"] == ["Коронарография"]
    assert fields["complaints"] == "одышка." and fields["recommendations"] == "контроль веса."
    assert fields["patient"]["full_name"] == "Иванов Пётр"


# --- HL7 v2 ---------------------------------------------------------------------------------------

ORU = [
    "MSH|^~\\&|LIS|HOSP|EHR|HOSP|20240312101500||ORU^R01|MSG0001|P|2.5",
    "PID|1||KZ-77^^^HOSP||Әбенов^Нұрлан^Серікұлы||19680712|M|||Абай даңғылы 150^^Алматы||+77012345678||kk",
    "PV1|"
    + "|".join(
        ["1", "I", "Кардиология^101^1", "", "", "", "D01^Сейітова^Айгүл"] + [""] * 36 + ["20240312", "20240320"]
    ),
    "DG1|1||I11.9^Гипертониялық ауру^I10",
    "OBX|1|NM|718-7^Гемоглобин^LN||98|г/л|120-160|L|||F",
    "OBX|2|NM|2345-7^Глюкоза^LN||5.6|ммоль/л|3.9-6.1|N|||F",
    "NTE|1||Науқас шағымдары: бас ауруы",
]


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"])
def test_hl7_oru_with_any_segment_separator(tmp_path: Path, newline: str) -> None:
    path = tmp_path / "results.hl7"
    adt = [
        "MSH|^~\\&|ADT|HOSP|||20240101||ADT^A01|M2|P|2.5",
        "PID|1||RU-5||Петров^Иван||19700101|M",
        "DG1|1||J18.9^Пневмония^I10",
    ]
    path.write_bytes(newline.join(ORU + adt).encode("utf-8"))
    [oru, adt_record] = read(path, lang="auto")
    assert isinstance(oru, Record) and oru.lang == "kk" and oru.patient_id == "KZ-77"
    assert oru.fields["labs"][0] == {"name": "Гемоглобин", "value": 98, "unit": "г/л", "ref_low": 120, "ref_high": 160}
    assert (oru.fields["icd10"], oru.fields["admission_date"], oru.fields["doctor"]) == (
        "I11.9",
        "2024-03-12",
        "Сейітова Айгүл",
    )
    assert oru.fields["patient"]["full_name"] == "Әбенов Нұрлан Серікұлы"
    assert isinstance(adt_record, Record) and adt_record.fields["diagnosis"] == "Пневмония"
    assert adt_record.location == "results.hl7:message 2 (line 8)"


# --- C-CDA ----------------------------------------------------------------------------------------

CCDA = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <languageCode code="en-US"/>
  <recordTarget><patientRole><id extension="MRN-998" root="2.16.840.1.113883.19"/>
    <addr><streetAddressLine>12 Oak Street</streetAddressLine><city>Springfield</city></addr>
    <telecom value="tel:+1-555-201-3344"/>
    <patient><name><given>John</given><family>Carter</family></name><birthTime value="19600115"/></patient>
  </patientRole></recordTarget>
  <component><structuredBody>
    <component><section><code code="10154-3"/><title>Chief complaint</title>
      <text><paragraph>Chest pain on exertion for two weeks.</paragraph></text></section></component>
    <component><section><code code="11450-4"/><title>Problems</title>
      <text><list><item>Stable angina</item></list></text>
      <entry><observation><value xsi:type="CD" code="I20.8" codeSystem="2.16.840.1.113883.6.90"/></observation></entry>
    </section></component>
    <component><section><code code="30954-2"/><title>Results</title><text>see entries</text>
      <entry><observation><code displayName="LDL cholesterol"/><value xsi:type="PQ" value="4.9" unit="mmol/L"/>
        <referenceRange><observationRange><value><high value="3.0"/></value></observationRange></referenceRange>
      </observation></entry></section></component>
    <component><section><code code="10160-0"/><title>Medications</title>
      <text><list><item>Atorvastatin 40 mg daily</item><item>Aspirin 75 mg daily</item></list></text>
      </section></component>
    <component><section><code code="18776-5"/><title>Plan</title>
      <text>Stress test in one month.</text></section></component>
  </structuredBody></component>
</ClinicalDocument>
"""


def test_ccda_sections_entries_and_patient(tmp_path: Path) -> None:
    path = tmp_path / "discharge.xml"
    path.write_text(CCDA, encoding="utf-8")
    assert detect_format(path) == "ccda"
    [record] = read(path)
    assert isinstance(record, Record) and (record.lang, record.patient_id) == ("en", "MRN-998")
    fields = record.fields
    assert fields["complaints"] == "Chest pain on exertion for two weeks."
    assert (fields["diagnosis"], fields["icd10"]) == ("Stable angina", "I20.8")
    assert fields["labs"] == [{"name": "LDL cholesterol", "value": 4.9, "unit": "mmol/L", "ref_high": 3}]
    assert fields["prescriptions"] == ["Atorvastatin 40 mg daily", "Aspirin 75 mg daily"]
    assert fields["recommendations"] == "Stress test in one month."
    assert fields["patient"]["full_name"] == "Carter John" and fields["patient"]["phone"] == "+1-555-201-3344"


# --- free-text notes ------------------------------------------------------------------------------

NOTES = {
    "ru": "ID пациента: R-1\nФИО: Иванов Пётр Сергеевич\n\nЖалобы: головная боль.\nАнамнез: АГ 10 лет.\n"
    "Диагноз: Гипертоническая болезнь II ст. (I11.9)\nЛечение: эналаприл 10 мг.\nРекомендации: контроль АД.",
    "kk": "Шағымдары: жөтел, дене қызуы 38.\nАнамнезі: 3 күн бұрын ауырған.\nДиагнозы: J18.9 Пневмония\n"
    "Емі: цефтриаксон.\nҰсыныстар: төсек режимі.",
    "zh": "主诉：头痛3天。\n现病史：患者3天前出现头痛。\n既往史：高血压10年。\n诊断：高血压病（I10）\n"
    "治疗：氨氯地平5 mg。\n医嘱：低盐饮食。",
}


def test_notes_are_split_into_sections_and_tell_their_language(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("\n=====\n".join(NOTES.values()) + "\n=====\nПросто текст без заголовков.\n", encoding="utf-8")
    assert detect_format(path) == "notes"
    items = read(path)
    ru, kk, zh, bad = items
    assert isinstance(ru, Record) and ru.patient_id == "R-1" and ru.fields["patient"]["full_name"].startswith("Иванов")
    assert (ru.lang, kk.lang, zh.lang) == ("ru", "kk", "zh")
    assert (ru.fields["icd10"], kk.fields["icd10"], zh.fields["icd10"]) == ("I11.9", "J18.9", "I10")
    assert zh.fields["past_history"] == "高血压10年。" and kk.fields["prescriptions"] == "цефтриаксон."
    assert isinstance(bad, Record) and bad.location == "notes.txt:23"
    assert bad.fields == {"note": "Просто текст без заголовков."} and bad.lang == "auto"


PROSE = {
    "ru": "Пациент Петров Иван Сергеевич, 54 года, поступил с давящими болями за грудиной, возникшими после "
    "физической нагрузки. На ЭКГ депрессия сегмента ST. Проведена коронарография, выписан в удовлетворительном "
    "состоянии под наблюдение кардиолога, телефон +7 912 345-67-89.",
    "kk": "Науқас үш күн бойы жөтелге және дене қызуының көтерілуіне шағымданып түсті. Өкпенің рентгенограммасында "
    "оң жақ төменгі бөлікте инфильтрация анықталды. Антибиотикпен ем жүргізілді, жағдайы жақсарып шығарылды.",
    "zh": "患者因反复头晕三年，加重一周入院。入院后完善相关检查，血压最高180/110 mmHg，予降压治疗后症状好转，"
    "病情稳定出院，嘱低盐饮食，定期复查血压。",
}


def test_prose_notes_without_headings_become_one_free_text_section_each(tmp_path: Path) -> None:
    folder = tmp_path / "discharge"
    folder.mkdir()
    for lang, text in PROSE.items():
        (folder / f"{lang}.txt").write_text("ФИО: Петров Иван Сергеевич\n\n" + text + "\n", encoding="utf-8")
    (folder / "only_header.txt").write_text("ФИО: Петров Иван Сергеевич\n", encoding="utf-8")
    assert detect_format(folder / "ru.txt") == "notes"
    items = read(folder, fmt="notes")
    kk, only_header, ru, zh = items
    assert [r.fields["note"] for r in (kk, ru, zh)] == [PROSE["kk"], PROSE["ru"], PROSE["zh"]]
    assert ru.fields["patient"] == {"full_name": "Петров Иван Сергеевич"} and ru.lang == "auto"
    assert set(zh.fields) == {"note", "patient"} and zh.location == "zh.txt:1"
    assert isinstance(only_header, Reject) and (only_header.reason, only_header.location) == (
        "empty_note",
        "only_header.txt:1",
    )
    from data_prep.config import DeidConfig
    from data_prep.deid import deidentify_many

    ((cleaned, counts),) = deidentify_many([(replace(ru, lang="ru"), DeidConfig(), "salt")])
    assert "Петров" not in cleaned.fields["note"] and "345-67-89" not in cleaned.fields["note"]
    assert cleaned.fields["note"].endswith("под наблюдение кардиолога, телефон [ТЕЛЕФОН].") and counts["phone"] == 1


# --- BRAT -----------------------------------------------------------------------------------------


def test_brat_entities_and_normalisations(tmp_path: Path) -> None:
    text = "Жалобы на головную боль. Диагноз: гипертония. Принимает эналаприл."
    (tmp_path / "doc1.txt").write_text(text, encoding="utf-8")
    ann = [
        "T1\tSymptom 10 23\tголовную боль",
        "T2\tDisease 34 44\tгипертония",
        "T3\tDrug 56 65\tэналаприл",
        "N1\tReference T2 ICD10:I10\tгипертония",
        "T4\tDrug 0 5\tневерно",
        "R1\tTreats Arg1:T3 Arg2:T2",
        "garbage line",
    ]
    (tmp_path / "doc1.ann").write_text("\n".join(ann) + "\n", encoding="utf-8")
    assert detect_format(tmp_path) == "brat"
    items = read(tmp_path, lang="ru")
    assert [(i.location, i.reason) for i in items if isinstance(i, Reject)] == [
        ("doc1.ann:5", "offset_mismatch"),
        ("doc1.ann:7", "invalid_annotation"),
    ]
    [record] = records(items)
    assert record.kind == "annotated"
    assert [(e["label"], e["text"], e["codes"]) for e in record.fields["entities"]] == [
        ("Symptom", "головную боль", []),
        ("Disease", "гипертония", ["ICD10:I10"]),
        ("Drug", "эналаприл", []),
    ]


# --- dialogues ------------------------------------------------------------------------------------

MEDDIALOG = """id=1
https://www.haodf.com/doctorteam/flow_1.htm
Description
疾病：高血压
内容：头晕两天，血压160/100。
Dialogue
病人：
医生您好，我头晕两天了。
医生：
您好，血压多少？
病人：
160/100。
医生：
建议按时服用降压药并复查。

id=2
https://www.haodf.com/doctorteam/flow_2.htm
Description
咳嗽一周。
Dialogue
病人：咳嗽一周了怎么办？
"""


def test_public_dialogue_layout_and_speaker_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "dialogues.txt"
    path.write_text(MEDDIALOG, encoding="utf-8")
    assert detect_format(path) == "dialogue"
    first, second = read(path)
    assert isinstance(first, Record) and first.lang == "zh" and first.kind == "dialogue"
    assert first.fields["description"].startswith("疾病：高血压")
    assert [t["role"] for t in first.fields["turns"]] == ["patient", "doctor", "patient", "doctor"]
    assert first.fields["turns"][0]["text"] == "医生您好，我头晕两天了。"
    assert isinstance(second, Reject) and second.reason == "no_doctor_turn" and second.location == "dialogues.txt:16"
    plain = tmp_path / "ru_kk_en.txt"
    plain.write_text(
        "Пациент: Здравствуйте, болит горло.\nВрач: Температура есть?\nПациент: 37,5.\n\n"
        "Науқас: Басым ауырады.\nДәрігер: Қашаннан бері?\n\n"
        "Patient: I have a cough.\nDoctor: Since when?\n",
        encoding="utf-8",
    )
    assert [r.lang for r in read(plain)] == ["ru", "kk", "en"]


def test_dialogue_rows_of_turns(tmp_path: Path) -> None:
    path = tmp_path / "turns.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "d1",
                "turns": [
                    {"speaker": "Пациент", "text": "Кашляю неделю."},
                    {"speaker": "Врач", "text": "Температура была?"},
                ],
            },
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )
    [record] = read(path)
    assert isinstance(record, Record) and record.lang == "ru" and len(record.fields["turns"]) == 2


# --- exam questions -------------------------------------------------------------------------------


def test_exam_options_and_answers_in_every_shape(tmp_path: Path) -> None:
    rows = [
        {"question": "Препарат выбора при анафилаксии?", "options": ["Адреналин", "Атропин", "Аспирин"], "answer": "A"},
        {"question": "正常成人空腹血糖上限？", "options": {"A": "5.0", "B": "6.1", "C": "7.8"}, "answer": "6.1"},
        {
            "question": "Which vitamin deficiency causes scurvy?",
            "opa": "A",
            "opb": "B1",
            "opc": "C",
            "opd": "D",
            "cop": 2,
        },
        {"question": "Қалыпты дене қызуы қанша?", "options": ["36.6", "38.5"]},
        {"question": "Is aspirin an NSAID?", "answer": "yes"},
        {"question": "Что такое гипертония?", "options": ["а", "б"], "answer": "Z"},
    ]
    path = tmp_path / "exam.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert detect_format(path) == "exam"
    a, b, c, d, e, f = read(path)
    assert a.fields["answer_index"] == 0 and b.fields["answer_index"] == 1 and c.fields["answer_index"] == 2
    assert c.fields["options"] == ["A", "B1", "C", "D"]
    assert d.eval_only and "answer_index" not in d.fields
    assert e.fields["qtype"] == "yes_no" and e.fields["answer"] == "yes" and not e.eval_only
    assert isinstance(f, Reject) and f.reason == "answer_not_in_options"


def test_squad_style_extractive_questions(tmp_path: Path) -> None:
    squad = {
        "version": "1.1",
        "data": [
            {
                "title": "t",
                "paragraphs": [
                    {
                        "context": "Метформин — препарат первой линии при сахарном диабете 2 типа.",
                        "qas": [
                            {
                                "id": "q1",
                                "question": "Препарат первой линии при СД 2 типа?",
                                "answers": [{"text": "Метформин", "answer_start": 0}],
                            },
                            {"id": "q2", "question": "Доза?", "answers": [], "is_impossible": True},
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    q1, q2 = read(path, fmt="exam", lang="ru")
    assert q1.fields["qtype"] == "extractive" and q1.fields["answer"] == "Метформин"
    assert q1.location == "squad.json:data[0]/paragraphs[0]/qas[0]"
    assert q2.eval_only


# --- existing chat data and glossaries ------------------------------------------------------------


def test_chat_layouts_are_mapped_and_validated(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Ты врач."},
                {"role": "user", "content": "Болит голова."},
                {"role": "assistant", "content": "Как давно?"},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": "头痛怎么办？"},
                {"from": "gpt", "value": "请测量血压。"},
                {"from": "human", "value": "好的"},
            ]
        },
        {"instruction": "Объясните термин.", "input": "Тахикардия", "output": "Учащённое сердцебиение."},
        {"messages": [{"role": "wizard", "content": "?"}]},
        {"conversations": [{"from": "gpt", "value": "Здравствуйте"}]},
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    assert detect_format(path) == "chat"
    a, b, c, d, e = read(path)
    assert [m["role"] for m in a.fields["messages"]] == ["system", "user", "assistant"]
    assert [m["role"] for m in b.fields["messages"]] == ["user", "assistant"]  # trailing user turn dropped
    assert c.fields["messages"][0]["content"] == "Объясните термин.\n\nТахикардия"
    assert (d.reason, d.field) == ("invalid_chat", "messages[0].role")
    assert (e.reason, e.field) == ("invalid_chat", "conversations")


def test_glossary_with_local_headings(tmp_path: Path) -> None:
    path = tmp_path / "glossary.csv"
    path.write_text(
        "Термин,Определение,English,МКБ-10\nГипертония,Стойкое повышение АД,Hypertension,I10\nПустой,,,\n",
        encoding="utf-8",
    )
    assert detect_format(path) == "glossary"
    good, bad = read(path, lang="ru")
    assert good.kind == "term" and good.fields == {
        "definition": "Стойкое повышение АД",
        "english": "Hypertension",
        "icd10": "I10",
        "term": "Гипертония",
    }
    assert isinstance(bad, Reject) and bad.reason == "nothing_to_learn"


def test_every_format_has_a_reader() -> None:
    assert set(READERS) == set(get_args(FormatName)) - {"auto"}


def test_readers_stream_without_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    row = "P{},Головная боль и слабость в течение недели,Гипертония\n"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("patient_id,complaints,diagnosis\n")
        for i in range(100_000):
            handle.write(row.format(i))
    assert path.stat().st_size > 8_000_000
    tracemalloc.start()
    stream = read_source(path, SourceConfig(path=str(path), lang="ru"))[1]
    first = [next(stream) for _ in range(1000)]
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(first) == 1000 and peak < 2_000_000, peak
