"""End to end on small files: the written dataset, its rejects and its card."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from data_prep.config import DataConfig, SourceConfig
from data_prep.prepare import MARKER_NAME, OUTPUT_FILES, OutputError, check_output_dir, prepare
from data_prep.split import SPLITS

PATIENTS = {
    "ru": [
        (
            "Иванов Пётр Сергеевич",
            "04.05.1961",
            "112-233-445 95",
            "+7 (916) 123-45-67",
            "p.ivanov61@mail.ru",
            "г. Москва, ул. Профсоюзная, д. 12, кв. 45",
        ),
        (
            "Смирнова Ольга Николаевна",
            "17.09.1975",
            "200-321-598 91",
            "8 903 640 12 88",
            None,
            "г. Казань, ул. Баумана, д. 3, кв. 7",
        ),
        (
            "Кузнецов Андрей Игоревич",
            "30.01.1958",
            "463-615-140 76",
            "+79161736025",
            "kuznetsov58@yandex.ru",
            "г. Тверь, пр-т Ленина, д. 40",
        ),
    ],
    "kk": [
        (
            "Әбенов Нұрлан Серікұлы",
            "12.07.1968",
            "680712300125",
            "+7 701 234 5678",
            None,
            "Алматы қ., Абай даңғылы, 150-үй, 12-пәтер",
        ),
        (
            "Сейітова Айгүл Қайратқызы",
            "03.11.1982",
            "821103400456",
            "8 (727) 255-12-34",
            "aigul82@mail.kz",
            "Астана қ., Тәуелсіздік даңғылы, 21-үй",
        ),
        (
            "Омаров Бекжан Ерланұлы",
            "21.02.1990",
            "900221300789",
            "+7 777 123 45 67",
            None,
            "Шымкент қ., Төле би көшесі, 45-үй",
        ),
    ],
    "zh": [
        (
            "王建国",
            "1961-05-04",
            "110105196105041238",
            "138 1234 5678",
            "wangjg61@163.com",
            "北京市朝阳区建国路88号院3号楼",
        ),
        (
            "李秀英",
            "1975-09-17",
            "310101197509173526",
            "+86 139-8821-6094",
            None,
            "上海市黄浦区南京东路100号",
        ),
        ("张伟", "1958-01-30", "440103195801302117", "13305187742", None, "广州市荔湾区中山八路12号"),
    ],
}
DOCTORS = {"ru": "Петрова Анна Викторовна", "kk": "Жапарова Бақыт Кенжеқызы", "zh": "陈志强"}


def clinical(lang: str, i: int, name: str, phone: str, national_id: str) -> dict:
    surname, *_ = name.split() if lang != "zh" else [name]
    doctor_short = {"ru": "Петровой А.В.", "kk": "Жапарова Б.К.", "zh": "陈医生"}[lang]
    if lang == "ru":
        return {
            "department": "Кардиология",
            "admission_date": f"1{i}.03.2024",
            "discharge_date": f"2{i}.03.2024",
            "complaints": f"{surname} жалуется на одышку и слабость.",
            "history": f"Болеет с 12.03.2019. Тел. {phone}, СНИЛС {national_id}. Лечащий врач {doctor_short}",
            "labs": [
                {"name": "Гемоглобин", "value": 98 + i, "unit": "г/л", "ref_low": 120, "ref_high": 160},
                {"name": "Глюкоза", "value": 5.6, "unit": "ммоль/л", "ref_low": 3.9, "ref_high": 6.1},
            ],
            "diagnosis": "Железодефицитная анемия средней степени",
            "icd10": "D50.0",
            "prescriptions": ["Железа сульфат 325 мг 2 раза в день"],
            "recommendations": f"Повторный осмотр у {doctor_short} 01.04.2024, контроль гемоглобина.",
        }
    if lang == "kk":
        return {
            "department": "Эндокринология",
            "admission_date": f"0{i + 1}.02.2024",
            "discharge_date": f"1{i}.02.2024",
            "complaints": f"{surname} шөлдеуге және әлсіздікке шағымданады.",
            "history": f"Қант диабеті 2015 жылдан. ИИН {national_id}, тел. {phone}. Дәрігер {doctor_short}",
            "labs": [
                {"name": "Глюкоза", "value": 9.8 + i, "unit": "ммоль/л", "ref_low": 3.9, "ref_high": 6.1},
                {"name": "Калий", "value": 4.2, "unit": "ммоль/л", "ref_low": 3.5, "ref_high": 5.1},
            ],
            "diagnosis": "2 типті қант диабеті, декомпенсация",
            "icd10": "E11.6",
            "prescriptions": ["Метформин 1000 мг тәулігіне 2 рет"],
            "recommendations": "Глюкозаны күнделікті бақылау, 2024 жылғы 15 сәуірде қайта қаралу.",
        }
    return {
        "department": "呼吸内科",
        "admission_date": f"2024-03-1{i}",
        "discharge_date": f"2024-03-2{i}",
        "complaints": "咳嗽、发热3天。",
        "history": (f"患者{name}，2019年3月起反复咳嗽。身份证号{national_id}，电话{phone}。主治医师：{doctor_short}。"),
        "labs": [
            {"name": "白细胞计数", "value": 13.2 + i, "unit": "×10⁹/L", "ref_low": 3.5, "ref_high": 9.5},
            {"name": "C反应蛋白", "value": 45, "unit": "mg/L", "ref_low": None, "ref_high": 10},
        ],
        "diagnosis": "社区获得性肺炎",
        "icd10": "J18.9",
        "prescriptions": ["头孢曲松 2 g 静脉滴注 每日一次"],
        "recommendations": "注意休息，2024年4月1日复查胸片。",
    }


def records(lang: str) -> list[dict]:
    rows = []
    for i, (name, birth, national_id, phone, email, address) in enumerate(PATIENTS[lang]):
        rows.append(
            {
                "record_id": f"{lang}-{i:03d}",
                "patient_id": f"{lang.upper()}-P{i:04d}",
                "lang": lang,
                "patient": {
                    "full_name": name,
                    "birth_date": birth,
                    "national_id": national_id,
                    "phone": phone,
                    "email": email,
                    "address": address,
                },
                "doctor": DOCTORS[lang],
                **clinical(lang, i, name, phone, national_id),
            }
        )
    return rows


def write_source(directory: Path, lang: str, extra_lines: tuple[str, ...] = ()) -> Path:
    path = directory / f"{lang}.jsonl"
    lines = [json.dumps(r, ensure_ascii=False) for r in records(lang)] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def identifiers(lang: str) -> list[str]:
    """Every value of every patient block and doctor, plus the name parts and digit runs of each."""
    values = [DOCTORS[lang], *(DOCTORS[lang].split() if lang != "zh" else [])]
    for block in PATIENTS[lang]:
        values += [v for v in block if v]
        values += block[0].split() if lang != "zh" else [block[0][1:]] if len(block[0]) == 3 else []
    return values


@pytest.fixture()
def sources(tmp_path: Path) -> list[SourceConfig]:
    src = tmp_path / "src"
    src.mkdir()
    duplicate = json.dumps({**records("ru")[0], "record_id": "ru-dup"}, ensure_ascii=False)
    write_source(src, "ru", ('{"patient_id": "RU-P9", "lang": "ru", "complaints": "Иванов', "", duplicate))
    no_diagnosis = {**records("kk")[1], "diagnosis": None}
    write_source(src, "kk", (json.dumps(no_diagnosis, ensure_ascii=False),))
    write_source(src, "zh", (json.dumps({**records("zh")[0], "lang": "ru"}, ensure_ascii=False),))
    return [SourceConfig(path=str(src / f"{lang}.jsonl"), lang=lang) for lang in ("ru", "kk", "zh")]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_prepare_writes_splits_rejects_and_card(tmp_path: Path, sources: list[SourceConfig]) -> None:
    out = tmp_path / "out"
    card = prepare(DataConfig(sources=sources), out)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    for split in SPLITS:
        for row in read_jsonl(out / f"{split}.jsonl"):
            assert set(row) == {"messages", "meta"}
            assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
            assert set(row["meta"]) == {"id", "lang", "task", "source", "group"}
    assert "\\u" not in (out / "train.jsonl").read_text(encoding="utf-8")
    assert json.loads((out / "data_card.json").read_text(encoding="utf-8")) == card
    assert (out / "data_card.md").read_text(encoding="utf-8").startswith("# Data card")


def test_counts_add_up_and_rejects_say_where_and_why(tmp_path: Path, sources: list[SourceConfig]) -> None:
    out = tmp_path / "out"
    # The three patients per file share a template: near-duplicate removal is tested on its own.
    card = prepare(DataConfig(sources=sources, quality={"near_dup_threshold": None}), out)
    records_card, examples_card = card["records"], card["examples"]
    assert records_card["in"] == 3 * 3 + 4  # three patients per file, plus the extra lines (blank skipped)
    assert records_card["in"] == records_card["converted"] + records_card["rejected"]
    assert (records_card["converted"], records_card["rejected"]) == (10, 3)
    assert examples_card["made"] == examples_card["written"] + examples_card["rejected"] == 20
    written = sum(len(read_jsonl(out / f"{split}.jsonl")) for split in SPLITS)
    assert written == examples_card["written"] == 18
    assert all(card["invariants"].values())
    rejects = read_jsonl(out / "rejects.jsonl")
    assert {(r["location"], r["reason"], r.get("field")) for r in rejects} == {
        ("ru.jsonl:4", "invalid_json", None),
        ("kk.jsonl:4", "missing_field", "diagnosis"),
        ("zh.jsonl:4", "lang_mismatch", "lang"),
        ("ru.jsonl:6", "duplicate", None),
    }
    assert card["rejection_reasons"] == {
        "records": {"invalid_json": 1, "lang_mismatch": 1, "missing_field": 1},
        "examples": {"duplicate": 2},
    }
    for reject in rejects:
        assert set(reject) <= {"source", "location", "reason", "field", "stage", "task"}


def test_no_identifier_reaches_any_output_file(tmp_path: Path, sources: list[SourceConfig]) -> None:
    out = tmp_path / "out"
    card = prepare(DataConfig(sources=sources), out)
    written = "\n".join(p.read_text(encoding="utf-8") for p in out.iterdir())
    number_runs = [re.sub(r"\D", "", run) for run in re.findall(r"\+?\d[\d\s\-()]{6,}\d", written)]
    for lang in ("ru", "kk", "zh"):
        for value in identifiers(lang):
            assert value not in written, f"{lang}: {value!r} leaked"
            if sum(c.isdigit() for c in value) >= 9:
                tail = re.sub(r"\D", "", value)[-9:]
                assert not any(tail in run for run in number_runs), f"{lang}: digits of {value!r} leaked"
        for record in records(lang):
            assert record["patient_id"] not in written
    for value in ("12.03.2019", "01.04.2024", "2019年3月", "15 сәуір"):
        assert value not in written
    assert card["redactions"]["by_type"]["name"] >= 9
    assert "98 г/л" in written and "13.2 ×10⁹/L" in written  # lab values kept


def test_no_patient_in_two_splits(tmp_path: Path, sources: list[SourceConfig]) -> None:
    out = tmp_path / "out"
    prepare(DataConfig(sources=sources), out)
    owner: dict[str, str] = {}
    for split in SPLITS:
        for row in read_jsonl(out / f"{split}.jsonl"):
            assert owner.setdefault(row["meta"]["group"], split) == split
    assert all(read_jsonl(out / f"{split}.jsonl") for split in SPLITS)


def test_same_config_same_output(tmp_path: Path, sources: list[SourceConfig]) -> None:
    prepare(DataConfig(sources=sources), tmp_path / "a")
    prepare(DataConfig(sources=sources), tmp_path / "b")
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "rejects.jsonl", "data_card.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_the_salt_changes_the_groups(tmp_path: Path, sources: list[SourceConfig]) -> None:
    prepare(DataConfig(sources=sources, patient_salt="one"), tmp_path / "a")
    prepare(DataConfig(sources=sources, patient_salt="two"), tmp_path / "b")

    def groups(directory: Path) -> set[str]:
        return {r["meta"]["group"] for s in SPLITS for r in read_jsonl(directory / f"{s}.jsonl")}

    assert groups(tmp_path / "a").isdisjoint(groups(tmp_path / "b"))


def test_token_counter_drives_length_filter_and_stats(tmp_path: Path, sources: list[SourceConfig]) -> None:
    calls: list[int] = []

    def count_tokens(messages: list[dict]) -> int:
        calls.append(1)
        return sum(len(m["content"]) for m in messages) // 3

    lengths = [
        sum(len(m["content"]) for m in r["messages"]) // 3
        for r in read_jsonl(_prepared(tmp_path / "plain", sources) / "train.jsonl")
    ]
    limit = sorted(lengths)[len(lengths) // 2]
    config = DataConfig(sources=sources, quality={"max_tokens": limit})
    card = prepare(config, tmp_path / "out", token_counter=count_tokens)
    assert card["lengths"]["unit"] == "tokens"
    assert card["lengths"]["all"]["max"] <= limit
    assert card["rejection_reasons"]["examples"].get("too_long", 0) > 0
    assert all(card["invariants"].values())
    fertility_calls = 1 + sum(f["texts"] for f in card["fertility"].values())
    assert len(calls) - fertility_calls <= card["examples"]["made"]  # each example is measured once


def _prepared(out: Path, sources: list[SourceConfig]) -> Path:
    prepare(DataConfig(sources=sources), out)
    return out


def test_without_deid_the_structured_identifiers_still_stay_out(tmp_path: Path, sources: list[SourceConfig]) -> None:
    out = tmp_path / "out"
    card = prepare(DataConfig(sources=sources, deid={"enabled": False}), out)
    assert card["redactions"] == {"enabled": False, "by_type": {}, "total": 0}
    written = "\n".join((out / f"{split}.jsonl").read_text(encoding="utf-8") for split in SPLITS)
    for lang in ("ru", "kk", "zh"):
        for *_, address in PATIENTS[lang]:
            assert address not in written
        assert DOCTORS[lang] not in written


def test_tasks_can_be_chosen_per_source(tmp_path: Path, sources: list[SourceConfig]) -> None:
    sources[0] = sources[0].model_copy(update={"tasks": ["lab_explanation"]})
    card = prepare(DataConfig(sources=sources[:1]), tmp_path / "out")
    assert set(card["examples"]["by_task"]) == {"lab_explanation"}


def test_a_missing_source_file_is_a_clear_error(tmp_path: Path) -> None:
    config = DataConfig(sources=[SourceConfig(path=str(tmp_path / "nope.jsonl"), lang="ru")])
    with pytest.raises(FileNotFoundError, match=r"nope\.jsonl"):
        prepare(config, tmp_path / "out")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, to show that nothing was written or changed."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("source_at", "out_at", "message"),
    [
        ("d/train.jsonl", "d", r"the source file .*train\.jsonl is inside the output folder"),
        ("d/deep/ru.jsonl", "d", r"the source file .*ru\.jsonl is inside the output folder"),
        ("d", "d", r"the output folder .*d is the source folder .*d itself"),
        ("d", "d/prepared", r"the output folder .*prepared is inside the source folder"),
        ("d/ru.jsonl", "d/ru.jsonl", r"is the source file .*ru\.jsonl itself"),
    ],
)
def test_an_output_folder_overlapping_a_source_is_refused_and_nothing_is_written(
    tmp_path: Path, source_at: str, out_at: str, message: str
) -> None:
    (tmp_path / "d" / "deep").mkdir(parents=True)
    for name in ("train.jsonl", "ru.jsonl", "deep/ru.jsonl"):
        (tmp_path / "d" / name).write_text(json.dumps(records("ru")[0], ensure_ascii=False) + "\n", encoding="utf-8")
    before = snapshot(tmp_path)
    config = DataConfig(sources=[SourceConfig(path=str(tmp_path / source_at), lang="ru")])
    with pytest.raises(OutputError, match=message):
        prepare(config, tmp_path / out_at)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["train.jsonl", "rejects.jsonl", "data_card.md", MARKER_NAME])
def test_a_file_prepare_did_not_write_is_never_overwritten(
    tmp_path: Path, sources: list[SourceConfig], name: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text("the clinic's own file\n", encoding="utf-8")
    (out / "notes.txt").write_text("not an output name: left alone\n", encoding="utf-8")
    before = snapshot(out)
    with pytest.raises(OutputError, match=rf"output folder .*out already holds {re.escape(name)}, not written by an"):
        prepare(DataConfig(sources=sources), out)
    assert snapshot(out) == before


def test_a_folder_at_an_output_path_is_refused(tmp_path: Path, sources: list[SourceConfig]) -> None:
    (tmp_path / "out" / "test.jsonl").mkdir(parents=True)
    with pytest.raises(OutputError, match=r"already holds test\.jsonl"):
        prepare(DataConfig(sources=sources), tmp_path / "out")
    assert snapshot(tmp_path / "out") == {}


@pytest.mark.parametrize(("out_at", "message"), [
    ("taken", r"output folder .*taken is a file, not a folder"),
    ("taken/sub", r"output folder .*sub cannot be made: .*taken is a file"),
])
def test_an_output_folder_that_is_a_file_is_a_clear_error(
    tmp_path: Path, sources: list[SourceConfig], out_at: str, message: str
) -> None:
    (tmp_path / "taken").write_bytes(b"keep me")
    with pytest.raises(OutputError, match=message):
        prepare(DataConfig(sources=sources), tmp_path / out_at)
    assert (tmp_path / "taken").read_bytes() == b"keep me"


def test_an_earlier_prepare_is_replaced_and_reported(tmp_path: Path, sources: list[SourceConfig]) -> None:
    out = tmp_path / "out"
    prepare(DataConfig(sources=sources), out)
    first = snapshot(out)
    assert json.loads((out / MARKER_NAME).read_text(encoding="utf-8"))["files"] == list(OUTPUT_FILES)
    (out / "README.txt").write_text("a note of the user's\n", encoding="utf-8")
    replaced = check_output_dir(DataConfig(sources=sources), out)
    assert sorted(p.name for p in replaced) == sorted(set(OUTPUT_FILES) - {MARKER_NAME})
    prepare(DataConfig(sources=sources), out)
    assert snapshot(out) == {**first, "README.txt": b"a note of the user's\n"}


def test_a_folder_prepared_before_markers_existed_is_still_recognised(
    tmp_path: Path, sources: list[SourceConfig]
) -> None:
    out = tmp_path / "out"
    prepare(DataConfig(sources=sources), out)
    (out / MARKER_NAME).unlink()
    assert len(check_output_dir(DataConfig(sources=sources), out)) == len(OUTPUT_FILES) - 1
    (out / "data_card.json").write_text('{"some": "other card"}', encoding="utf-8")
    with pytest.raises(OutputError, match=r"already holds train\.jsonl"):
        check_output_dir(DataConfig(sources=sources), out)
