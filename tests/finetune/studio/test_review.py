"""The Data page's review: records read through data_prep with the spans their redaction replaces, examples with
placeholders, rejects with reasons, and marks saved as a labelled set that bench_deid.py scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from data_prep.deid import deidentify, score
from data_prep.deid import detectors_for as deid_detectors
from finetune.recipe import load_recipe
from finetune.studio import Studio, create_app
from finetune.studio._marks import gold_spans, read_set
from finetune.studio._review import KINDS, SEPARATOR_SHOWN, read_page, recipe_source

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("review") / "run"
    return load_recipe(None, [f"output_dir={root}", f"model.base={root / 'base-model'}", "data.deid.ner=false"])


@pytest.fixture(scope="module")
def first_page(recipe) -> dict:
    return read_page(recipe_source(recipe.data, 0), recipe.data, 0)


def test_a_page_shows_records_with_their_redactions(first_page: dict) -> None:
    assert first_page["format"] == "clinic_records" and len(first_page["records"]) == 5 and first_page["more"]
    kinds = set()
    for record in first_page["records"]:
        text = record["text"]
        assert record["lang"] == "ru" and record["id"].endswith(f"#{record['index']}")
        assert "\x00" not in text and record["spans"], record["location"]
        for start, end, kind in record["spans"]:
            assert kind in KINDS and text[start:end].strip() == text[start:end] != ""
            assert "\n\n\n" not in text[start:end]  # never across two fields
            kinds.add(kind)
        assert record["examples"] and all(e["messages"][-1]["role"] == "assistant" for e in record["examples"])
    assert {"name", "date", "phone"} <= kinds


def test_the_spans_are_what_the_redaction_replaces(recipe, first_page: dict) -> None:
    """Each span shown is gone from the de-identified record, and what is left of the text is kept."""
    from data_prep.readers import read_source

    chosen = recipe_source(recipe.data, 0)
    _, stream = read_source(chosen.path, chosen.config)
    record = next(stream)
    shown = first_page["records"][0]
    cleaned, counts = deidentify(record, config=recipe.data.deid)
    redacted = json.dumps(cleaned.fields, ensure_ascii=False)
    for start, end, _ in shown["spans"]:
        assert shown["text"][start:end] not in redacted
    assert sum(counts.values()) == len(shown["spans"])
    plain = [p for p in shown["text"].split(SEPARATOR_SHOWN) if len(p) > 40]
    assert plain


def test_the_examples_show_placeholders_by_kind(tmp_path: Path) -> None:
    studio = Studio.open(None, [f"output_dir={tmp_path}", "data.deid.ner=false"], None, None)
    page = TestClient(create_app(studio), base_url="http://127.0.0.1").get("/data?source=recipe:2")
    assert page.status_code == 200
    shown = {kind for kind, label in (("name", "[姓名]"), ("phone", "[电话]"), ("date", "[日期]"))
             if f'<mark class="pii k-{kind}">{label}</mark>' in page.text}
    assert len(shown) >= 2, shown


def test_rejects_are_listed_with_their_reasons(tmp_path: Path) -> None:
    source = tmp_path / "run" / "studio" / "uploads" / "mixed.jsonl"
    source.parent.mkdir(parents=True)
    good = (REPO / "data_prep" / "samples" / "ru.jsonl").read_text(encoding="utf-8").splitlines()[0]
    source.write_text(good + "\n{not json\n" + json.dumps({"patient_id": "p9"}) + "\n", encoding="utf-8")
    studio = Studio.open(None, [f"output_dir={tmp_path / 'run'}", "data.deid.ner=false"], None, None)
    client = TestClient(create_app(studio), base_url="http://127.0.0.1")
    page = client.get("/data", params={"source": f"file:{source}", "fmt": "clinic_records", "lang": "ru"})
    assert page.status_code == 200 and 'class="record"' in page.text
    assert "<h2>Rejects</h2>" in page.text
    assert "<td>mixed.jsonl:2</td><td>read</td><td>invalid_json</td>" in page.text
    assert "<td>mixed.jsonl:3</td><td>read</td><td>missing_field</td>" in page.text


def test_marks_make_the_gold_spans(first_page: dict) -> None:
    record = first_page["records"][0]
    found = record["spans"]
    wrong = [found[0]]
    missed = [[0, 3, "name"]] if [0, 3, "name"] not in found else [[1, 4, "name"]]
    gold, _, _ = gold_spans(record, missed, wrong, KINDS)
    assert found[0] not in gold and missed[0] in gold and len(gold) == len(found)
    with pytest.raises(ValueError, match="not inside the note"):
        gold_spans(record, [[0, len(record["text"]) + 1, "name"]], [], KINDS)
    with pytest.raises(ValueError, match="unknown kind"):
        gold_spans(record, [[0, 2, "password"]], [], KINDS)
    with pytest.raises(ValueError, match="not a redaction"):
        gold_spans(record, [], [[0, 1, "date"]], KINDS)


def test_a_saved_review_is_a_labelled_set_that_bench_deid_scores(tmp_path: Path) -> None:
    studio = Studio.open(None, [f"output_dir={tmp_path}", "data.deid.ner=false"], None, None)
    client = TestClient(create_app(studio), base_url="http://127.0.0.1")
    page = read_page(recipe_source(studio.recipe.data, 0), studio.recipe.data, 0)
    records = page["records"][:2]
    # reviewer: the first record's first redaction is wrong; a word the detectors left in the second is a name
    wrong = records[0]["spans"][0]
    second = records[1]
    covered = {i for s, e, _ in second["spans"] for i in range(s, e)}
    start = next(i for i in range(len(second["text"]) - 4) if not covered & set(range(i, i + 4))
                 and second["text"][i:i + 4].isalpha() and (i == 0 or not second["text"][i - 1].isalpha()))
    end = start
    while end < len(second["text"]) and second["text"][end].isalpha():
        end += 1
    missed = [start, end, "name"]
    for record, body in ((records[0], {"missed": [], "wrong": [wrong]}), (second, {"missed": [missed], "wrong": []})):
        response = client.post("/api/review", json={"source": "recipe:0", "index": record["index"], **body})
        assert response.status_code == 200, response.text
    again = client.post("/api/review", json={"source": "recipe:0", "index": second["index"], "missed": [missed],
                                             "wrong": []})
    assert again.status_code == 200
    gold_file = tmp_path / "studio" / "reviewed" / "ru.jsonl"
    rows = read_set(gold_file)
    assert [r["id"] for r in rows] == [records[0]["id"], second["id"]]  # a note reviewed twice is kept once
    assert set(rows[0]) == {"id", "text", "spans"} and rows[0]["text"] == records[0]["text"]
    assert wrong not in rows[0]["spans"] and missed in rows[1]["spans"]
    marks = [json.loads(line) for line in (gold_file.parent / "marks.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(marks) == 3 and marks[0]["wrong"] == [wrong] and "text" not in marks[0]
    # the same scores bench_deid.py prints, from the reviewed set
    expected = score(rows, deid_detectors("ru", False))
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_deid.py"), "--gold", str(gold_file)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(rows)} notes, {expected['all']['gold']} labelled spans" in result.stdout
    recall = f"{100 * expected['all']['recall']:5.1f}%"
    assert any(line.startswith("all") and recall in line for line in result.stdout.splitlines()), result.stdout
    assert expected["all"]["recall"] < 1.0  # the missed name is counted as missed


def test_with_de_identification_off_nothing_is_shown_as_redacted(tmp_path: Path) -> None:
    studio = Studio.open(None, [f"output_dir={tmp_path}", "data.deid.enabled=false"], None, None)
    page = TestClient(create_app(studio), base_url="http://127.0.0.1").get("/data")
    assert page.status_code == 200 and 'class="record"' in page.text
    assert 'id="deid-off"' in page.text and "data-kind=" not in page.text  # no redaction marked in any note
