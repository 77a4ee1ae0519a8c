"""Wording of the notes and answers that tasks build, per language.

Kept apart from the task logic so that a native speaker can review or improve the phrasing of one
language without reading code, and so that every language offers the same slots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

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
        "diagnosis": "Диагноз (МКБ-10)",
        "abnormal_labs": "Отклонения в анализах",
        "prescriptions": "Назначения",
        "recommendations": "Рекомендации",
    },
    "kk": {
        "complaints": "Шағымдары",
        "diagnosis": "Диагнозы (АХЖ-10)",
        "abnormal_labs": "Талдаулардағы ауытқулар",
        "prescriptions": "Тағайындаулар",
        "recommendations": "Ұсынымдар",
    },
    "zh": {
        "complaints": "主诉",
        "diagnosis": "诊断（ICD-10）",
        "abnormal_labs": "异常检验结果",
        "prescriptions": "处方用药",
        "recommendations": "医嘱建议",
    },
    "en": {
        "complaints": "Complaints",
        "diagnosis": "Diagnosis (ICD-10)",
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


@dataclass(frozen=True)
class LabMeaning:
    """What a low or high result of one analyte may mean, per language.

    ``aliases`` match the start of a word in the lab's name (Chinese ones anywhere in it); the first
    entry that matches wins, so "гликированный гемоглобин" comes before "гемоглобин".
    """

    aliases: tuple[str, ...]
    low: dict[str, str] = field(default_factory=dict)
    high: dict[str, str] = field(default_factory=dict)


LAB_MEANINGS: list[LabMeaning] = [
    LabMeaning(
        aliases=("hba1c", "гликированн", "гликозилированн", "гликирленген", "糖化血红蛋白"),
        high={
            "ru": (
                "Повышенный гликированный гемоглобин означает, что сахар в крови последние 2–3 месяца "
                "был выше целевого уровня."
            ),
            "kk": (
                "Гликирленген гемоглобиннің жоғарылауы соңғы 2–3 айда қандағы қант деңгейі мақсатты "
                "мәннен жоғары болғанын көрсетеді."
            ),
            "zh": "糖化血红蛋白偏高说明近2～3个月的平均血糖高于目标水平。",
        },
    ),
    LabMeaning(
        aliases=("гемоглобин", "血红蛋白"),
        low={
            "ru": (
                "Сниженный гемоглобин может быть признаком анемии, из-за которой бывают слабость и "
                "быстрая утомляемость."
            ),
            "kk": (
                "Гемоглобиннің төмендеуі анемияның (қаназдықтың) белгісі болуы мүмкін, ол әлсіздік пен "
                "тез шаршауға әкеледі."
            ),
            "zh": "血红蛋白偏低可能提示贫血，常表现为乏力、容易疲劳。",
        },
        high={
            "ru": "Повышенный гемоглобин бывает при обезвоживании, курении или заболеваниях крови.",
            "kk": "Гемоглобиннің жоғарылауы сусыздануда, темекі шегуде немесе қан ауруларында кездеседі.",
            "zh": "血红蛋白偏高可见于脱水、吸烟或血液系统疾病。",
        },
    ),
    LabMeaning(
        aliases=("глюкоз", "сахар", "葡萄糖", "血糖", "空腹血糖"),
        low={
            "ru": (
                "Сниженная глюкоза — это низкий сахар в крови; он может вызывать слабость, потливость и головокружение."
            ),
            "kk": (
                "Глюкозаның төмендеуі қандағы қанттың аз екенін білдіреді, ол әлсіздік, тершеңдік және "
                "бас айналуын тудыруы мүмкін."
            ),
            "zh": "血糖偏低可能引起乏力、出汗和头晕。",
        },
        high={
            "ru": ("Повышенная глюкоза означает высокий уровень сахара в крови; это важно при диабете и предиабете."),
            "kk": (
                "Глюкозаның жоғарылауы қандағы қант деңгейінің жоғары екенін білдіреді; бұл қант диабеті "
                "мен предиабетте маңызды."
            ),
            "zh": "血糖偏高说明血液中的糖分水平较高，需警惕糖尿病或糖尿病前期。",
        },
    ),
    LabMeaning(
        aliases=("креатинин", "肌酐"),
        low={
            "ru": "Сниженный креатинин обычно связан с небольшой мышечной массой и редко бывает опасен.",
            "kk": ("Креатининнің төмендеуі әдетте бұлшықет массасының аздығымен байланысты және сирек қауіпті болады."),
            "zh": "肌酐偏低通常与肌肉量较少有关，一般意义不大。",
        },
        high={
            "ru": "Повышенный креатинин может указывать на снижение работы почек.",
            "kk": "Креатининнің жоғарылауы бүйрек қызметінің төмендегенін көрсетуі мүмкін.",
            "zh": "肌酐偏高可能提示肾功能下降。",
        },
    ),
    LabMeaning(
        aliases=("алт", "аланин", "аст", "аспартат", "alt", "ast", "谷丙", "谷草", "丙氨酸", "天门冬氨酸"),
        high={
            "ru": "Повышенные печёночные ферменты могут говорить о нагрузке на печень или её воспалении.",
            "kk": ("Бауыр ферменттерінің жоғарылауы бауырға түскен жүктемені немесе оның қабынуын көрсетуі мүмкін."),
            "zh": "转氨酶偏高可能提示肝脏负担加重或肝脏炎症。",
        },
    ),
    LabMeaning(
        aliases=("с-реактив", "c-реактив", "срб", "crp", "c反应蛋白", "c-反应蛋白", "超敏c反应蛋白"),
        high={
            "ru": "Повышенный С-реактивный белок — признак воспаления или инфекции в организме.",
            "kk": "С-реактивті ақуыздың жоғарылауы ағзадағы қабынудың немесе инфекцияның белгісі.",
            "zh": "C反应蛋白偏高提示体内存在炎症或感染。",
        },
    ),
    LabMeaning(
        aliases=("ттг", "тиреотроп", "tsh", "促甲状腺"),
        low={
            "ru": "Сниженный ТТГ может говорить об избыточной работе щитовидной железы.",
            "kk": "ТТГ төмендеуі қалқанша безінің шамадан тыс белсенді жұмысын көрсетуі мүмкін.",
            "zh": "促甲状腺激素偏低可能提示甲状腺功能亢进。",
        },
        high={
            "ru": "Повышенный ТТГ часто означает, что щитовидная железа работает слабее, чем нужно.",
            "kk": "ТТГ жоғарылауы көбінесе қалқанша безінің қызметі жеткіліксіз екенін білдіреді.",
            "zh": "促甲状腺激素偏高常提示甲状腺功能减退。",
        },
    ),
    LabMeaning(
        aliases=("калий", "钾", "血钾"),
        low={
            "ru": "Сниженный калий может вызывать мышечную слабость и перебои в работе сердца.",
            "kk": "Калийдің төмендеуі бұлшықет әлсіздігін және жүрек ырғағының бұзылуын тудыруы мүмкін.",
            "zh": "血钾偏低可能引起肌无力和心律不齐。",
        },
        high={
            "ru": "Повышенный калий может влиять на работу сердца, поэтому его важно контролировать.",
            "kk": "Калийдің жоғарылауы жүрек жұмысына әсер етуі мүмкін, сондықтан оны бақылау маңызды.",
            "zh": "血钾偏高可能影响心脏节律，需要及时复查。",
        },
    ),
    LabMeaning(
        aliases=("натрий", "钠", "血钠"),
        low={
            "ru": (
                "Сниженный натрий бывает при нарушении водно-солевого баланса и может вызывать слабость "
                "и головную боль."
            ),
            "kk": ("Натрийдің төмендеуі су-тұз алмасуы бұзылғанда кездеседі, әлсіздік пен бас ауруын тудыруы мүмкін."),
            "zh": "血钠偏低见于水盐平衡紊乱，可引起乏力、头痛。",
        },
        high={
            "ru": "Повышенный натрий чаще всего связан с недостатком жидкости в организме.",
            "kk": "Натрийдің жоғарылауы көбінесе ағзадағы сұйықтықтың жетіспеушілігімен байланысты.",
            "zh": "血钠偏高多与体内缺水有关。",
        },
    ),
    LabMeaning(
        aliases=("холестерин", "лпнп", "ldl", "胆固醇", "低密度脂蛋白"),
        high={
            "ru": "Повышенный холестерин увеличивает риск атеросклероза и болезней сердца и сосудов.",
            "kk": "Холестериннің жоғарылауы атеросклероз және жүрек-қантамыр ауруларының қаупін арттырады.",
            "zh": "胆固醇偏高会增加动脉粥样硬化和心脑血管疾病的风险。",
        },
    ),
    LabMeaning(
        aliases=("тропонин", "肌钙蛋白"),
        high={
            "ru": "Повышенный тропонин указывает на повреждение сердечной мышцы.",
            "kk": "Тропониннің жоғарылауы жүрек бұлшықетінің зақымдануын көрсетеді.",
            "zh": "肌钙蛋白升高提示心肌损伤。",
        },
    ),
    LabMeaning(
        aliases=("мно", "хққ", "inr", "国际标准化比值"),
        low={
            "ru": "Сниженное МНО может означать повышенную свёртываемость крови.",
            "kk": "ХҚҚ төмендеуі қанның ұю қабілеті жоғарылағанын білдіруі мүмкін.",
            "zh": "INR偏低可能提示凝血功能增强。",
        },
        high={
            "ru": (
                "Повышенное МНО означает, что кровь сворачивается медленнее; при приёме антикоагулянтов "
                "это требует контроля дозы."
            ),
            "kk": (
                "ХҚҚ жоғарылауы қанның баяу ұйитынын білдіреді; антикоагулянттар қабылдағанда дозаны бақылау қажет."
            ),
            "zh": "INR偏高说明血液凝固较慢，服用抗凝药时需在医生指导下调整剂量。",
        },
    ),
    LabMeaning(
        aliases=("лейкоцит", "白细胞", "wbc"),
        low={
            "ru": "Сниженные лейкоциты могут ослаблять защиту организма от инфекций.",
            "kk": "Лейкоциттердің төмендеуі ағзаның инфекциялардан қорғанысын әлсіретуі мүмкін.",
            "zh": "白细胞偏低可能使机体抵抗感染的能力下降。",
        },
        high={
            "ru": "Повышенные лейкоциты часто сопровождают воспаление или инфекцию.",
            "kk": "Лейкоциттердің жоғарылауы көбінесе қабынуға немесе инфекцияға байланысты.",
            "zh": "白细胞偏高常见于炎症或感染。",
        },
    ),
    LabMeaning(
        aliases=("тромбоцит", "血小板", "plt"),
        low={
            "ru": "Сниженные тромбоциты могут повышать склонность к кровотечениям и синякам.",
            "kk": "Тромбоциттердің төмендеуі қан кетуге және көгеруге бейімділікті арттыруы мүмкін.",
            "zh": "血小板偏低可能增加出血和瘀斑的风险。",
        },
        high={
            "ru": "Повышенные тромбоциты бывают при воспалении и повышают риск образования тромбов.",
            "kk": "Тромбоциттердің жоғарылауы қабынуда кездеседі және тромб түзілу қаупін арттырады.",
            "zh": "血小板偏高可见于炎症，也会增加血栓风险。",
        },
    ),
    LabMeaning(
        aliases=("соэ", "этж", "血沉", "红细胞沉降率"),
        high={
            "ru": "Повышенная СОЭ — неспецифический признак воспаления.",
            "kk": "ЭТЖ жоғарылауы — қабынудың жалпы белгісі.",
            "zh": "血沉增快是炎症的非特异性表现。",
        },
    ),
    LabMeaning(
        aliases=("ферритин", "铁蛋白"),
        low={
            "ru": "Сниженный ферритин говорит о нехватке запасов железа в организме.",
            "kk": "Ферритиннің төмендеуі ағзадағы темір қорының жетіспейтінін көрсетеді.",
            "zh": "铁蛋白偏低提示体内储存铁不足。",
        },
    ),
    LabMeaning(
        aliases=("билирубин", "胆红素"),
        high={
            "ru": "Повышенный билирубин может быть связан с нарушением работы печени или желчных путей.",
            "kk": ("Билирубиннің жоғарылауы бауыр немесе өт жолдары қызметінің бұзылуымен байланысты болуы мүмкін."),
            "zh": "胆红素偏高可能与肝脏或胆道功能异常有关。",
        },
    ),
]


def _alias_matches(alias: str, name: str) -> bool:
    if re.search(r"[\u4e00-\u9fff]", alias):
        return alias in name
    return re.search(rf"(?<![^\W\d_]){re.escape(alias)}", name) is not None


@lru_cache(maxsize=4096)
def _meaning_of(lowered_name: str) -> LabMeaning | None:
    """The first entry of LAB_MEANINGS one of whose aliases the lab's name contains (lab names repeat: remembered)."""
    return next((m for m in LAB_MEANINGS if any(_alias_matches(a, lowered_name) for a in m.aliases)), None)


def lab_meaning(name: str, lang: str, status: str) -> str:
    """A plain sentence on what a low or high result of this lab may mean, or a neutral fallback."""
    meaning = _meaning_of(name.lower())
    if meaning is not None:
        sentence = (meaning.low if status == "below" else meaning.high).get(lang)
        if sentence:
            return sentence
    return WORDS[lang]["generic_below" if status == "below" else "generic_above"]
