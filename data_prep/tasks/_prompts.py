"""System prompts and task instructions, written natively in each language.

The model learns to follow instructions in the language of the clinic, so each prompt is written in
that language rather than translated word for word; English is there for evaluation and mixed use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
            "Составьте структурированное резюме медицинской записи по разделам: Жалобы, Диагноз (с кодом), "
            "Отклонения в анализах, Назначения, Рекомендации. Для каждого отклонения укажите значение, "
            "единицы измерения и норму."
        ),
        "kk": (
            "Медициналық жазбаның құрылымдалған түйіндемесін мына бөлімдер бойынша жасаңыз: Шағымдары, "
            "Диагнозы (кодымен), Талдаулардағы ауытқулар, Тағайындаулар, Ұсынымдар. Әр ауытқу үшін мәнін, "
            "өлшем бірлігін және қалыпты мәнін көрсетіңіз."
        ),
        "zh": (
            "请根据以下病历生成结构化摘要，按以下部分书写：主诉、诊断（附编码）、异常检验结果、处方用药、"
            "医嘱建议。每项异常结果请注明数值、单位和参考范围。"
        ),
        "en": (
            "Write a structured summary of the medical record with these sections: Complaints, Diagnosis "
            "(with its code), Abnormal lab results, Prescriptions, Recommendations. For each abnormal result give "
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


INSTRUCTIONS.update(
    {
        "icd10_coding": {
            "ru": "Определите код основного диагноза по МКБ-10 по жалобам и анамнезу пациента. Ответ дайте в "
            "виде «код — название диагноза».",
            "kk": "Науқастың шағымдары мен анамнезі бойынша негізгі диагноздың АХЖ-10 кодын анықтаңыз. Жауапты "
            "«код — диагноз атауы» түрінде беріңіз.",
            "zh": "请根据患者的主诉和病史，给出主要诊断的ICD-10编码，格式为“编码 — 诊断名称”。",
            "en": "Give the ICD-10 code of the main diagnosis from the patient's complaints and history, as "
            '"code — diagnosis name".',
        },
        "plain_language": {
            "ru": "Объясните пациенту простыми словами, без медицинских терминов, что записано в его выписке: "
            "диагноз, лечение и что делать дальше.",
            "kk": "Науқасқа шығару эпикризінде не жазылғанын медициналық терминдерсіз, қарапайым тілмен "
            "түсіндіріңіз: диагнозы, емі және әрі қарай не істеу керек.",
            "zh": "请用通俗易懂、不含专业术语的语言向患者解释出院记录的内容：诊断、治疗以及接下来该怎么做。",
            "en": "Explain to the patient in plain words, without medical jargon, what their discharge note "
            "says: the diagnosis, the treatment and what to do next.",
        },
        "extraction": {
            "ru": "Извлеките из медицинского текста симптомы, диагнозы, препараты и лабораторные показатели. "
            "Ответ дайте в формате JSON с ключами symptoms, diagnoses, drugs, labs.",
            "kk": "Медициналық мәтіннен симптомдарды, диагноздарды, дәрілерді және зертханалық көрсеткіштерді "
            "бөліп алыңыз. Жауапты symptoms, diagnoses, drugs, labs кілттері бар JSON түрінде беріңіз.",
            "zh": "请从医学文本中提取症状、诊断、药物和检验指标，"
            "以JSON格式输出，键为symptoms、diagnoses、drugs、labs。",
            "en": "Extract the symptoms, diagnoses, drugs and lab tests from the clinical text. Answer in JSON "
            "with the keys symptoms, diagnoses, drugs, labs.",
        },
        "multiple_choice": {
            "ru": "Выберите один правильный вариант ответа. Начните ответ со слова «Ответ:», буквы и текста варианта.",
            "kk": "Бір дұрыс жауапты таңдаңыз. Жауапты «Жауап:» сөзінен, нұсқаның әрпі мен мәтінінен бастаңыз.",
            "zh": "请选择一个正确答案，以“答案：”开头，写出选项字母和内容。",
            "en": 'Choose the one correct option. Start your reply with "Answer:", the option\'s letter and its text.',
        },
        "qa": {
            "ru": "Ответьте на вопрос. Если дан текст, опирайтесь только на него. Начните ответ со слова «Ответ:».",
            "kk": "Сұраққа жауап беріңіз. Мәтін берілсе, тек соған сүйеніңіз. Жауапты «Жауап:» сөзінен бастаңыз.",
            "zh": "请回答问题。如提供了文本，请只依据该文本作答。以“答案：”开头。",
            "en": 'Answer the question. If a text is given, rely on it only. Start your reply with "Answer:".',
        },
        "dialogue_continuation": {
            "ru": "Вы — врач на консультации. Отвечайте пациенту вежливо, по существу и задавайте уточняющие "
            "вопросы, если их не хватает для совета.",
            "kk": "Сіз — кеңес беріп отырған дәрігерсіз. Науқасқа сыпайы, нақты жауап беріңіз, кеңес беруге "
            "мәлімет жетпесе, нақтылау сұрақтарын қойыңыз.",
            "zh": "你是一名正在接诊的医生。请礼貌、切题地回复患者，信息不足时请追问。",
            "en": "You are a doctor in a consultation. Reply to the patient politely and to the point, and ask "
            "follow-up questions when you need more information to advise.",
        },
        "term_translation": {
            "ru": "Переведите медицинский термин.",
            "kk": "Медициналық терминді аударыңыз.",
            "zh": "请翻译以下医学术语。",
            "en": "Translate the medical term.",
        },
        "term_definition": {
            "ru": "Дайте определение медицинского термина.",
            "kk": "Медициналық терминге анықтама беріңіз.",
            "zh": "请解释以下医学术语的含义。",
            "en": "Define the medical term.",
        },
    }
)

ANSWER_WORD: dict[str, str] = {"ru": "Ответ: ", "kk": "Жауап: ", "zh": "答案：", "en": "Answer: "}
"""How every QA and multiple-choice answer starts, so the model learns one way to state it."""


def system_prompt(lang: str) -> str:
    """System prompt for ``lang``; a KeyError names the language that has none."""
    return SYSTEM_PROMPTS[lang]


def instruction(task: str, lang: str) -> str:
    """User-side instruction for ``task`` in ``lang``."""
    return INSTRUCTIONS[task][lang]


@dataclass(frozen=True)
class Prompts:
    """Built-in prompts with the recipe's overrides on top (``data.prompts``)."""

    system: Mapping[str, str] = field(default_factory=dict)
    tasks: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def system_prompt(self, lang: str) -> str:
        return self.system.get(lang) or system_prompt(lang)

    def instruction(self, task: str, lang: str) -> str:
        return (self.tasks.get(task) or {}).get(lang) or instruction(task, lang)


BUILT_IN = Prompts()
