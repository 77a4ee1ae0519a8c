"""De-identification in depth: checksums, names in three languages, surrogates, date shifting, the labelled set."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace

import pytest

from data_prep.config import DeidConfig
from data_prep.deid._evaluation import detectors_for, load_heldout, load_testset, parse_labelled_notes, score
from data_prep.deid._national_ids import (
    cn_resident_valid,
    fake_cn_resident,
    fake_iin,
    fake_inn,
    fake_oms,
    fake_snils,
    iin_valid,
    inn_valid,
    oms_valid,
    snils_valid,
)
from data_prep.deid._ner import passages_to_read
from data_prep.deid._patterns import pattern_detectors
from data_prep.deid._records import deidentify, deidentify_many
from data_prep.deid._scan import redact_text
from data_prep.deid._spans import Span
from data_prep.records import Record


def test_checksums_accept_real_shapes_and_reject_one_digit_off() -> None:
    rng = random.Random(0)
    for make, valid in (
        (fake_iin, iin_valid),
        (fake_snils, snils_valid),
        (fake_inn, inn_valid),
        (fake_oms, oms_valid),
        (fake_cn_resident, cn_resident_valid),
    ):
        for _ in range(20):
            number = make(rng)
            assert valid(number), number
            last = number[-1]
            broken = number[:-1] + ("0" if last != "0" else "1")
            if make is not fake_snils:  # the СНИЛС check is two digits
                assert not valid(broken), broken
    assert cn_resident_valid("11010519491231002X") and not cn_resident_valid("110105194912310021")


def test_only_checksum_valid_numbers_are_ids_unless_a_cue_says_so() -> None:
    iin, accession = fake_iin(random.Random(1)), "123456789012"
    assert not iin_valid(accession)
    text = f"ИИН пациента {iin}. Номер пробирки {accession}. ИИН 123456789012."
    redacted, counts = redact_text(text, "kk", pattern_detectors())
    assert redacted == "ИИН пациента [ИИН]. Номер пробирки 123456789012. ИИН [ИИН]."
    assert counts == {"iin": 2}


@pytest.mark.parametrize(
    ("lang", "text", "expected"),
    [
        (
            "ru",
            "Полис ОМС 1234 5678 9012 3456, паспорт 45 12 345678, № истории болезни 1234/24.",
            "Полис ОМС [ПОЛИС], паспорт [ПАСПОРТ], № истории болезни [НОМЕР КАРТЫ].",
        ),
        ("ru", "ИНН 7707083893, звонила Мария.", "ИНН [ИНН], звонила [ФИО]."),
        ("kk", "Қызы Айгерім және Нұрсұлтан келді.", "Қызы [ФИО] және [ФИО] келді."),
        ("zh", "张建华，男，65岁，欧阳明医生接诊。", "[姓名]，男，65岁，[姓名]医生接诊。"),
        (
            "zh",
            "如有不适请联系徐医生，或由王主任会诊；请向医生咨询。",
            "如有不适请联系[姓名]医生，或由[姓名]主任会诊；请向医生咨询。",
        ),
        ("zh", "患者身份证号11010519491231002X，护照号E12345678。", "患者身份证号[身份证号]，护照号[护照号]。"),
    ],
)
def test_more_identifier_types_and_names(lang: str, text: str, expected: str) -> None:
    assert redact_text(text, lang, pattern_detectors())[0] == expected


def test_natasha_finds_names_the_patterns_miss() -> None:
    text = "Обсуждено с Эрастом Фандориным."
    assert "[ФИО]" not in redact_text(text, "ru", pattern_detectors())[0]
    assert redact_text(text, "ru", detectors_for("ru", ner=True))[0].count("[ФИО]") == 1


def _record(group: str, history: str) -> Record:
    fields = {
        "patient": {"full_name": "Иванов Пётр Сергеевич"},
        "history": history,
        "admission_date": "12.03.2024",
        "discharge_date": "20.03.2024",
        "diagnosis": "ИБС",
    }
    return Record("ru.jsonl", "ru.jsonl:1", "P1", "ru", fields, group=group)


def test_surrogates_are_consistent_per_patient_and_dates_keep_their_intervals() -> None:
    config = DeidConfig(replace_with="surrogate", shift_dates=True, ner=False)
    history = "Иванов П.С. болен с 01.03.2024. Позже Иванов Пётр Сергеевич обратился 2024-03-05, тел. +7 916 482 17 39."
    one, counts = deidentify(_record("g1", history), config=config, salt="s")
    again, _ = deidentify(_record("g1", history), config=config, salt="s")
    other, _ = deidentify(_record("g2", history), config=config, salt="s")
    text = one.fields["history"]
    assert not re.search(r"Иванов(?!ич)|Пётр", text) and "482 17 39" not in text and "[" not in text
    assert one.fields == again.fields and other.fields["history"] != text
    dates = re.findall(r"\d{2}\.\d{2}\.\d{4}", one.fields["admission_date"] + " " + one.fields["discharge_date"])
    from datetime import datetime

    start, end = (datetime.strptime(d, "%d.%m.%Y") for d in dates)
    assert (end - start).days == 8 and one.fields["stay_days"] == 8
    assert dates[0] != "12.03.2024"
    assert set(counts) >= {"name", "date", "phone"} and all(isinstance(v, int) for v in counts.values())
    assert "Иванов" not in json.dumps(dict(counts), ensure_ascii=False)  # counts only, never values


@pytest.mark.parametrize("lang", ["ru", "kk", "zh"])
def test_labelled_test_set_meets_the_targets(lang: str) -> None:
    rows = load_testset(lang)
    assert sum(len(r["spans"]) for r in rows) >= 200
    result = score(rows, detectors_for(lang, ner=True))
    for kind, figures in result.items():
        if kind in ("all", "name", "date", "address"):
            continue
        assert figures["recall"] >= 0.99, (kind, figures)
    assert result["name"]["recall"] >= 0.95
    assert result["all"]["precision"] >= 0.90


def test_inline_labelled_notes_parse_into_spans_and_bad_labels_are_refused() -> None:
    source = "# comment\nВрач ⟦name|Петров А.И.⟧, тел. ⟦phone|8 701 111 22 33⟧.\n---\n患者⟦name|王芳⟧。\n"
    rows = parse_labelled_notes(source)
    assert [len(r["spans"]) for r in rows] == [2, 1]
    first = rows[0]
    assert first["text"] == "Врач Петров А.И., тел. 8 701 111 22 33."
    assert [first["text"][s:e] for s, e, _ in first["spans"]] == ["Петров А.И.", "8 701 111 22 33"]
    with pytest.raises(ValueError, match="note 0"):
        parse_labelled_notes("Врач ⟦name|Петров")
    for lang in ("ru", "kk", "zh"):
        heldout = load_heldout(lang)
        assert len(heldout) >= 10 and all(r["spans"] for r in heldout)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("История болезни № 4471/24. Жалоб нет.", "4471/24"),
        ("Медкарта № А-3321/23, направлена к эндокринологу.", "А-3321/23"),
        ("номер медицинской карты 55120", "55120"),
    ],
)
def test_record_numbers_are_found_after_capitalised_cues(text: str, value: str) -> None:
    redacted, counts = redact_text(text, "ru", pattern_detectors())
    assert value not in redacted and counts["mrn"] == 1


def test_a_chinese_name_after_a_relative_with_the_possessive_is_found() -> None:
    redacted, counts = redact_text("其女儿陈晓梅陪同就诊。", "zh", pattern_detectors())
    assert "陈晓梅" not in redacted and counts["name"] == 1


def test_a_record_scanned_as_one_text_keeps_its_fields_apart() -> None:
    """Fields are scanned together; a span never runs from one field into the next, and a NUL in the text
    (where the fields could not be told apart) falls back to one scan per field with the same result."""
    fields = {"complaints": "Жалобы со слов врача Петровой", "history": ["Анна Сергеевна, тел. 8 701 111 22 33", "ИБС"]}
    record = Record("ru.jsonl", "ru.jsonl:1", "P1", "ru", fields)
    joined, counts = deidentify(record)
    with_nul, _ = deidentify(replace(record, fields={**fields, "diagnosis": "ИБС\x00"}))
    assert joined.fields["history"][1] == "ИБС" and len(joined.fields["history"]) == 2
    assert "Петровой" not in joined.fields["complaints"] and "Анна" not in joined.fields["history"][0]
    assert joined.fields["complaints"].endswith("]") and joined.fields["history"][0].startswith("[")
    assert {k: joined.fields[k] for k in fields} == {k: with_nul.fields[k] for k in fields}
    assert counts["name"] == 2 and counts["phone"] == 1


def test_the_name_model_reads_only_capitalised_words_the_patterns_left() -> None:
    """natasha reads a few words around each capitalised word inside a sentence that no first-pass span
    covers; sentence-initial words and words already found are not sent to it."""
    text = (
        "Лечащий врач Петров И.И. осмотрел. Артериальная гипертензия в течение 5 лет, терапию принимал"
        " нерегулярно, из препаратов называет Конкор. Обсуждено с Эрастом Фандориным."
    )
    found = [Span(text.index("Петров"), text.index("И.И.") + 4, "name")]
    passages = list(passages_to_read(text, found))
    assert passages == [
        (text.index("нерегулярно"), "нерегулярно, из препаратов называет Конкор.", (text.index("Конкор"),)),
        (text.index("Обсуждено"), "Обсуждено с Эрастом Фандориным.", (text.index("Эрастом"), text.index("Фандор"))),
    ]
    assert all(text[offset : offset + len(passage)] == passage for offset, passage, _ in passages)
    assert len(list(passages_to_read(text))) == 3  # without the first pass, Петров's sentence is read too
    assert list(passages_to_read("Назначено: принимать Конкор 5 мг и Аторис 20 мг вечером.")) == []


def test_the_name_model_answers_a_passage_alone_as_in_a_batch_and_is_asked_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Remembering the model's answer per passage is sound only if a passage is tagged the same whatever else
    shares its batch; a passage read before is then answered from memory."""
    from data_prep.deid import _ner as ner

    texts = [row["text"] for row in load_testset("ru")[:60]]
    passages = sorted({passage for text in texts for _, passage, _ in passages_to_read(text)})
    assert len(passages) >= 40

    def persons(markup: object) -> list[tuple[int, int]]:
        return [(s.start, s.stop) for s in markup.spans if s.type == "PER"]  # type: ignore[attr-defined]

    tagger = ner._tagger()
    together = [persons(m) for m in tagger.map(passages)]
    assert together == [persons(next(iter(tagger.map([p])))) for p in passages]
    assert sum(map(bool, together)) >= len(passages) // 2

    monkeypatch.setattr(ner, "_MEMO", {})
    asked: list[list[str]] = []

    class Counting:
        def map(self, batch: list[str]) -> object:
            asked.append(list(batch))
            return tagger.map(batch)

    monkeypatch.setattr(ner, "_tagger", lambda: Counting())
    first = ner._person_spans([*passages[:10], passages[0]])
    again = ner._person_spans(passages[:20])
    assert asked == [passages[:10], passages[10:20]]  # each passage once, repeats and remembered ones not again
    assert [list(spans) for spans in [*first[:10], *again[10:]]] == together[:20] and first[10] == first[0]


