"""Tasks: turn one (de-identified) record into chat examples.

A task sees a Record and nothing else: no files, no config. The answers are deterministic templates
over the record's structured content, so every fact in an answer is in the prompt and the model
learns to organise and explain, not to invent.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

from data_prep.dates import length_of_stay
from data_prep.records import ChatExample, Record, TextExample
from data_prep.tasks._examples import make_example
from data_prep.tasks._lab_meanings import lab_meaning
from data_prep.tasks._phrases import NOTE_LABELS, SUMMARY_HEADINGS, WORDS, days
from data_prep.tasks._preference import preference
from data_prep.tasks._prompts import BUILT_IN, Prompts
from data_prep.tasks._qa import multiple_choice, qa
from data_prep.tasks._raw_text import raw_text
from data_prep.tasks._reference_ranges import typical_range
from data_prep.tasks._references import with_reference
from data_prep.tasks._text import chat, dialogue_continuation, extraction, term_definition, term_translation

# --- lab values -----------------------------------------------------------------------------------


def format_number(value: Any) -> str:
    """A lab number written as the source had it (98, 5.6, 0.04), never reformatted into a date."""
    if isinstance(value, float):
        return repr(value)
    return str(value).strip()


def _as_float(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def lab_status(lab: dict[str, Any]) -> str:
    """``below``, ``within`` or ``above`` the reference range, or ``unknown`` when it cannot be told."""
    value = _as_float(lab.get("value"))
    low, high = _as_float(lab.get("ref_low")), _as_float(lab.get("ref_high"))
    if value is None or (low is None and high is None):
        return "unknown"
    if low is not None and value < low:
        return "below"
    if high is not None and value > high:
        return "above"
    return "within"


def _with_unit(text: str, lab: dict[str, Any]) -> str:
    unit = (lab.get("unit") or "").strip()
    return f"{text} {unit}" if unit else text


def reference_range(lab: dict[str, Any], lang: str, unit: bool = True) -> str:
    """The reference range in words of ``lang`` ("норма: 120–160 г/л", "参考范围：≤5 mg/L"); one taken from the table
    of typical ranges (``range_of``: ``adult`` or ``age``) says so ("норма: 36–37.2 Cel; типичная для взрослых")."""
    words = WORDS[lang]
    low, high = lab.get("ref_low"), lab.get("ref_high")
    if low is not None and high is not None:
        text = words["range"].format(low=format_number(low), high=format_number(high))
    elif high is not None:
        text = words["range_max"].format(high=format_number(high))
    elif low is not None:
        text = words["range_min"].format(low=format_number(low))
    else:
        return words["no_range"]
    if unit:
        # Kazakh "дейін" follows the unit: "5 мг/л дейін".
        if lang == "kk" and low is None:
            text = words["range_max"].format(high=_with_unit(format_number(high), lab))
        else:
            text = _with_unit(text, lab)
    if lab.get("range_of") in ("adult", "age"):
        text += ("，" if lang == "zh" else "; ") + words[f"typical_{lab['range_of']}"]
    return text


def with_typical_range(lab: dict[str, Any], age: float | None) -> dict[str, Any]:
    """The lab with the typical range of its analyte (`_reference_ranges`) where its source gives none, marked by
    ``range_of``; as it was when it has a range or the table has none for it."""
    if lab.get("ref_low") is not None or lab.get("ref_high") is not None:
        return lab
    found = typical_range(lab, age)
    if found is None:
        return lab
    (low, high), whose = found
    return {**lab, "ref_low": low, "ref_high": high, "range_of": whose}


def record_age(fields: dict[str, Any]) -> float | None:
    """The patient's age in years where the record gives one (an ``age`` field), for age-dependent ranges."""
    age = _as_float(fields.get("age"))
    return age if age is not None and 0 <= age < 130 else None


def _lab_value(lab: dict[str, Any]) -> str:
    return _with_unit(format_number(lab["value"]), lab)


def _with_note(text: str, note: str, lang: str) -> str:
    """``text (note)``, with full-width brackets and no space in Chinese."""
    return f"{text}（{note}）" if lang == "zh" else f"{text} ({note})"


