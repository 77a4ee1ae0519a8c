"""Wording of the notes and answers that tasks build, per language.

Kept apart from the task logic so that a native speaker can review or improve the phrasing of one
language without reading code, and so that every language offers the same slots.
"""

from __future__ import annotations

NOTE_LABELS: dict[str, dict[str, str]] = {
    "ru": {
        "department": "Отделение",
        "period": "Период лечения",
        "complaints": "Жалобы",
        "history": "Анамнез",
        "labs": "Результаты анализов",
        "diagnosis": "Диагноз",
        "icd10": "МКБ-10",
        "prescriptions": "Назначения",
        "recommendations": "Рекомендации",
    },
    "kk": {
        "department": "Бөлімше",
        "period": "Емделу кезеңі",
        "complaints": "Шағымдары",
        "history": "Анамнез",
        "labs": "Талдау нәтижелері",
        "diagnosis": "Диагнозы",
        "icd10": "АХЖ-10",
        "prescriptions": "Тағайындаулар",
        "recommendations": "Ұсынымдар",
    },
    "zh": {
        "department": "科室",
        "period": "住院时间",
        "complaints": "主诉",
        "history": "病史",
        "labs": "检验结果",
        "diagnosis": "诊断",
        "icd10": "ICD-10",
        "prescriptions": "处方用药",
        "recommendations": "医嘱建议",
    },
    "en": {
        "department": "Department",
        "period": "Treatment period",
        "complaints": "Complaints",
        "history": "History",
        "labs": "Lab results",
        "diagnosis": "Diagnosis",
        "icd10": "ICD-10",
        "prescriptions": "Prescriptions",
        "recommendations": "Recommendations",
    },
}

SUMMARY_HEADINGS: dict[str, dict[str, str]] = {
    "ru": {
        "complaints": "Жалобы",
        "diagnosis": "Диагноз",
        "abnormal_labs": "Отклонения в анализах",
        "prescriptions": "Назначения",
        "recommendations": "Рекомендации",
    },
    "kk": {
        "complaints": "Шағымдары",
        "diagnosis": "Диагнозы",
        "abnormal_labs": "Талдаулардағы ауытқулар",
        "prescriptions": "Тағайындаулар",
        "recommendations": "Ұсынымдар",
    },
    "zh": {
        "complaints": "主诉",
        "diagnosis": "诊断",
        "abnormal_labs": "异常检验结果",
        "prescriptions": "处方用药",
        "recommendations": "医嘱建议",
    },
    "en": {
        "complaints": "Complaints",
        "diagnosis": "Diagnosis",
        "abnormal_labs": "Abnormal lab results",
        "prescriptions": "Prescriptions",
        "recommendations": "Recommendations",
    },
}

