"""Typical reference ranges of common vitals and labs, for results whose source gives none.

A value without a range must never be called normal just because nothing contradicts it: a saturation of 86 %
with no range in the export is low all the same. This table lets the tasks judge the commonest results against a
typical range (adult, or for a child where the record gives an age), and says so in the answer; a result it does
not know, or in a unit it does not know, stays "no reference range given".

The ranges are the usual textbook intervals for adults (sex-independent where the sexes differ, widened to cover
both) and the common paediatric bands for heart rate, breathing rate and haemoglobin. They are typical values,
not a laboratory's own: the answers name them as such. An analyte is found by its LOINC code, else by its whole
name in Russian, Kazakh, Chinese or English (a name that only contains another's, "LDL cholesterol" in
"cholesterol", is not matched), and the range is used only when the result's unit is one the entry lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

Bounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class Analyte:
    """One vital or lab: its LOINC codes, its names, and its typical range per unit (and per child age band)."""

    loinc: tuple[str, ...]
    names: tuple[str, ...]
    adult: dict[str, Bounds]
    """Normalised unit (see `normal_unit`) → (low, high) for adults."""
    child: dict[str, tuple[tuple[float, float | None, float | None], ...]] = field(default_factory=dict)
    """Normalised unit → ((age below which it applies, low, high), …), youngest band first."""


PER_MINUTE = ("/min", "{beats}/min", "{breaths}/min", "beats/min", "bpm", "уд/мин", "в/мин", "/мин", "рет/мин",
              "次/分", "次/分钟")  # fmt: skip
CELSIUS = ("cel", "°c", "℃", "c", "градусов", "°с")
TEN9_PER_L = ("10*9/l", "10^9/l", "x10^9/l", "x109/l", "109/l", "10*3/ul", "10^3/ul", "x10^3/ul", "k/ul")

ANALYTES: tuple[Analyte, ...] = (
    Analyte(("8310-5", "8331-1", "8332-9"), ("body temperature", "temperature", "температура тела", "температура",
            "дене қызуы", "дене температурасы", "体温"), {u: (36.0, 37.2) for u in CELSIUS}),
    Analyte(("2708-6", "59408-5", "2710-2", "20564-1"), ("oxygen saturation", "oxygen saturation in arterial blood",
            "spo2", "sao2", "сатурация", "сатурация кислорода", "оттегімен қанығу", "血氧饱和度"),
            {"%": (95.0, 100.0)}),
    Analyte(("8867-4",), ("heart rate", "pulse", "pulse rate", "пульс", "чсс", "частота сердечных сокращений",
            "жүрек соғу жиілігі", "тамыр соғуы", "心率", "脉搏"), {u: (60.0, 100.0) for u in PER_MINUTE},
            {u: ((1, 100, 160), (3, 90, 150), (6, 80, 140), (12, 70, 120), (18, 60, 100)) for u in PER_MINUTE}),
    Analyte(("9279-1",), ("respiratory rate", "breathing rate", "чдд", "частота дыхания", "частота дыхательных "
            "движений", "тыныс алу жиілігі", "呼吸频率", "呼吸"), {u: (12.0, 20.0) for u in PER_MINUTE},
            {u: ((1, 30, 60), (3, 24, 40), (6, 22, 34), (12, 18, 30), (18, 12, 20)) for u in PER_MINUTE}),
    Analyte(("8480-6",), ("systolic blood pressure", "систолическое давление", "систолическое ад",
            "систолалық қысым", "收缩压"), {"mm[hg]": (90.0, 139.0), "mmhg": (90.0, 139.0), "ммртст": (90.0, 139.0)}),
    Analyte(("8462-4",), ("diastolic blood pressure", "диастолическое давление", "диастолическое ад",
            "диастолалық қысым", "舒张压"), {"mm[hg]": (60.0, 89.0), "mmhg": (60.0, 89.0), "ммртст": (60.0, 89.0)}),
    Analyte(("4548-4", "17856-6"), ("hba1c", "hemoglobin a1c", "гликированный гемоглобин", "гликирленген гемоглобин",
            "糖化血红蛋白"), {"%": (4.0, 6.0)}),
    Analyte(("718-7",), ("hemoglobin", "haemoglobin", "hgb", "hb", "гемоглобин", "血红蛋白"),
            {"g/l": (120.0, 170.0), "г/л": (120.0, 170.0), "g/dl": (12.0, 17.0)},
            {"g/l": ((6, 110, 140), (12, 115, 155), (18, 120, 160)),
             "г/л": ((6, 110, 140), (12, 115, 155), (18, 120, 160))}),
    Analyte(("2345-7", "2339-0", "41653-7"), ("glucose", "blood glucose", "глюкоза", "глюкоза крови", "қандағы глюкоза",
            "血糖", "葡萄糖"), {"mmol/l": (3.9, 6.1), "ммоль/л": (3.9, 6.1), "mg/dl": (70.0, 110.0)}),
    Analyte(("6690-2", "26464-8"), ("leukocytes", "white blood cells", "wbc", "лейкоциты", "лейкоциттер",
            "白细胞", "白细胞计数"), {u: (4.0, 10.0) for u in TEN9_PER_L}),
    Analyte(("777-3", "26515-7"), ("platelets", "plt", "тромбоциты", "тромбоциттер", "血小板", "血小板计数"),
            {u: (150.0, 400.0) for u in TEN9_PER_L}),
    Analyte(("2160-0", "38483-4"), ("creatinine", "креатинин", "肌酐"),
            {"umol/l": (53.0, 115.0), "мкмоль/л": (53.0, 115.0), "mg/dl": (0.6, 1.3)}),
    Analyte(("2823-3", "6298-4"), ("potassium", "калий", "钾"), {"mmol/l": (3.5, 5.1), "ммоль/л": (3.5, 5.1)}),
    Analyte(("2951-2", "2947-0"), ("sodium", "натрий", "钠"), {"mmol/l": (136.0, 145.0), "ммоль/л": (136.0, 145.0)}),
    Analyte(("1988-5",), ("c-reactive protein", "crp", "с-реактивный белок", "срб", "с-реактивті ақуыз", "c反应蛋白"),
            {"mg/l": (None, 5.0), "мг/л": (None, 5.0)}),
    Analyte(("1742-6",), ("alt", "alanine aminotransferase", "алт", "аланинаминотрансфераза", "丙氨酸氨基转移酶",
            "谷丙转氨酶"), {"u/l": (None, 41.0), "ед/л": (None, 41.0), "бірл/л": (None, 41.0)}),
    Analyte(("1920-8",), ("ast", "aspartate aminotransferase", "аст", "аспартатаминотрансфераза",
            "天门冬氨酸氨基转移酶", "谷草转氨酶"), {"u/l": (None, 40.0), "ед/л": (None, 40.0), "бірл/л": (None, 40.0)}),
    Analyte(("2093-3",), ("cholesterol", "total cholesterol", "cholesterol total", "холестерин", "общий холестерин",
            "холестерин общий", "жалпы холестерин", "总胆固醇"),
            {"mmol/l": (None, 5.2), "ммоль/л": (None, 5.2), "mg/dl": (None, 200.0)}),
    Analyte(("39156-5",), ("body mass index", "bmi", "индекс массы тела", "имт", "дене салмағының индексі",
            "体重指数"), {"kg/m2": (18.5, 24.9), "kg/m^2": (18.5, 24.9), "кг/м2": (18.5, 24.9)}),
)  # fmt: skip


def normal_unit(unit: Any) -> str:
    """A unit as the table writes it: lower case, no spaces or dots, ``µ`` as ``u``, superscripts as digits."""
    text = str(unit or "").strip().lower().replace("µ", "u").replace("μ", "u").replace("×", "x")
    text = text.translate(str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789"))
    return re.sub(r"[\s.]", "", text)


def _normal_name(name: str) -> str:
    """A lab's name without case, a trailing bracketed note ("(сыворотка)") or punctuation around it."""
    text = re.sub(r"\s*[(（][^)）]*[)）]\s*$", "", name.strip().lower())
    return re.sub(r"\s+", " ", text).strip(" .,:;")


