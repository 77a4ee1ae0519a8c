"""Section headings of clinical free text, in Russian, Kazakh, Chinese and English.

Discharge summaries exported from Word keep their headings ("Жалобы:", "Шағымдары:", "主诉：") and
little else; finding them turns a wall of text into the fields the clinical tasks use, and tells the
note's language as a side effect.
"""

from __future__ import annotations

import re

# fmt: off
SECTION_HEADINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "ru": {
        "complaints": ("жалобы при поступлении", "жалобы"),
        "history": ("анамнез заболевания", "anamnesis morbi", "история заболевания", "анамнез"),
        "past_history": ("перенесенные заболевания", "перенесённые заболевания"),
        "life_history": ("анамнез жизни", "anamnesis vitae"),
        "exam": ("объективный статус", "объективно", "status praesens", "осмотр"),
        "labs_text": ("лабораторные исследования", "результаты анализов", "обследование", "анализы"),
        "diagnosis": ("заключительный диагноз", "клинический диагноз", "основной диагноз", "диагноз"),
        "prescriptions": ("проведено лечение", "проведенное лечение", "проведённое лечение", "назначения",
                          "лечение"),
        "recommendations": ("рекомендации при выписке", "рекомендации", "рекомендовано"),
    },
    "kk": {
        "complaints": ("түскендегі шағымдары", "шағымдары", "шағымы", "шағымдар"),
        "history": ("ауру анамнезі", "анамнезі"),
        "life_history": ("өмір анамнезі",),
        "exam": ("объективті қарау", "объективті", "қарау"),
        "labs_text": ("зертханалық зерттеулер", "талдау нәтижелері", "тексеру"),
        "diagnosis": ("қорытынды диагноз", "клиникалық диагноз", "диагнозы", "диагноз"),
        "prescriptions": ("жүргізілген ем", "тағайындаулар", "емі", "ем"),
        "recommendations": ("ұсыныстар", "ұсынымдар", "ұсынылады"),
    },
    "zh": {
        "complaints": ("主诉",),
        "history": ("现病史",),
        "past_history": ("既往史",),
        "life_history": ("个人史", "婚育史", "家族史"),
        "exam": ("体格检查", "查体", "专科检查"),
        "labs_text": ("辅助检查", "实验室检查", "检验结果"),
        "diagnosis": ("出院诊断", "入院诊断", "初步诊断", "诊断"),
        "prescriptions": ("治疗经过", "诊疗经过", "治疗", "处理", "用药"),
        "recommendations": ("出院医嘱", "医嘱", "建议"),
    },
    "en": {
        "complaints": ("chief complaint", "complaints", "complaint", "reason for visit"),
        "history": ("history of present illness", "hpi", "history"),
        "past_history": ("past medical history", "pmh"),
        "life_history": ("social history", "family history"),
        "exam": ("physical examination", "physical exam", "examination"),
        "labs_text": ("laboratory results", "labs", "results"),
        "diagnosis": ("discharge diagnosis", "assessment", "diagnoses", "diagnosis"),
        "prescriptions": ("medications", "treatment", "hospital course"),
        "recommendations": ("recommendations", "plan", "instructions", "follow-up"),
    },
}
# fmt: on

_ALTERNATIVES = sorted(
    (
        (name, field, lang)
        for lang, fields in SECTION_HEADINGS.items()
        for field, names in fields.items()
        for name in names
    ),
    key=lambda item: len(item[0]),
    reverse=True,
)
_LOOKUP = {name: (field, lang) for name, field, lang in _ALTERNATIVES}
HEADING = re.compile(
    r"^[ \t]*(?:\d{1,2}[.)]\s*)?(?P<name>"
    + "|".join(re.escape(name) for name, _, _ in _ALTERNATIVES)
    + r")(?:\s*\([^)\n]{0,40}\))?[ \t]*(?:[:：.]|$)[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
ICD10_CODE = re.compile(r"(?<![A-Za-z0-9])([A-TV-Z]\d{2}(?:\.\d{1,2})?)(?![A-Za-z0-9])")


def split_sections(text: str) -> tuple[dict[str, str], str | None]:
    """Field → section text for every heading found, and the language most headings were in.

    Text before the first heading stays under ``preamble``; repeated sections are joined.
    """
    matches = list(HEADING.finditer(text))
    sections: dict[str, str] = {}
    votes: dict[str, int] = {}
    if matches and matches[0].start() > 0 and text[: matches[0].start()].strip():
        sections["preamble"] = text[: matches[0].start()].strip()
    for i, m in enumerate(matches):
        field, lang = _LOOKUP[m.group("name").lower()]
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = text[m.end() : end].strip()
        votes[lang] = votes.get(lang, 0) + 1
        if not body:
            continue
        sections[field] = f"{sections[field]}\n{body}" if field in sections else body
    lang = max(sorted(votes), key=lambda k: votes[k]) if votes else None
    return sections, lang


def icd10_in(text: str) -> str | None:
    """The first ICD-10 code written in a diagnosis (``I11.9``), if any."""
    m = ICD10_CODE.search(text)
    return m.group(1) if m else None


def section_fields(text: str) -> tuple[dict[str, str], str | None]:
    """Sections as clinical record fields, with the ICD-10 code lifted out of the diagnosis."""
    sections, lang = split_sections(text)
    if "diagnosis" in sections and (code := icd10_in(sections["diagnosis"])):
        sections["icd10"] = code
    return sections, lang