WORDS: dict[str, dict[str, str]] = {
    "ru": {
        "colon": ": ",
        "no_data": "нет данных",
        "no_abnormal": "отклонений не выявлено",
        "below": "ниже нормы",
        "within": "в пределах нормы",
        "above": "выше нормы",
        "range": "норма: {low}–{high}",
        "range_max": "норма: не выше {high}",
        "range_min": "норма: не ниже {low}",
        "no_range": "норма не указана",
        "typical_adult": "типичная для взрослых",
        "typical_age": "типичная для этого возраста",
        "none_judged": "не оценены: нормы не указаны",
        "not_judged": "Не оценены (норма не указана)",
        "intro": "Разберём ваши анализы по порядку.",
        "unknown_status": "Уточните у врача, что означает этот результат.",
        "closing": (
            "Обязательно обсудите эти результаты с лечащим врачом: только он может оценить их с учётом "
            "вашего состояния и при необходимости изменить лечение."
        ),
        "generic_below": "Значение ниже нормы; врач оценит его вместе с другими результатами обследования.",
        "generic_above": "Значение выше нормы; врач оценит его вместе с другими результатами обследования.",
    },
    "kk": {
        "colon": ": ",
        "no_data": "мәлімет жоқ",
        "no_abnormal": "ауытқулар анықталған жоқ",
        "below": "қалыпты деңгейден төмен",
        "within": "қалыпты шекте",
        "above": "қалыпты деңгейден жоғары",
        "range": "қалыпты мәні: {low}–{high}",
        "range_max": "қалыпты мәні: {high} дейін",
        "range_min": "қалыпты мәні: кемінде {low}",
        "no_range": "қалыпты мәні көрсетілмеген",
        "typical_adult": "ересектерге тән",
        "typical_age": "осы жасқа тән",
        "none_judged": "бағаланбады: қалыпты мәндері көрсетілмеген",
        "not_judged": "Бағаланбады (қалыпты мәні көрсетілмеген)",
        "intro": "Талдау нәтижелеріңізді ретімен қарастырайық.",
        "unknown_status": "Бұл нәтиженің мәнін дәрігерден сұраңыз.",
        "closing": (
            "Бұл нәтижелерді міндетті түрде емдеуші дәрігеріңізбен талқылаңыз: тек ол оларды "
            "денсаулығыңыздың жай-күйін ескере отырып бағалап, қажет болса емді өзгерте алады."
        ),
        "generic_below": ("Мәні қалыпты деңгейден төмен; дәрігер оны басқа тексеру нәтижелерімен бірге бағалайды."),
        "generic_above": ("Мәні қалыпты деңгейден жоғары; дәрігер оны басқа тексеру нәтижелерімен бірге бағалайды."),
    },
    "zh": {
        "colon": "：",
        "no_data": "无",
        "no_abnormal": "未见异常",
        "below": "低于参考范围",
        "within": "在参考范围内",
        "above": "高于参考范围",
        "range": "参考范围：{low}–{high}",
        "range_max": "参考范围：≤{high}",
        "range_min": "参考范围：≥{low}",
        "no_range": "未提供参考范围",
        "typical_adult": "成人常见参考值",
        "typical_age": "该年龄常见参考值",
        "none_judged": "未评估：均未提供参考范围",
        "not_judged": "未评估（未提供参考范围）",
        "intro": "下面逐项为您解读检验结果。",
        "unknown_status": "请向医生咨询该结果的意义。",
        "closing": ("请务必与您的主治医生讨论这些结果，医生会结合您的具体情况进行解读，并在需要时调整治疗方案。"),
        "generic_below": "该指标偏低，医生会结合其他检查结果综合判断。",
        "generic_above": "该指标偏高，医生会结合其他检查结果综合判断。",
    },
    "en": {
        "colon": ": ",
        "no_data": "no data",
        "no_abnormal": "no abnormalities found",
        "below": "below the reference range",
        "within": "within the reference range",
        "above": "above the reference range",
        "range": "reference range: {low}–{high}",
        "range_max": "reference range: up to {high}",
        "range_min": "reference range: at least {low}",
        "no_range": "no reference range given",
        "typical_adult": "typical adult range",
        "typical_age": "typical for this age",
        "none_judged": "none judged: no reference ranges given",
        "not_judged": "Not judged (no reference range given)",
        "intro": "Let us go through your results one by one.",
        "unknown_status": "Ask your doctor what this result means.",
        "closing": (
            "Please discuss these results with your doctor: only they can interpret them in the light of your "
            "health and change the treatment if needed."
        ),
        "generic_below": "The value is below the reference range; your doctor will assess it with your other results.",
        "generic_above": "The value is above the reference range; your doctor will assess it with your other results.",
    },
}


def days(n: int, lang: str) -> str:
    """``n`` days with the right word form (Russian has three plural forms)."""
    if lang == "zh":
        return f"共{n}天"
    if lang == "kk":
        return f"{n} күн"
    if lang == "en":
        return f"{n} day" if n == 1 else f"{n} days"
    if n % 10 == 1 and n % 100 != 11:
        word = "день"
    elif 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        word = "дня"
    else:
        word = "дней"
    return f"{n} {word}"