def test_records_deidentified_together_match_one_by_one() -> None:
    """`deidentify_many` batches the name model over many records; the result is the same as one at a time."""
    notes = [
        ("ru", "Обсуждено с Эрастом Фандориным, тел. 8 701 111 22 33. Принимает Конкор."),
        ("kk", "Науқас Әбенов Нұрлан Серікұлы, ЖСН 900101300123. Қызы Айгерім келді."),
        ("zh", "患者王建国，男，65岁，电话13812345678。"),
        ("ru", "Жалоб нет."),
    ]
    records = [Record(f"{lang}.jsonl", f"{lang}.jsonl:{n}", f"P{n}", lang, {"history": text})
               for n, (lang, text) in enumerate(notes)]
    config = DeidConfig(ner=True)
    together = deidentify_many([(record, config, "salt") for record in records])
    alone = [deidentify(record, config=config, salt="salt") for record in records]
    assert together == alone
    assert "Фандориным" not in together[0][0].fields["history"] and together[0][1]["name"] >= 1
    assert together[3][0].fields["history"] == "Жалоб нет." and not together[3][1]


def test_pattern_layer_scans_a_repeated_field_once_and_finds_what_a_whole_scan_finds() -> None:
    from data_prep.deid._scan import PatternLayer, find_spans
    from data_prep.deid._spans import FIELD_SEPARATOR

    scanned: list[str] = []

    def counting(text: str) -> list[Span]:
        scanned.append(text)
        return []

    layer = PatternLayer([*pattern_detectors(), counting])
    fields = [
        "Гемоглобин",
        "Пациент Иванов Пётр Сергеевич, тел. +7 913 123-45-67, поступил 12.03.2024.",
        "г/л",
        "患者王建国，男，65岁，电话13812345678。",
    ]
    text = FIELD_SEPARATOR.join(fields)
    whole = find_spans([(text, pattern_detectors())])[0]
    assert sorted(layer(text), key=lambda s: (s.start, s.end)) == sorted(whole, key=lambda s: (s.start, s.end))
    assert len(whole) >= 4 and scanned == [text]
    again = FIELD_SEPARATOR.join(["Гемоглобин", "Жалоб нет, врач Петрова А.В.", "г/л"])
    spans = layer(again)
    assert scanned[-1] == "Жалоб нет, врач Петрова А.В."  # the remembered short fields were not scanned again
    assert {again[s.start : s.end] for s in spans} == {"Петрова А.В."}  # at its place in the joined text
