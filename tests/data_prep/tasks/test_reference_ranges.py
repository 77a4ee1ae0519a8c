"""No task calls a value normal that was not judged: results without a range are judged against the table of
typical ranges (adult, or for the child's age) and say so, or are named as not judged; codes carry their system."""

from __future__ import annotations

import pytest

from data_prep.records import Record
from data_prep.tasks._build import lab_explanation, lab_status, render_note, structured_summary, with_typical_range
from data_prep.tasks._reference_ranges import ANALYTES, normal_unit, typical_range


def record(labs: list[dict], lang: str = "en", **fields: object) -> Record:
    return Record("b.json", "b.json:entry[3]", "p1", lang, {"diagnosis": "Cough", "labs": labs, **fields}, group="g")


SPO2 = {"name": "Oxygen saturation in Arterial blood", "loinc": "2708-6", "value": 85.88, "unit": "%"}
FEVER = {"name": "Body temperature", "loinc": "8310-5", "value": 38.699, "unit": "Cel"}
HEIGHT = {"name": "Body Height", "loinc": "8302-2", "value": 170.2, "unit": "cm"}


def answer(example_list: list) -> str:
    [example] = example_list
    return example.messages[-1]["content"]


def test_values_without_a_source_range_are_judged_against_typical_ranges_and_say_so() -> None:
    summary = answer(structured_summary(record([SPO2, FEVER, HEIGHT], snomed="49727002")))
    assert "no abnormalities" not in summary
    assert (
        "- Oxygen saturation in Arterial blood: 85.88 % — below the reference range "
        "(reference range: 95.0–100.0 %; typical adult range)" in summary
    )
    assert "- Body temperature: 38.699 Cel — above the reference range" in summary
    assert "Not judged (no reference range given): Body Height" in summary
    assert "Diagnosis: Cough (SNOMED CT: 49727002)" in summary and "ICD-10" not in summary


def test_no_abnormalities_only_when_every_result_was_judged() -> None:
    normal = [{**SPO2, "value": 98}, {**FEVER, "value": 36.6}]
    assert "Abnormal lab results: no abnormalities found" in answer(structured_summary(record(normal)))
    mixed = answer(structured_summary(record([*normal, HEIGHT])))
    assert "Abnormal lab results: no abnormalities found" in mixed and "Not judged" in mixed
    unjudged = answer(structured_summary(record([HEIGHT])))
    assert "Abnormal lab results: none judged: no reference ranges given" in unjudged
    assert "no abnormalities" not in unjudged
    assert "Abnormal lab results: no data" in answer(structured_summary(record([])))


@pytest.mark.parametrize(
    ("lab", "age", "status"),
    [
        ({"name": "Heart rate", "loinc": "8867-4", "value": 130, "unit": "/min"}, 2, "within"),
        ({"name": "Heart rate", "loinc": "8867-4", "value": 130, "unit": "/min"}, 40, "above"),
        ({"name": "Пульс", "value": 130, "unit": "уд/мин"}, None, "above"),
        ({"name": "Гемоглобин", "value": 115, "unit": "г/л"}, 8, "within"),
        ({"name": "Гемоглобин", "value": 115, "unit": "г/л"}, 35, "below"),
        ({"name": "血红蛋白", "value": 115, "unit": "g/L"}, None, "below"),
        ({"name": "Глюкоза", "value": 7.4, "unit": "ммоль/л"}, None, "above"),
        ({"name": "Қандағы глюкоза", "value": 5.0, "unit": "ммоль/л"}, None, "within"),
        ({"name": "Body temperature", "value": 39.0, "unit": "Cel"}, 3, "above"),
    ],
)
def test_typical_ranges_by_code_or_whole_name_and_age(lab: dict, age: int | None, status: str) -> None:
    judged = with_typical_range(lab, age)
    assert judged["range_of"] == ("age" if age is not None and age < 18 else "adult")
    assert lab_status(judged) == status


@pytest.mark.parametrize(
    "lab",
    [
        {"name": "LDL cholesterol", "value": 4.9, "unit": "mmol/L"},  # not "cholesterol"
        {"name": "Glucose", "value": 5.5, "unit": "mg%"},  # a unit the table does not list
        {"name": "Creatinine", "value": 80, "unit": "umol/L", "ref_high": 60},  # the source's range wins
    ],
)
def test_the_table_never_overrides_or_stretches(lab: dict) -> None:
    judged = with_typical_range(lab, None)
    if "ref_high" in lab:
        assert judged is lab
    else:
        assert "range_of" not in judged and judged.get("ref_low") is None and judged.get("ref_high") is None


def test_a_child_without_a_band_for_the_analyte_is_not_judged_by_adult_ranges() -> None:
    assert typical_range({"name": "Creatinine", "value": 40, "unit": "umol/L"}, age=5) is None
    assert typical_range({"name": "Creatinine", "value": 40, "unit": "umol/L"}, age=50) == ((53.0, 115.0), "adult")


def test_every_analyte_has_a_consistent_range() -> None:
    for analyte in ANALYTES:
        assert analyte.names and analyte.adult
        for unit, (low, high) in analyte.adult.items():
            assert unit == normal_unit(unit) and (low is None or high is None or low < high), analyte.names[0]
        for bands in analyte.child.values():
            assert [b[0] for b in bands] == sorted(b[0] for b in bands) and bands[-1][0] == 18


@pytest.mark.parametrize(
    ("lang", "typical"), [("ru", "типичная для взрослых"), ("kk", "ересектерге тән"), ("zh", "成人常见参考值")]
)
def test_lab_explanation_and_the_note_name_a_typical_range_as_such(lang: str, typical: str) -> None:
    labs = [{**SPO2, "name": {"ru": "Сатурация", "kk": "Оттегімен қанығу", "zh": "血氧饱和度"}[lang]}]
    explained = answer(lab_explanation(record(labs, lang=lang, diagnosis="x")))
    assert typical in explained
    assert typical in render_note(record(labs, lang=lang, diagnosis="x"))


def test_icd10_codes_are_named_as_such_in_the_note_and_summary() -> None:
    rec = record([], lang="ru", diagnosis="Бронхит", icd10="J20.9")
    assert "Диагноз: Бронхит (МКБ-10: J20.9)" in answer(structured_summary(rec))
    assert "Диагноз: Бронхит (МКБ-10: J20.9)" in render_note(rec)
