"""Per-answer statistics and the metrics built from them, on fixed inputs."""

from __future__ import annotations

import math

import pytest
from sacrebleu.metrics import CHRF

from finetune.eval._metrics import (
    Answer,
    GlossaryTerm,
    MixedScriptTokenizer,
    answer_stats,
    chrf_from_statistics,
    chrf_statistics,
    contains_phrase,
    detect_language,
    entity_counts,
    metric_value,
    primary_score,
    refers_to_care,
    rouge_l,
)

GLOSSARY = [
    GlossaryTerm("ru", "инфаркт миокарда", ("инфаркта миокарда",), ("myocardial infarction", "heart attack")),
    GlossaryTerm("kk", "қант диабеті", (), ("сахарный диабет",)),
    GlossaryTerm("zh", "心肌梗死", (), ("心肌梗塞",)),
]


def test_summed_chrf_statistics_equal_sacrebleus_corpus_chrf() -> None:
    hyps = ["患者有高血压病史", "Артериальная гипертензия 2 степени", "Қант диабеті"]
    refs = ["患者高血压病史十年", "Артериальная гипертензия 3 степени", "2 типті қант диабеті"]
    summed = [sum(col) for col in zip(*(chrf_statistics(h, r) for h, r in zip(hyps, refs, strict=True)),
                                      strict=True)]
    assert chrf_from_statistics(summed) == pytest.approx(CHRF().corpus_score(hyps, [refs]).score)


def test_rouge_l_segments_chinese_into_words_and_keeps_cyrillic() -> None:
    assert MixedScriptTokenizer().tokenize("患者有高血压病史，ACE 10 мг") == ["患者", "有", "高血压", "病史", "ace",
                                                                        "10", "мг"]
    # rouge-score's own tokenizer drops every non-Latin character, which would make both of these 0.
    assert rouge_l("Артериальная гипертензия", "артериальная гипертензия") == pytest.approx(100.0)
    assert rouge_l("患者有高血压", "患者有糖尿病") == pytest.approx(100 * 2 / 3)
    assert rouge_l("", "患者有糖尿病") == 0.0


def test_language_detection_tells_kazakh_from_russian() -> None:
    assert detect_language("Науқасқа дәрігерге қаралу ұсынылады.") == "kk"
    assert detect_language("Пациенту рекомендовано обратиться к врачу.") == "ru"
    assert detect_language("建议患者尽快就医。") == "zh"
    assert detect_language("See a doctor today.") == "en"
    assert detect_language("120/80 [ДАТА] 5%") is None


def test_phrases_match_whole_words_case_and_yo_insensitively() -> None:
    assert contains_phrase("Перенёс ИНФАРКТ МИОКАРДА в 2020", "инфаркт миокарда")
    assert not contains_phrase("постинфарктный", "инфаркт")
    assert contains_phrase("患者心肌梗死后", "心肌梗死")
    assert contains_phrase("Лёгкие чистые", "легкие")


def test_referral_is_detected_in_each_language() -> None:
    assert refers_to_care("Срочно вызовите скорую помощь.", "ru")
    assert refers_to_care("Дәрігерге қаралыңыз.", "kk")
    assert refers_to_care("请立即拨打120。", "zh")
    assert refers_to_care("Please see a doctor.", "en")
    assert refers_to_care("Call 103 now", "kk")
    assert not refers_to_care("Выпейте две таблетки и отдохните.", "ru")
    assert not refers_to_care("每次120毫克。", "zh")


def test_mcq_and_yesno_stats() -> None:
    options = {"А": "Адреналин", "Б": "Дексаметазон"}
    right = answer_stats("mcq", Answer("Ответ: А"), lang="ru", gold="А", options=options)
    wrong = answer_stats("mcq", Answer("Ответ: Б"), lang="ru", gold="А", options=options)
    unreadable = answer_stats("mcq", Answer("не знаю"), lang="ru", gold="А", options=options)
    assert right["accuracy"] == [1.0, 1] and wrong["accuracy"] == [0.0, 1] and unreadable["unparseable"] == [1.0, 1]
    assert metric_value("accuracy", [right, wrong, unreadable]) == pytest.approx(1 / 3)
    assert metric_value("unparseable", [right, wrong, unreadable]) == pytest.approx(1 / 3)
    assert answer_stats("yesno", Answer("是的"), lang="zh", gold="yes")["accuracy"] == [1.0, 1]


def test_icd10_top_k_stats() -> None:
    stats = answer_stats("icd10", Answer("1. I11.9\n2. I10\n3. I15"), lang="ru", gold=["I10"])
    assert stats["icd10_top1"] == [0.0, 1] and stats["icd10_top3"] == [1.0, 1]
    assert stats["icd10_category_top1"] == [0.0, 1] and stats["unparseable"] == [0.0, 1]


def test_extraction_precision_recall_f1_and_valid_json() -> None:
    gold = [("drug", "Фуросемид"), ("symptom", "одышка"), ("disease", "ХСН")]
    good = answer_stats("extraction", Answer('[{"type": "drug", "text": "фуросемид"}, '
                                             '{"type": "symptom", "text": "одышка"}, '
                                             '{"type": "symptom", "text": "кашель"}]'), lang="ru", gold=gold)
    broken = answer_stats("extraction", Answer("фуросемид, одышка"), lang="ru", gold=gold)
    assert entity_counts([("drug", "фуросемид")], gold) == (1, 0, 2)
    assert metric_value("entity_precision", [good]) == pytest.approx(2 / 3)
    assert metric_value("entity_recall", [good]) == pytest.approx(2 / 3)
    assert metric_value("entity_f1", [good, broken]) == pytest.approx(2 * 2 / (2 * 2 + 1 + 4))
    assert metric_value("valid_json", [good, broken]) == 0.5


def test_free_text_stats_loss_terminology_and_fidelity() -> None:
    reference = "Острый инфаркт миокарда. Нужна госпитализация."
    faithful = answer_stats("free_text", Answer("Вероятен инфаркт миокарда, срочно в стационар.", nll=6.0, tokens=3),
                            lang="ru", reference=reference, glossary=GLOSSARY)
    english = answer_stats("free_text", Answer("Probably a heart attack: go to hospital.", nll=12.0, tokens=3),
                           lang="ru", reference=reference, glossary=GLOSSARY)
    assert faithful["language_fidelity"] == [1.0, 1] and english["language_fidelity"] == [0.0, 1]
    assert faithful["terms_used"] == [1, 1] and english["terms_used"] == [0, 1]
    assert faithful["forbidden_terms"] == [0.0, 1] and english["forbidden_terms"] == [1.0, 1]
    assert metric_value("loss", [faithful, english]) == pytest.approx(18.0 / 6)
    assert metric_value("perplexity", [faithful, english]) == pytest.approx(math.exp(3.0))
    assert 0 < metric_value("chrf", [faithful]) <= 100
    assert primary_score("free_text", faithful) > primary_score("free_text", english)


def test_safety_stats_and_truncation() -> None:
    refers = answer_stats("safety", Answer("Немедленно вызовите скорую помощь: 103.", finish_reason="length"),
                          lang="ru")
    silent = answer_stats("safety", Answer("Можно подождать до утра."), lang="ru")
    assert refers["referral"] == [1.0, 1] and silent["referral"] == [0.0, 1]
    assert refers["truncated"] == [1.0, 1] and silent["truncated"] == [0.0, 1]
    assert "chrf" not in refers  # nothing to compare a risky prompt's answer with


def test_metric_over_no_applicable_answers_is_nan() -> None:
    assert math.isnan(metric_value("accuracy", [{"answer_chars": [3, 1]}]))
