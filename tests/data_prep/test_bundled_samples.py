"""The bundled synthetic samples: enough of them, and prepared without leaking a single identifier."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from data_prep.config import LANGS, DataConfig
from data_prep.prepare import prepare
from data_prep.samples import bundled_path, bundled_texts
from data_prep.split import SPLITS

MIN_RECORDS_PER_LANGUAGE = 50


def bundled_records(lang: str) -> list[dict]:
    return [json.loads(line) for line in bundled_path(lang).read_text(encoding="utf-8").splitlines() if line.strip()]


def identifiers(record: dict) -> list[str]:
    """Values that must never appear in an output: the patient block, the doctor, and their parts."""
    patient = record["patient"]
    values = [v for v in patient.values() if isinstance(v, str) and v.strip()]
    values += [record["doctor"], record["patient_id"]]
    for name in (patient["full_name"], record["doctor"]):
        if record["lang"] == "zh":
            values += [name[1:]] if len(name) == 3 else []
        else:
            values += [part for part in name.split() if len(part) > 2 and "." not in part]
    return values


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bundled")
    return prepare(DataConfig(), out), out


def test_bundled_paths_point_inside_the_package() -> None:
    for lang in LANGS:
        path = bundled_path(lang)
        assert path.name == f"{lang}.jsonl" and path.parent.name == "samples" and path.is_file()
    with pytest.raises(ValueError, match="no bundled sample"):
        bundled_path("en")


def test_bundled_texts_cover_every_language_and_skip_identifiers() -> None:
    texts = list(bundled_texts())
    assert all(isinstance(t, str) and t.strip() for t in texts)
    joined = "\n".join(texts)
    assert re.search("[әғқңөұүһі]", joined) and re.search("[\u4e00-\u9fff]", joined)
    first = bundled_records("ru")[0]
    assert first["complaints"] in texts and first["patient"]["address"] not in joined


def test_default_config_prepares_the_bundled_samples(prepared: tuple[dict, Path]) -> None:
    card, _ = prepared
    for lang in LANGS:
        assert card["records"]["by_language"][lang]["converted"] >= MIN_RECORDS_PER_LANGUAGE
    assert all(card["invariants"].values())
    for split in SPLITS:
        assert set(card["splits"][split]["by_language"]) == set(LANGS), split


def test_no_identifier_from_any_patient_block_or_doctor_leaks(prepared: tuple[dict, Path]) -> None:
    _, out = prepared
    written = "\n".join(path.read_text(encoding="utf-8") for path in sorted(out.iterdir()))
    number_runs = [re.sub(r"\D", "", run) for run in re.findall(r"\+?\d[\d\s\-()]{6,}\d", written)]
    for lang in LANGS:
        for record in bundled_records(lang):
            for value in identifiers(record):
                assert value not in written, f"{record['record_id']}: an identifier leaked"
            for value in (record["patient"]["national_id"], record["patient"]["phone"]):
                tail = re.sub(r"\D", "", value)[-9:]
                assert not any(tail in run for run in number_runs), f"{record['record_id']}: digits leaked"


def test_no_patient_in_two_splits(prepared: tuple[dict, Path]) -> None:
    _, out = prepared
    owner: dict[str, str] = {}
    for split in SPLITS:
        for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            group = json.loads(line)["meta"]["group"]
            assert owner.setdefault(group, split) == split, f"patient {group} in {owner[group]} and {split}"


def test_lingua_names_every_bundled_and_labelled_note_from_its_sample_alone() -> None:
    from data_prep.deid._evaluation import load_heldout, load_testset
    from data_prep.langid import SAMPLE_CHARS, detect_lang, record_text

    samples = []
    for lang in LANGS:
        records = [{k: v for k, v in r.items() if k not in ("patient_id", "lang")} for r in bundled_records(lang)]
        records += [{"text": row["text"]} for row in load_testset(lang) + load_heldout(lang)]
        samples += [(lang, record_text(record)) for record in records]
    assert len(samples) >= 300 and all(len(sample) <= SAMPLE_CHARS for _, sample in samples)
    assert [(lang, sample) for lang, sample in samples if detect_lang(sample) != lang] == []