def _lab_assessment(lab: dict[str, Any], lang: str) -> str:
    """ "Гемоглобин: 98 г/л — ниже нормы (норма: 120–160 г/л)" in the record's language."""
    words = WORDS[lang]
    status = lab_status(lab)
    head = f"{lab['name'].strip()}{words['colon']}{_lab_value(lab)}"
    if status == "unknown":
        return f"{head}{'，' if lang == 'zh' else ' — '}{words['no_range']}"
    dash = "，" if lang == "zh" else " — "
    return _with_note(f"{head}{dash}{words[status]}", reference_range(lab, lang), lang)


# --- note rendering -------------------------------------------------------------------------------


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    return value.strip() if isinstance(value, str) else ""


def _prescriptions(fields: dict[str, Any]) -> list[str]:
    value = fields.get("prescriptions") or []
    items = [value] if isinstance(value, str) else value
    return [item.strip() for item in items if isinstance(item, str) and item.strip()]


def _labs(fields: dict[str, Any]) -> list[dict[str, Any]]:
    return [lab for lab in fields.get("labs") or [] if isinstance(lab, dict) and lab.get("name")]


def _period(fields: dict[str, Any], lang: str) -> str:
    start, end = _text(fields, "admission_date"), _text(fields, "discharge_date")
    stay = fields.get("stay_days")
    if stay is None:
        stay = length_of_stay(start, end)
    joiner = " 至 " if lang == "zh" else " — "
    text = joiner.join(part for part in (start, end) if part)
    if text and isinstance(stay, int) and stay > 0:
        text = _with_note(text, days(stay, lang), lang)
    return text


class _LabLines(NamedTuple):
    """What the tasks write of one lab in one language."""

    status: str
    row: str
    """Its line in a lab table: "- Гемоглобин: 98 г/л (120–160)"."""
    assessment: str
    """`_lab_assessment`."""


LAB_FIELDS = ("name", "value", "unit", "ref_low", "ref_high", "range_of")
"""All that the tasks read of a lab entry (with its range, `with_typical_range`)."""
_ABSENT = object()


def _lab_lines(lab: dict[str, Any], lang: str, age: float | None = None) -> _LabLines:
    """`_LabLines` of a lab, remembered by its fields: lab names, values and ranges repeat across records."""
    lab = with_typical_range(lab, age)
    fields = [lab.get(name, _ABSENT) for name in LAB_FIELDS]
    try:
        return _remembered_lab_lines(lang, *fields)
    except TypeError:  # a field that cannot be remembered (unhashable): worked out each time
        return _remembered_lab_lines.__wrapped__(lang, *fields)


@lru_cache(maxsize=8192, typed=True)  # typed: 5 and 5.0 are written differently
def _remembered_lab_lines(
    lang: str, name: Any, value: Any, unit: Any, ref_low: Any, ref_high: Any, range_of: Any
) -> _LabLines:
    values = (name, value, unit, ref_low, ref_high, range_of)
    lab = {key: item for key, item in zip(LAB_FIELDS, values, strict=True) if item is not _ABSENT}
    row = f"{lab['name'].strip()}{WORDS[lang]['colon']}{_lab_value(lab)}"
    row = "- " + _with_note(row, reference_range(lab, lang, unit=False), lang)
    return _LabLines(lab_status(lab), row, _lab_assessment(lab, lang))


def _lab_table(labs: list[dict[str, Any]], lang: str, age: float | None = None) -> list[str]:
    return [_lab_lines(lab, lang, age).row for lab in labs]


def render_note(record: Record) -> str:
    """The record as a clinician would read it: labelled sections, empty ones left out."""
    fields, lang = record.fields, record.lang
    labels, colon = NOTE_LABELS[lang], WORDS[lang]["colon"]
    lines: list[str] = []

    def line(label: str, text: str) -> None:
        if text:
            lines.append(f"{labels[label]}{colon}{text}")

    line("department", _text(fields, "department"))
    line("period", _period(fields, lang))
    line("complaints", _text(fields, "complaints"))
    line("history", _text(fields, "history"))
    if labs := _labs(fields):
        lines.append(f"{labels['labs']}{colon.rstrip()}")
        lines.extend(_lab_table(labs, lang, record_age(fields)))
    line("diagnosis", _coded_diagnosis(fields, lang, _text(fields, "diagnosis")))
    if prescriptions := _prescriptions(fields):
        lines.append(f"{labels['prescriptions']}{colon.rstrip()}")
        lines.extend(f"- {item}" for item in prescriptions)
    line("recommendations", _text(fields, "recommendations"))
    return "\n".join(lines)


