"""System prompts and task instructions, written natively in each language.

The model learns to follow instructions in the language of the clinic, so each prompt is written in
that language rather than translated word for word; English is there for evaluation and mixed use.
"""

from __future__ import annotations

PROMPT_LANGS: tuple[str, ...] = ("ru", "kk", "zh", "en")

SYSTEM_PROMPTS: dict[str, str] = {
    "ru": (
        "Вы — медицинский ассистент клиники. Отвечайте на русском языке точно и по существу, опираясь "
        "только на данные медицинской документации, и не додумывайте факты. Персональные данные в "
        "документах заменены метками в квадратных скобках, например [ФИО] или [ДАТА]."
    ),
    "kk": (
        "Сіз — клиниканың медициналық көмекшісісіз. Қазақ тілінде нақты әрі қысқа жауап беріңіз, тек "
        "медициналық құжаттағы деректерге сүйеніңіз және ойдан ешнәрсе қоспаңыз. Құжаттардағы жеке "
        "деректер төртбұрышты жақшадағы белгілермен ауыстырылған, мысалы [ФИО] немесе [ДАТА]."
    ),
    "zh": (
        "你是一名医院的医疗助手。请使用简体中文，准确、简明地回答，只依据病历中的信息，不要编造内容。"
        "病历中的个人信息已替换为方括号标记，例如[姓名]或[日期]。"
    ),
    "en": (
        "You are a clinical assistant. Answer accurately and concisely, using only the information in the "
        "medical record, and do not invent facts. Personal data in the records has been replaced with "
        "placeholders in square brackets, such as [NAME] or [DATE]."
    ),
}

INSTRUCTIONS: dict[str, dict[str, str]] = {
    "structured_summary": {
        "ru": (
            "Составьте структурированное резюме медицинской записи по разделам: Жалобы, Диагноз (МКБ-10), "
            "Отклонения в анализах, Назначения, Рекомендации. Для каждого отклонения укажите значение, "
            "единицы измерения и норму."
        ),
        "kk": (
            "Медициналық жазбаның құрылымдалған түйіндемесін мына бөлімдер бойынша жасаңыз: Шағымдары, "
            "Диагнозы (АХЖ-10), Талдаулардағы ауытқулар, Тағайындаулар, Ұсынымдар. Әр ауытқу үшін мәнін, "
            "өлшем бірлігін және қалыпты мәнін көрсетіңіз."
        ),
        "zh": (
            "请根据以下病历生成结构化摘要，按以下部分书写：主诉、诊断（ICD-10）、异常检验结果、处方用药、"
            "医嘱建议。每项异常结果请注明数值、单位和参考范围。"
        ),
        "en": (
            "Write a structured summary of the medical record with these sections: Complaints, Diagnosis "
            "(ICD-10), Abnormal lab results, Prescriptions, Recommendations. For each abnormal result give "
            "the value, unit and reference range."
        ),
    },
    "lab_explanation": {
        "ru": (
            "Объясните пациенту простыми словами результаты его анализов: для каждого показателя укажите, "
            "ниже нормы, в пределах нормы или выше нормы его значение, и что означают отклонения."
        ),
        "kk": (
            "Науқасқа талдау нәтижелерін қарапайым тілмен түсіндіріңіз: әр көрсеткіштің мәні қалыпты "
            "деңгейден төмен бе, қалыпты шекте ме, әлде жоғары ма, соны және ауытқулардың нені білдіретінін "
            "көрсетіңіз."
        ),
        "zh": (
            "请用通俗易懂的语言向患者解释以下检验结果：说明每项指标低于、处于还是高于参考范围，"
            "并说明异常结果可能意味着什么。"
        ),
        "en": (
            "Explain these lab results to the patient in plain language: for each test say whether the "
            "value is below, within or above the reference range, and what any abnormal result may mean."
        ),
    },
}


def system_prompt(lang: str) -> str:
    """System prompt for ``lang``; a KeyError names the language that has none."""
    return SYSTEM_PROMPTS[lang]


def instruction(task: str, lang: str) -> str:
    """User-side instruction for ``task`` in ``lang``."""
    return INSTRUCTIONS[task][lang]
