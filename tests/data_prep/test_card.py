"""The data card: counts that add up, invariants that catch losses, no patient text."""

from __future__ import annotations

from data_prep.card import RecordOutcome, build_card, length_stats
from data_prep.card_markdown import render_markdown
from data_prep.config import DataConfig
from data_prep.records import ChatExample, Reject


def ex(n: int, lang: str = "ru", task: str = "structured_summary", group: str | None = None) -> ChatExample:
    meta = {
        "id": f"{lang}-{n}",
        "lang": lang,
        "task": task,
        "source": f"{lang}.jsonl:{n}",
        "group": group or f"g{n}",
    }
    return ChatExample(messages=[{"role": "user", "content": "x" * (10 * n)}], meta=meta)


def card_for(**overrides: object) -> dict:
    made = [ex(1), ex(2, task="lab_explanation"), ex(3, lang="kk"), ex(4, lang="kk"), ex(5, lang="zh")]
    rejected = [(made[3], Reject("kk.jsonl", "kk.jsonl:4", "duplicate", stage="quality"))]
    arguments = {
        "config": DataConfig(patient_salt="secret-salt"),
        "outcomes": [
            RecordOutcome("ru.jsonl", "ru"),
            RecordOutcome("ru.jsonl", "ru", "invalid_json"),
            RecordOutcome("kk.jsonl", "kk"),
            RecordOutcome("zh.jsonl", "zh"),
        ],
        "records_read": 4,
        "made": made,
        "rejected": rejected,
        "splits": {"train": [made[0], made[1], made[2]], "validation": [made[4]], "test": []},
        "written": {"train": 3, "validation": 1, "test": 0},
        "redactions": {"name": 3, "phone": 1},
    }
    arguments.update(overrides)
    return build_card(**arguments)  # type: ignore[arg-type]


def test_counts_per_source_language_task_and_split() -> None:
    card = card_for()
    assert (card["records"]["in"], card["records"]["converted"], card["records"]["rejected"]) == (4, 3, 1)
    assert card["records"]["by_source"]["ru.jsonl"] == {"in": 2, "converted": 1, "rejected": 1, "skipped": 0}
    assert card["records"]["by_language"]["kk"] == {"in": 1, "converted": 1, "rejected": 0, "skipped": 0}
    examples = card["examples"]
    assert (examples["made"], examples["written"], examples["rejected"]) == (5, 4, 1)
    assert examples["by_language"]["kk"] == {
        "made": 2,
        "written": 1,
        "rejected": 1,
        "train": 1,
        "validation": 0,
        "test": 0,
        "eval_only": 0,
    }
    assert examples["by_task"]["lab_explanation"]["train"] == 1
    assert examples["by_source"]["zh.jsonl"]["validation"] == 1
    assert card["splits"]["train"] == {
        "examples": 3,
        "patients": 3,
        "by_language": {"kk": 1, "ru": 2},
        "by_task": {"lab_explanation": 1, "structured_summary": 2},
    }
    assert card["rejection_reasons"] == {"records": {"invalid_json": 1}, "examples": {"duplicate": 1}}
    assert card["redactions"] == {"enabled": True, "by_type": {"name": 3, "phone": 1}, "total": 4}


def test_invariants_hold_and_catch_losses() -> None:
    assert all(card_for()["invariants"].values())
    lost_record = card_for(records_read=5)["invariants"]
    assert not lost_record["records_in_equals_converted_plus_rejected_plus_skipped"]
    lost_example = card_for(written={"train": 2, "validation": 1, "test": 0})["invariants"]
    assert not lost_example["examples_made_equals_written_plus_rejected"]
    leak = card_for(splits={"train": [ex(1, group="p")], "validation": [ex(5, lang="zh", group="p")], "test": []})
    assert not leak["invariants"]["no_patient_in_two_splits"]


def test_lengths_are_in_chars_without_and_tokens_with_a_counter() -> None:
    assert card_for()["lengths"]["unit"] == "chars"
    assert card_for()["lengths"]["train"]["max"] == 30
    card = card_for(length_of=lambda e: len(e.messages[0]["content"]) // 10)
    assert card["lengths"]["unit"] == "tokens"
    assert card["lengths"]["all"] == {"count": 4, "min": 1, "mean": 2.8, "p50": 2, "p95": 5, "max": 5}


def test_length_stats() -> None:
    assert length_stats([]) == {"count": 0, "min": 0, "mean": 0.0, "p50": 0, "p95": 0, "max": 0}
    stats = length_stats(list(range(1, 101)))
    assert (stats["min"], stats["p50"], stats["p95"], stats["max"], stats["mean"]) == (1, 50, 95, 100, 50.5)


def test_card_keeps_the_salt_out() -> None:
    card = card_for()
    assert "secret-salt" not in str(card) and "secret-salt" not in render_markdown(card)
    assert card["config"]["split"]["seed"] == 42


def test_markdown_has_every_section() -> None:
    text = render_markdown(card_for())
    for heading in (
        "# Data card",
        "## Records",
        "## Examples",
        "## Splits",
        "## Rejection reasons",
        "## Redactions",
        "## Lengths (chars per example)",
        "## Checks",
    ):
        assert heading in text
    assert "| source `ru.jsonl` | 2 | 1 | 1 |" in text
    assert "| record | invalid_json | 1 |" in text
    assert "✅ no patient in two splits" in text
    disabled = render_markdown(card_for(config=DataConfig(deid={"enabled": False})))
    assert "De-identification was **disabled**" in disabled


def test_records_no_task_applies_to_and_reader_skips_are_counted_as_skipped_not_rejected() -> None:
    outcomes = [
        RecordOutcome("ru.jsonl", "ru"),
        RecordOutcome("ru.jsonl", "ru", "invalid_json"),
        RecordOutcome("kk.jsonl", "kk"),
        RecordOutcome("zh.jsonl", "zh"),
        RecordOutcome("notes", "ru", "no_examples"),
        RecordOutcome("notes", "zh", "no_examples"),
    ]
    sources = [
        {"file": "bundle.json", "format": "fhir", "lang": "auto", "tasks": [], "eval_only": False,
         "skipped": {"administrative_resource (Claim)": 2, "administrative_resource (Organization)": 1}},
    ]  # fmt: skip
    card = card_for(outcomes=outcomes, records_read=6, sources=sources)
    records = card["records"]
    assert (records["in"], records["converted"], records["rejected"], records["skipped"]) == (9, 3, 1, 5)
    assert records["by_source"]["notes"] == {"in": 2, "converted": 0, "rejected": 0, "skipped": 2}
    assert records["by_source"]["bundle.json"] == {"in": 3, "converted": 0, "rejected": 0, "skipped": 3}
    assert records["by_language"]["unknown"]["skipped"] == 3
    assert card["skip_reasons"] == {
        "administrative_resource (Claim)": 2,
        "administrative_resource (Organization)": 1,
        "no task applies": 2,
    }
    assert card["rejection_reasons"]["records"] == {"invalid_json": 1}
    assert all(card["invariants"].values())
    assert not card_for(outcomes=outcomes, records_read=7, sources=sources)["invariants"][
        "records_in_equals_converted_plus_rejected_plus_skipped"
    ]
    markdown = render_markdown(card)
    assert "## Skipped on purpose" in markdown and "| no task applies | 2 |" in markdown
    assert "| **total** | 9 | 3 | 1 | 5 |" in markdown