def _coded_diagnosis(fields: dict[str, Any], lang: str, diagnosis: str) -> str:
    """The diagnosis with its code named by its system: "Бронхит (МКБ-10: J20.9)", "Cough (SNOMED CT: 49727002)"."""
    labels, colon = NOTE_LABELS[lang], WORDS[lang]["colon"]
    for field, system in (("icd10", labels["icd10"]), ("snomed", "SNOMED CT")):
        if code := _text(fields, field):
            return _with_note(diagnosis.rstrip(".。"), system + colon + code, lang)
    return diagnosis


def _labs_summary(fields: dict[str, Any], lang: str) -> list[str]:
    """The summary's lab lines: abnormal results with their range; "no abnormalities" only when every result was
    judged; results without a range (given or typical) named as not judged, never counted as normal."""
    heading, words = SUMMARY_HEADINGS[lang]["abnormal_labs"], WORDS[lang]
    colon = words["colon"]
    judged = [_lab_lines(entry, lang, record_age(fields)) for entry in _labs(fields)]
    abnormal = [lab for lab in judged if lab.status in ("below", "above")]
    unjudged = [lab for lab in judged if lab.status == "unknown"]
    if abnormal:
        lines = [f"{heading}{colon.rstrip()}", *(f"- {lab.assessment}" for lab in abnormal)]
    elif not judged:
        lines = [f"{heading}{colon}{words['no_data']}"]
    elif unjudged and len(unjudged) == len(judged):
        lines = [f"{heading}{colon}{words['none_judged']}"]
    else:
        lines = [f"{heading}{colon}{words['no_abnormal']}"]
    if unjudged:
        names = ("、" if lang == "zh" else ", ").join(lab.row.split(colon)[0].removeprefix("- ") for lab in unjudged)
        lines.append(f"{words['not_judged']}{colon}{names}")
    return lines


# --- examples -------------------------------------------------------------------------------------


def _example(
    record: Record, task: str, user: str, assistant: str, index: int = 0, prompts: Prompts | None = None
) -> ChatExample:
    return make_example(record, task, user, assistant, index, prompts)


