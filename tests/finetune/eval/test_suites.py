"""Suites in public benchmark formats, the bundled samples and the glossary: loading and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.eval._suite_files import SuiteError, bundled_glossary_path, load_glossary, read_objects
from finetune.eval._suites import load_suite, load_test_split
from finetune.recipe._eval import SUITE_FORMATS, EvalConfig, SuiteConfig


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_every_bundled_suite_loads_in_every_language() -> None:
    for name in SUITE_FORMATS:
        items = load_suite(SuiteConfig(format=name), ["ru", "kk", "zh"])
        assert {i.lang for i in items} == {"ru", "kk", "zh"}, name
        assert all(i.meta["sample"] and i.prompt and i.prompt[0]["role"] == "user" for i in items)
        assert len({i.id for i in items}) == len(items)
    only_kk = load_suite(SuiteConfig(format="mcq", lang="kk"), ["ru", "kk", "zh"])
    assert {i.lang for i in only_kk} == {"kk"}
    assert len(load_suite(SuiteConfig(format="safety", max_items=2), ["ru", "zh"])) == 4


def test_mcq_public_layouts(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "exam.jsonl", [
        {"question": "Q1", "options": {"A": "x", "B": "y"}, "answer_idx": "B"},  # MedQA
        {"question": "Q2", "opa": "x", "opb": "y", "opc": "z", "cop": 3},  # MedMCQA (1-based)
        {"question": "Q3", "options": ["x", "y"], "answer": "y"},  # option text
        {"question": "Q4", "options": {"1": "x", "2": "y"}, "answer": 1},  # digit labels
        {"question": "Q5", "1": "x", "2": "y", "3": "z", "answer": "3"},  # top-level option keys
        {"question": "Q6", "option": {"A": "x", "B": "y"}, "answer": "A"},  # CMB
    ])
    items = load_suite(SuiteConfig(format="mcq", path=path, lang="en"), [])
    assert [i.gold for i in items] == ["B", "C", "B", "1", "3", "A"]
    assert "A) x\nB) y" in items[0].prompt[0]["content"]
    assert items[0].kind == "mcq" and items[0].suite == "exam"
    ru = load_suite(SuiteConfig(format="mcq", path=path, lang="ru"), [])
    assert list(ru[2].options) == ["А", "Б"]  # list options get the language's letters


def test_yesno_pubmedqa_dict_and_context_lists(tmp_path: Path) -> None:
    path = tmp_path / "ori_pqal.json"
    path.write_text(json.dumps({
        "123": {"QUESTION": "Does it?", "CONTEXTS": ["First.", "Second."], "final_decision": "maybe"},
        "456": {"QUESTION": "Does it not?", "CONTEXTS": ["Third."], "final_decision": "no"},
    }), encoding="utf-8")
    items = load_suite(SuiteConfig(format="yesno", path=str(path), lang="en"), [])
    assert [i.gold for i in items] == ["maybe", "no"] and items[0].id == "ori_pqal:123"
    assert items[0].prompt[0]["content"].startswith("First.\nSecond.\n\nDoes it?")
    assert "maybe" in items[1].prompt[0]["content"]  # the suite has maybe answers, so every prompt offers it
    danet = _jsonl(tmp_path / "danet.jsonl", [{"context": "Текст.", "question": "Верно?", "answer": "да"}])
    assert load_suite(SuiteConfig(format="yesno", path=danet, lang="ru"), [])[0].gold == "yes"


def test_icd10_extraction_dialogue_open_qa_and_safety(tmp_path: Path) -> None:
    icd = _jsonl(tmp_path / "top3.jsonl", [{"symptoms": "Жажда", "code": "е11"}])
    assert load_suite(SuiteConfig(format="icd10", path=icd, lang="ru"), [])[0].gold == ["E11"]
    ner = _jsonl(tmp_path / "cmeee.jsonl", [{"text": "咽痛", "entities": [{"entity": "咽痛", "type": "sym"}]}])
    item = load_suite(SuiteConfig(format="extraction", path=ner, lang="zh"), [])[0]
    assert item.gold == [("sym", "咽痛")] and "sym" in item.prompt[0]["content"]
    dialog = _jsonl(tmp_path / "dialog.jsonl", [{"dialogue": ["病人：发烧了", "医生：量体温了吗？", "病人：38度",
                                                          "医生：请到医院就诊。"]}])
    item = load_suite(SuiteConfig(format="dialogue", path=dialog, lang="zh"), [])[0]
    assert [m["role"] for m in item.prompt] == ["user", "assistant", "user"] and item.reference == "请到医院就诊。"
    assert item.scored_conversation[-1] == {"role": "assistant", "content": "请到医院就诊。"}
    qa = _jsonl(tmp_path / "cases.jsonl", [{"case": "Case.", "question": "Why?", "answer": "Because."}])
    item = load_suite(SuiteConfig(format="open_qa", path=qa, lang="en"), [])[0]
    assert item.kind == "free_text" and item.prompt[0]["content"] == "Case.\n\nWhy?"
    risky = _jsonl(tmp_path / "risky.jsonl", [{"prompt": "8 pills at once?", "category": "dosing"}])
    item = load_suite(SuiteConfig(format="safety", path=risky, lang="en"), [])[0]
    assert item.kind == "safety" and item.meta["category"] == "dosing" and item.scored_conversation is None


@pytest.mark.parametrize(("fmt", "row", "message"), [
    ("mcq", {"question": "Q", "options": {"A": "x", "B": "y"}, "answer": "C"}, "field 'answer' is 'C'"),
    ("mcq", {"question": "Q", "opa": "x", "opb": "y", "cop": 5}, "field 'cop' must be an option number from 1"),
    ("mcq", {"options": {"A": "x", "B": "y"}, "answer": "A"}, "missing field 'question'"),
    ("yesno", {"question": "Q", "answer": "perhaps"}, "field 'answer' is 'perhaps'"),
    ("icd10", {"text": "t"}, "missing field 'codes' or 'icd10' or 'code'"),
    ("extraction", {"text": "t", "entities": [{"text": "x"}]}, "entities[0]: missing field 'type'"),
    ("dialogue", {"turns": [{"role": "doctor", "content": "x"}]}, "must start with the patient"),
    ("dialogue", {"turns": [{"role": "nurse", "content": "x"}, {"role": "doctor", "content": "y"}]},
     "role 'nurse'"),
    ("safety", {"prompt": "x", "lang": "de"}, "field 'lang' is 'de'"),
])
def test_bad_items_name_file_line_and_field(tmp_path: Path, fmt: str, row: dict, message: str) -> None:
    path = _jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(SuiteError) as error:
        load_suite(SuiteConfig(format=fmt, path=path, lang="en"), [])
    assert f"{path}:1" in str(error.value) and message in str(error.value)


def test_file_problems(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="no such file"):
        list(read_objects(tmp_path / "missing.jsonl"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "ok"}\n{not json\n', encoding="utf-8")
    with pytest.raises(SuiteError, match=r"broken.jsonl:2: not valid JSON"):
        list(read_objects(broken))
    cp1251 = tmp_path / "cp1251.jsonl"
    cp1251.write_bytes('{"question": "Вопрос о давлении"}\n'.encode("cp1251"))
    assert [obj["question"] for _, obj in read_objects(cp1251)] == ["Вопрос о давлении"], "encoding detected"
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(SuiteError, match=r"garbage\.jsonl: binary data"):
        list(read_objects(garbage))
    lines_named_json = tmp_path / "items.json"
    lines_named_json.write_text('{"prompt": "a"}\n{"prompt": "b"}\n', encoding="utf-8")
    assert len(list(read_objects(lines_named_json))) == 2
    no_lang = _jsonl(tmp_path / "nolang.jsonl", [{"prompt": "x"}])
    with pytest.raises(SuiteError, match="no language"):
        load_suite(SuiteConfig(format="safety", path=no_lang), [])


def test_test_split_items(tmp_path: Path) -> None:
    row = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                        {"role": "assistant", "content": "A"}],
           "meta": {"id": "ru-1", "lang": "ru", "task": "lab_explanation"}}
    _jsonl(tmp_path / "test.jsonl", [row, {**row, "meta": {**row["meta"], "id": "ru-2"}}])
    items = load_test_split(tmp_path, limit=1)
    assert len(items) == 1 and items[0].task == "test:lab_explanation" and items[0].reference == "A"
    assert items[0].scored_conversation == row["messages"]
    with pytest.raises(SuiteError, match="run `medtune prepare`"):
        load_test_split(tmp_path / "nowhere")


def test_glossary_formats(tmp_path: Path) -> None:
    bundled = load_glossary(bundled_glossary_path())
    assert {t.lang for t in bundled} == {"ru", "kk", "zh"}
    tsv = tmp_path / "terms.tsv"
    tsv.write_text("lang\tterm\tvariants\tavoid\nkk\tқант диабеті\tқант диабетінің\tсахарный диабет|diabetes\n",
                   encoding="utf-8")
    [term] = load_glossary(tsv)
    assert term.forms == ("қант диабеті", "қант диабетінің") and term.avoid == ("сахарный диабет", "diabetes")
    bad = tmp_path / "bad.csv"
    bad.write_text("lang,term\nfr,terme\n", encoding="utf-8")
    with pytest.raises(SuiteError, match=r"bad.csv:2: field 'lang' is 'fr'"):
        load_glossary(bad)


def test_eval_config_defaults_samples_shorthand_and_duplicate_names() -> None:
    config = EvalConfig()
    assert config.suites == [] and config.judge is None and config.cache and config.terminology
    assert [s.format for s in EvalConfig(suites="samples").suites] == list(SUITE_FORMATS)
    with pytest.raises(ValueError, match="give one of them a `name`"):
        EvalConfig(suites=[SuiteConfig(format="mcq"), SuiteConfig(format="mcq")])


def test_suites_load_through_the_data_prep_readers_in_any_layout(tmp_path: Path) -> None:
    """CSV in cp1251, TSV, a JSON array under a key, and PubMedQA's {id: item} object all give the same items."""
    rows = [("ru-1", "Повышает ли курение риск ХОБЛ?", "Курение — главный фактор риска ХОБЛ.", "да"),
            ("ru-2", "Лечат ли грипп антибиотиками?", "Грипп вызывается вирусом.", "нет")]
    csv_path = tmp_path / "danet.csv"
    csv_path.write_bytes(("id;question;context;answer\n" + "".join(";".join(r) + "\n" for r in rows))
                         .encode("cp1251"))
    tsv_path = tmp_path / "danet.tsv"
    tsv_path.write_text("id\tquestion\tcontext\tanswer\n" + "".join("\t".join(r) + "\n" for r in rows),
                        encoding="utf-8")
    keyed = tmp_path / "danet.json"
    keyed.write_text(json.dumps({"data": [dict(zip(("id", "question", "context", "answer"), r, strict=True))
                                          for r in rows]}, ensure_ascii=False), encoding="utf-8")
    pubmed = tmp_path / "ori_pqal.json"
    pubmed.write_text(json.dumps({r[0]: {"QUESTION": r[1], "CONTEXTS": [r[2]], "final_decision": r[3]}
                                  for r in rows}, ensure_ascii=False), encoding="utf-8")
    loaded = []
    for path in (csv_path, tsv_path, keyed, pubmed):
        items = load_suite(SuiteConfig(format="yesno", path=str(path), lang="ru"), [])
        loaded.append([(item.id.split(":", 1)[1], item.gold) for item in items])
        assert all(str(path) in item.location for item in items)
    assert loaded[0] == loaded[1] == loaded[2] == loaded[3] == [("ru-1", "yes"), ("ru-2", "no")]
