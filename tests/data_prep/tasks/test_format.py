"""The format check behind the report's format-adherence metric, on answers the tasks themselves write."""

from __future__ import annotations

from data_prep.readers import read_clinic_records
from data_prep.records import Record
from data_prep.samples import bundled_path
from data_prep.tasks import TASKS, format_check
from finetune.eval._metrics import Answer, answer_stats, metric_value


def _examples(lang: str, task: str):
    for record in read_clinic_records(bundled_path(lang)):
        if isinstance(record, Record):
            yield from TASKS[task](record)


def test_every_reference_passes_its_own_check_and_blank_or_cut_answers_fail() -> None:
    for lang in ("ru", "kk", "zh"):
        for task in ("structured_summary", "lab_explanation", "icd10_coding", "plain_language"):
            for example in list(_examples(lang, task))[:5]:
                reference = example.messages[-1]["content"]
                check = format_check(task, lang, reference)
                assert check is not None and check(reference), (lang, task)
                assert not check("\n" * 48)
                if task in ("structured_summary", "plain_language"):  # their last lines are part of the shape
                    assert not check(reference[: len(reference) // 3]), (lang, task)


def test_lab_explanation_must_name_each_abnormal_lab() -> None:
    reference = "Разберём.\n- Гемоглобин: 98 г/л — ниже нормы (норма: 120–160 г/л). Мало.\n- Калий: 4.3 ммоль/л (норма)"
    check = format_check("lab_explanation", "ru", reference)
    assert check is not None
    assert check("- Гемоглобин: низкий") and not check("- Калий: 4.3")


def test_format_adherence_is_a_metric_of_test_items() -> None:
    [example] = list(_examples("ru", "structured_summary"))[:1]
    reference = example.messages[-1]["content"]
    good = answer_stats("free_text", Answer(reference), lang="ru", reference=reference, task="structured_summary")
    blank = answer_stats("free_text", Answer("\n\n", "length"), lang="ru", reference=reference,
                         task="structured_summary")
    assert metric_value("format_adherence", [good, blank]) == 0.5
    assert "format_adherence" not in answer_stats("free_text", Answer("x"), lang="ru", reference=reference)


def test_icd10_answer_keeps_the_reference_shape_code_alone_or_code_with_diagnosis() -> None:
    code_only = format_check("icd10_coding", "ru", "J18.9")
    assert code_only is not None
    assert code_only("J18.9") and code_only(" I10 \n")
    assert not code_only("J18.9 — Пневмония") and not code_only("пневмония")
    with_text = format_check("icd10_coding", "ru", "J18.9 — Пневмония неуточнённая")
    assert with_text is not None
    assert with_text("I10 — Гипертензия") and not with_text("I10")