def structured_summary(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """Note in, summary under fixed headings out; abnormal labs listed with value, unit and range.

    A record with neither a diagnosis nor labs (a prose note read whole, complaints with their code) gives no
    summary: its headings would say "no data" while the facts sit unread in the text."""
    fields, lang = record.fields, record.lang
    if not (_text(fields, "diagnosis") or _labs(fields)):
        return []
    headings, words = SUMMARY_HEADINGS[lang], WORDS[lang]
    colon = words["colon"]
    diagnosis = _coded_diagnosis(fields, lang, _text(fields, "diagnosis") or words["no_data"])
    lines = [
        f"{headings['complaints']}{colon}{_text(fields, 'complaints') or words['no_data']}",
        f"{headings['diagnosis']}{colon}{diagnosis}",
        *_labs_summary(fields, lang),
    ]
    if prescriptions := _prescriptions(fields):
        lines.append(f"{headings['prescriptions']}{colon.rstrip()}")
        lines.extend(f"- {item}" for item in prescriptions)
    else:
        lines.append(f"{headings['prescriptions']}{colon}{words['no_data']}")
    recommendations = _text(fields, "recommendations") or words["no_data"]
    lines.append(f"{headings['recommendations']}{colon}{recommendations}")
    user = f"{(prompts or BUILT_IN).instruction('structured_summary', lang)}\n\n{render_note(record)}"
    return [_example(record, "structured_summary", user, "\n".join(lines), prompts=prompts)]


def lab_explanation(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """Lab table in, one plain-language line per lab out, ending with advice to see the doctor."""
    lang = record.lang
    labs = _labs(record.fields)
    if not labs:
        return []
    words = WORDS[lang]
    stop = "。" if lang == "zh" else "."
    lines = [words["intro"]]
    age = record_age(record.fields)
    for lab in labs:
        status, _, assessment = _lab_lines(lab, lang, age)
        line = f"- {assessment}{stop}"
        if status in ("below", "above"):
            line += ("" if lang == "zh" else " ") + lab_meaning(lab["name"], lang, status)
        elif status == "unknown":
            line += ("" if lang == "zh" else " ") + words["unknown_status"]
        lines.append(line)
    lines.append(words["closing"])
    table = "\n".join(_lab_table(labs, lang, age))
    heading = NOTE_LABELS[lang]["labs"] + words["colon"].rstrip()
    user = f"{(prompts or BUILT_IN).instruction('lab_explanation', lang)}\n\n{heading}\n{table}"
    return [_example(record, "lab_explanation", user, "\n".join(lines), prompts=prompts)]


def icd10_coding(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """Complaints (and history) in, ``code — diagnosis`` out; only records with both a code and complaints."""
    fields, lang = record.fields, record.lang
    code, complaints = _text(fields, "icd10"), _text(fields, "complaints")
    if not code or not complaints:
        return []
    labels, colon = NOTE_LABELS[lang], WORDS[lang]["colon"]
    lines = [f"{labels['complaints']}{colon}{complaints}"]
    if history := _text(fields, "history"):
        lines.append(f"{labels['history']}{colon}{history}")
    diagnosis = _text(fields, "diagnosis").rstrip(".。")
    user = f"{(prompts or BUILT_IN).instruction('icd10_coding', lang)}\n\n" + "\n".join(lines)
    answer = f"{code} — {diagnosis}" if diagnosis else code
    return [_example(record, "icd10_coding", user, answer, prompts=prompts)]


PLAIN: dict[str, dict[str, str]] = {
    "ru": {"diagnosis": "Что с вами: {0}.", "treatment": "Что вам назначено:", "next": "Что делать дальше: {0}",
           "closing": "Если что-то непонятно, спросите своего лечащего врача."},
    "kk": {"diagnosis": "Сіздің диагнозыңыз: {0}.", "treatment": "Сізге тағайындалғаны:",
           "next": "Әрі қарай не істеу керек: {0}", "closing": "Түсініксіз нәрсе болса, емдеуші дәрігеріңізден сұраңыз."},  # noqa: E501
    "zh": {"diagnosis": "您的诊断是：{0}。", "treatment": "为您安排的治疗：", "next": "接下来请您：{0}",
           "closing": "如有不明白的地方，请咨询您的主治医生。"},
    "en": {"diagnosis": "What you have: {0}.", "treatment": "What you were prescribed:", "next": "What to do next: {0}",
           "closing": "If anything is unclear, ask your doctor."},
}  # fmt: skip


def plain_language(record: Record, prompts: Prompts | None = None) -> list[ChatExample]:
    """The note's diagnosis, treatment and advice retold for the patient in the same fixed order."""
    fields, lang = record.fields, record.lang
    diagnosis = _text(fields, "diagnosis").rstrip(".。")
    prescriptions, advice = _prescriptions(fields), _text(fields, "recommendations")
    if not diagnosis or not (prescriptions or advice):
        return []
    words = PLAIN[lang]
    lines = [words["diagnosis"].format(diagnosis)]
    if prescriptions:
        lines.append(words["treatment"])
        lines.extend(f"- {item}" for item in prescriptions)
    if advice:
        lines.append(words["next"].format(advice))
    lines.append(words["closing"])
    user = f"{(prompts or BUILT_IN).instruction('plain_language', lang)}\n\n{render_note(record)}"
    return [_example(record, "plain_language", user, "\n".join(lines), prompts=prompts)]


def text(record: Record, prompts: Prompts | None = None) -> list[TextExample]:
    """The record as one raw text row for continued pretraining (nothing is asked: prompts are not used)."""
    return raw_text(record, render_note(record) if record.kind == "clinical" else "")


Task = Callable[..., list[ChatExample] | list[TextExample]]

TASKS: dict[str, Task] = {
    "structured_summary": structured_summary,
    "lab_explanation": lab_explanation,
    "icd10_coding": with_reference("icd10_coding", icd10_coding),
    "plain_language": plain_language,
    "extraction": with_reference("extraction", extraction),
    "qa": with_reference("qa", qa),
    "multiple_choice": with_reference("multiple_choice", multiple_choice),
    "dialogue_continuation": dialogue_continuation,
    "chat": chat,
    "term_translation": term_translation,
    "term_definition": term_definition,
    "text": text,
    "preference": preference,
}
"""Task name (``SourceConfig.tasks``) → builder ``(record, prompts=None)``; it may return no example. Tasks with a
checkable answer also write it into ``meta.reference`` (for GRPO's rewards)."""