_BY_LOINC = {code: analyte for analyte in ANALYTES for code in analyte.loinc}
_BY_NAME = {_normal_name(n): analyte for analyte in ANALYTES for n in analyte.names}


@lru_cache(maxsize=4096)
def analyte_of(name: str, loinc: str | None) -> Analyte | None:
    """The table's entry for a lab, by LOINC code, else by its whole name."""
    if loinc and loinc in _BY_LOINC:
        return _BY_LOINC[loinc]
    return _BY_NAME.get(_normal_name(name))


def typical_range(lab: dict[str, Any], age: float | None = None) -> tuple[Bounds, str] | None:
    """The typical range of a lab without its own, and whose it is (``adult``, or ``age``: for the child's age);
    None when the table does not know the analyte, its unit, or (for a child, ``age`` under 18 years) a band."""
    analyte = analyte_of(str(lab.get("name") or ""), lab.get("loinc"))
    if analyte is None:
        return None
    unit = normal_unit(lab.get("unit"))
    if age is not None and 0 <= age < 18:
        for below, low, high in analyte.child.get(unit, ()):
            if age < below:
                return (low, high), "age"
        if set(analyte.loinc) & SAME_AT_ANY_AGE and unit in analyte.adult:
            return analyte.adult[unit], "age"
        return None
    if unit not in analyte.adult:
        return None
    return analyte.adult[unit], "adult"


SAME_AT_ANY_AGE = frozenset({"8310-5", "8331-1", "8332-9", "2708-6", "59408-5", "2710-2", "20564-1"})
"""Body temperature and oxygen saturation: one range from infancy on."""
