"""prepare() over mixed sources: every record accounted for, evaluation-only kept out of train, quality checks,
bad input as clear errors or rejects, and the `medtune prepare` ad-hoc form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep.config import DataConfig, QualityConfig
from data_prep.prepare import prepare
from data_prep.split import assign_groups
from finetune.cli._commands import main


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def exam_rows(n: int, topic: str = "дозировке") -> list[dict]:
    rows = [
        {
            "id": f"q{i}",
            "question": f"Вопрос номер {i} о {topic} препарата {i}?",
            "options": [f"вариант {i}-{j}" for j in range(4)],
            "answer": "ABCD"[i % 4],
        }
        for i in range(n)
    ]
    rows += [
        {"id": f"open{i}", "question": f"Вопрос без ключа {i} о {topic} {i}?", "options": ["да", "нет", "не знаю"]}
        for i in range(3)
    ]
    return rows


NOTES = [
    "Жалобы: боли в груди при нагрузке {i} дней.\nДиагноз: Стенокардия напряжения ФК {k} (I20.8).\n"
    "Лечение: бисопролол {i} мг.\nРекомендации: нагрузочный тест через {i} недель.",
    "Шағымдары: жөтел {i} күн, дене қызуы 38.\nДиагнозы: J18.9 Пневмония, {k}-ші дәрежесі.\nЕмі: цефтриаксон {i} г.\n"
    "Ұсыныстар: {i} күн төсек режимі.",
    "主诉：头痛{i}天。\n诊断：高血压病{k}级（I10）\n治疗：氨氯地平{i} mg。\n医嘱：{i}周后复查血压。",
]


def notes_file(path: Path, n: int = 12) -> Path:
    notes = [NOTES[i % 3].format(i=i + 2, k=i % 3 + 1) for i in range(n)]
    path.write_text("\n=====\n".join(notes) + "\n", encoding="utf-8")
    return path


def test_mixed_sources_nothing_lost_and_eval_only_never_in_train(tmp_path: Path) -> None:
    sources = [
        {
            "path": str(notes_file(tmp_path / "notes.txt")),
            "format": "auto",
            "lang": "auto",
            "tasks": ["structured_summary", "icd10_coding"],
        },
        {"path": str(write_jsonl(tmp_path / "exam.jsonl", exam_rows(12))), "format": "exam", "lang": "ru"},
        {
            "path": str(write_jsonl(tmp_path / "bench.jsonl", exam_rows(6, "побочных эффектах"))),
            "format": "exam",
            "lang": "ru",
            "eval_only": True,
        },
    ]
    config = DataConfig.model_validate({"sources": sources, "deid": {"ner": False}, "workers": 2})
    out = tmp_path / "out"
    card = prepare(config, out)
    assert all(card["invariants"].values()), card["invariants"]
    assert card["records"]["in"] == 12 + 15 + 9
    assert card["records"]["in"] == card["records"]["converted"] + card["records"]["rejected"]
    rejects = jsonl(out / "rejects.jsonl")
    assert len([r for r in rejects if r["stage"] != "quality"]) == card["records"]["rejected"]
    written = {split: jsonl(out / f"{split}.jsonl") for split in ("train", "validation", "test", "eval_only")}
    assert sum(map(len, written.values())) == card["examples"]["written"]
    eval_only = written["eval_only"]
    assert len(eval_only) == 6 and all(m["role"] != "assistant" for e in eval_only for m in e["messages"])
    assert not any(e["meta"].get("eval_only") for e in written["train"] + written["validation"])
    assert {e["meta"]["source"].split(":")[0] for e in written["test"]} >= {"bench.jsonl"}
    assert card["sources"][0]["format"] == "notes" and card["eval_only"]["examples"] == 6
    assert set(card["records"]["by_language"]) >= {"ru", "kk", "zh"}
    md = (out / "data_card.md").read_text(encoding="utf-8")
    assert "## Evaluation only" in md and "Histogram" in md


def test_same_output_with_one_or_two_workers(tmp_path: Path) -> None:
    """Workers write their examples to spool files in the output directory; the split files and the card (the
    tokenizer's fertility too, read back from those files while they grow) do not depend on how many, and no
    spool file is left."""
    from data_prep.prepare import OUTPUT_FILES

    path = notes_file(tmp_path / "notes.txt", 40)
    outputs, cards = [], []
    for workers in (1, 2):
        config = DataConfig.model_validate(
            {
                "sources": [{"path": str(path), "format": "notes", "lang": "auto"}],
                "deid": {"ner": False},
                "workers": workers,
            }
        )
        out = tmp_path / f"w{workers}"
        cards.append(prepare(config, out, lambda messages: sum(len(m["content"].split()) for m in messages)))
        outputs.append([(out / f"{s}.jsonl").read_text() for s in ("train", "validation", "test")])
        assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert outputs[0] == outputs[1] and sum(len(text.splitlines()) for text in outputs[0]) >= 40
    assert cards[0]["fertility"] == cards[1]["fertility"] and cards[0]["fertility"]


def test_language_check_flags_or_drops_mislabelled_records(tmp_path: Path) -> None:
    rows = [
        {
            "patient_id": f"p{i}",
            "lang": "kk",
            "complaints": "Головная боль и слабость в течение недели",
            "diagnosis": f"Гипертоническая болезнь {i} стадии",
        }
        for i in range(3)
    ]
    path = write_jsonl(tmp_path / "kk.jsonl", rows)
    base = {"sources": [{"path": str(path), "lang": "kk"}], "deid": {"ner": False}}
    card = prepare(DataConfig.model_validate({**base, "quality": {"lang_check": "drop"}}), tmp_path / "drop")
    assert card["rejection_reasons"]["records"] == {"lang_mismatch_detected": 3}
    prepare(DataConfig.model_validate({**base, "quality": {"lang_check": "flag"}}), tmp_path / "flag")
    flagged = [e for s in ("train", "validation", "test") for e in jsonl(tmp_path / "flag" / f"{s}.jsonl")]
    assert flagged and all(e["meta"]["lang_detected"] == "ru" for e in flagged)


def test_near_duplicates_are_removed(tmp_path: Path) -> None:
    history = (
        "Артериальная гипертензия в течение 15 лет, максимальные цифры АД до 210/120 мм рт. ст., адаптирован "
        "к 140/90. Гипотензивную терапию принимал нерегулярно. Ухудшение на фоне стресса, доставлен в стационар."
    )
    rows = [
        {
            "patient_id": f"p{i}",
            "lang": "ru",
            "complaints": "Головные боли в затылочной области",
            "history": history.replace("15 лет", f"{15 + (i % 2)} лет"),
            "diagnosis": "Гипертоническая болезнь",
        }
        for i in range(4)
    ]
    path = write_jsonl(tmp_path / "ru.jsonl", rows)
    config = DataConfig.model_validate(
        {"sources": [{"path": str(path), "lang": "ru", "tasks": ["structured_summary"]}], "deid": {"ner": False}}
    )
    card = prepare(config, tmp_path / "out")
    assert card["rejection_reasons"]["examples"] == {"duplicate": 2, "near_duplicate": 1}
    loose = config.model_copy(update={"quality": QualityConfig(near_dup_threshold=None)})
    assert prepare(loose, tmp_path / "loose")["rejection_reasons"]["examples"] == {"duplicate": 2}


def test_split_is_stratified_by_task_within_a_language() -> None:
    examples = [(f"a{i}", "ru", "qa", False) for i in range(10)] + [
        (f"b{i}", "ru", "extraction", False) for i in range(10)
    ]
    assignment = assign_groups(examples, 0.2, 0.2, seed=1)
    for prefix in "ab":
        splits = {assignment[f"{prefix}{i}"] for i in range(10)}
        assert splits == {"train", "validation", "test"}
    assert assign_groups([*examples, ("e", "ru", "qa", True)], 0.2, 0.2, 1)["e"] == "test"


# --- bad input ------------------------------------------------------------------------------------


def _run(tmp_path: Path, name: str, content: bytes, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    path = tmp_path / name
    path.write_bytes(content)
    code = main(["prepare", "--source", str(path), "--out", str(tmp_path / f"out-{name}"), *args])
    return code, capsys.readouterr().err


def test_bad_files_give_clear_errors_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = _run(tmp_path, "empty.csv", b"", capsys)
    assert code == 2 and "empty.csv: the file is empty" in err
    code, err = _run(tmp_path, "garbage.csv", bytes(range(256)) * 40, capsys, "--format", "clinic_records")
    assert code == 2 and "garbage.csv: binary data" in err
    code, err = _run(
        tmp_path,
        "cp.csv",
        "patient_id;Жалобы;Диагноз\n1;Кашель;Бронхит\n".encode("cp1251"),
        capsys,
        "--encoding",
        "utf-8",
    )
    assert code == 2 and "declared encoding utf-8 does not fit" in err
    code, err = _run(
        tmp_path, "u8.csv", "patient_id;Жалобы;Диагноз\n1;Кашель;Бронхит\n".encode(), capsys, "--encoding", "cp1251"
    )
    assert code == 2 and "the file is valid UTF-8" in err
    code, err = _run(tmp_path, "what.json", b'{"a": 1, "b": 2}\n', capsys)
    assert code == 2 and "cannot tell what the" in err
    code, err = _run(tmp_path, "wrongtask.csv", b"question,answer\nQ?,yes\n", capsys, "--task", "chat")
    assert code == 2 and "do not apply" in err
    assert "Traceback" not in err


def test_bad_records_become_rejects_with_their_location(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = {"patient_id": "p1", "lang": "ru", "complaints": "Кашель", "diagnosis": "Бронхит"}
    huge = {**good, "patient_id": "p2", "history": "а" * 10_000_000}
    body = (
        json.dumps(good, ensure_ascii=False)
        + "\n"
        + json.dumps(huge, ensure_ascii=False)
        + "\n"
        + '{"patient_id": "p3", "lang": "ru", "diag'
    ).encode()
    code, _ = _run(tmp_path, "records.jsonl", body, capsys, "--format", "clinic_records", "--lang", "ru")
    assert code == 0
    rejects = {(r["location"], r["reason"]) for r in jsonl(tmp_path / "out-records.jsonl" / "rejects.jsonl")}
    assert {("records.jsonl:2", "field_too_long"), ("records.jsonl:3", "invalid_json")} <= rejects
    truncated = json.dumps([good, good | {"patient_id": "p9"}], ensure_ascii=False)[:-40].encode()
    code, _ = _run(tmp_path, "cut.json", truncated, capsys, "--format", "clinic_records", "--lang", "ru")
    assert code == 0
    assert ("cut.json:[1]", "truncated_json") in {
        (r["location"], r["reason"]) for r in jsonl(tmp_path / "out-cut.json" / "rejects.jsonl")
    }
    hl7 = (
        "MSH|^~\\&|A|B|||2024||ORU^R01|1|P|2.5\rPID|1||P1||Иванов^Иван\rOBX 1 NM broken\r"
        "OBX|1|NM|x^Hb||98|g/L|120-160\r"
    )
    code, _ = _run(tmp_path, "broken.hl7", hl7.encode(), capsys, "--lang", "ru")
    [reject] = jsonl(tmp_path / "out-broken.hl7" / "rejects.jsonl")
    assert (reject["location"], reject["reason"], reject["field"]) == (
        "broken.hl7:message 1 (line 1)",
        "broken_segment",
        "segment 3 (line 3)",
    )
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": {"resourceType": "Observation", "code": {"text": "Hb"}, "valueQuantity": {"value": 9}}},
            {"resource": {"resourceType": "Flag", "subject": {"reference": "Patient/x"}}},
            {"request": {"method": "DELETE"}},
        ],
    }
    code, _ = _run(tmp_path, "b.json", json.dumps(bundle).encode(), capsys, "--lang", "en")
    reasons = [r["reason"] for r in jsonl(tmp_path / "out-b.json" / "rejects.jsonl")]
    assert reasons == ["missing_reference", "no_resource"]  # a Flag is no record: skipped, counted in the card
    card = json.loads((tmp_path / "out-b.json" / "data_card.json").read_text(encoding="utf-8"))
    assert card["skip_reasons"] == {"unread_resource (Flag)": 1}


def test_missing_mapped_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("pid,dx\n1,ИБС\n", encoding="utf-8")
    config = DataConfig.model_validate(
        {"sources": [{"path": str(path), "lang": "ru", "columns": {"patient_id": "pid", "complaints": "Жалобы"}}]}
    )
    with pytest.raises(ValueError, match=r"'Жалобы' \(for complaints\) not in the file; its columns are: pid, dx"):
        prepare(config, tmp_path / "out")


# --- CLI ------------------------------------------------------------------------------------------


def test_adhoc_prepare_and_preview(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = notes_file(tmp_path / "notes.txt", 9)
    assert main(["prepare", "--source", str(path), "--preview", "2"]) == 0
    shown = capsys.readouterr().out
    assert shown.count('"messages"') == 2 and "Жалобы" in shown
    assert not (tmp_path / "prepared").exists()
    out = tmp_path / "data"
    assert (
        main(["prepare", "--source", str(path), "--format", "notes", "--task", "icd10_coding", "--out", str(out)]) == 0
    )
    assert "prepared" in capsys.readouterr().out
    card = json.loads((out / "data_card.json").read_text(encoding="utf-8"))
    assert set(card["examples"]["by_task"]) == {"icd10_coding"} and card["examples"]["written"] == 9


def test_prose_notes_are_read_deidentified_and_counted_as_skipped_by_clinical_tasks(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text(
        "Петров Иван Сергеевич, 54 года, поступил с давящими болями за грудиной после нагрузки. "
        "Выписан под наблюдение кардиолога, телефон +7 912 345-67-89, контроль 12.03.2024.\n",
        encoding="utf-8",
    )
    (folder / "b.txt").write_text(
        "患者因反复头晕三年，加重一周入院，予降压治疗后好转出院，联系电话13812345678。\n", encoding="utf-8"
    )
    source = {"path": str(folder), "format": "auto", "lang": "auto"}
    card = prepare(DataConfig(sources=[source]), tmp_path / "out")
    records = card["records"]
    assert (records["in"], records["converted"], records["rejected"], records["skipped"]) == (2, 0, 0, 2)
    assert set(records["by_language"]) == {"ru", "zh"} and card["skip_reasons"] == {"no task applies": 2}
    assert all(card["invariants"].values())
    rows = jsonl(tmp_path / "out" / "rejects.jsonl")
    assert [r["reason"] for r in rows] == ["no_examples", "no_examples"] and "Петров" not in json.dumps(rows)
