"""Bad input and misuse at the command line: a clear `medtune VERB: error: ...`, exit 2, and no file harmed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from data_prep.samples import bundled_path
from finetune.cli import build_parser, main
from finetune.cli._parser import VERBS


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes, to show that nothing was written or changed."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def export_file(path: Path, records: int = 4) -> Path:
    """A small clinic export: the first records of the bundled Chinese sample."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = bundled_path("zh").read_text(encoding="utf-8").splitlines()[:records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_every_verb_is_covered_by_the_help_tests() -> None:
    verbs = next(a for a in build_parser()._actions if a.dest == "verb").choices
    assert set(verbs) == set(VERBS)


@pytest.mark.parametrize("verb", [None, *VERBS])
def test_help_prints_and_exits_zero(verb: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([verb, "--help"] if verb else ["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: medtune {verb or ''}".rstrip())
    if verb in (None, "eval"):  # the '%' that argparse once read as a format
        assert "paired 95% intervals" in " ".join(out.split())


@pytest.mark.parametrize(
    ("source", "out", "message"),
    [
        ("d/train.jsonl", "d", "the source file {tmp}/d/train.jsonl is inside the output folder {tmp}/d"),
        ("d", "d", "the output folder {tmp}/d is the source folder {tmp}/d itself"),
        ("d", "d/prepared", "the output folder {tmp}/d/prepared is inside the source folder {tmp}/d"),
    ],
)
def test_prepare_refuses_to_write_where_it_reads(
    tmp_path: Path, source: str, out: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    export_file(tmp_path / "d" / "train.jsonl")
    before = snapshot(tmp_path)
    code = main(["prepare", "--source", str(tmp_path / source), "--out", str(tmp_path / out), "--lang", "zh"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("medtune prepare: error: ") and message.format(tmp=tmp_path) in err
    assert "choose an output folder that holds no source" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(("existing", "message"), [
    ("prepared", "output folder {tmp}/prepared is a file, not a folder"),
    ("prepared/train.jsonl", "output folder {tmp}/prepared already holds train.jsonl, not written by an earlier"),
])
def test_prepare_never_writes_over_a_file_it_did_not_make(
    tmp_path: Path, existing: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = export_file(tmp_path / "exports" / "clinic.jsonl")
    (tmp_path / existing).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / existing).write_bytes(b"someone else's file\n")
    before = snapshot(tmp_path)
    assert main(["prepare", "--source", str(source), "--out", str(tmp_path / "prepared"), "--lang", "zh"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medtune prepare: error: ") and message.format(tmp=tmp_path) in err
    assert snapshot(tmp_path) == before


def test_prepare_says_when_it_replaces_an_earlier_prepare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = export_file(tmp_path / "clinic.jsonl")
    args = ["prepare", "--source", str(source), "--out", str(tmp_path / "out"), "--lang", "zh"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "replaced" not in out
    assert re.search(r"\(0 of \d+ records rejected, \d+ skipped: see ", out), out
    assert main(args) == 0
    assert f"replaced 7 files of an earlier prepare in {tmp_path / 'out'}: train.jsonl" in capsys.readouterr().out


def write_recipe(tmp_path: Path, source: Path) -> Path:
    """A recipe around a tiny base that does not exist yet (prepare would build it first)."""
    recipe = {
        "name": "misuse", "output_dir": str(tmp_path / "run"),
        "model": {"base": str(tmp_path / "model"), "tiny": {"seed": 0}},
        "data": {"sources": [{"path": str(source), "lang": "zh"}]},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


@pytest.mark.parametrize("verb", ["prepare", "validate", "run"])
def test_a_recipe_whose_source_lies_in_its_data_folder_is_refused(
    tmp_path: Path, verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = export_file(tmp_path / "run" / "data" / "train.jsonl")
    before = snapshot(tmp_path / "run")
    assert main([verb, str(write_recipe(tmp_path, source))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"medtune {verb}: error: ")
    assert f"data.sources[0].path: the source file {source} is inside the output folder {tmp_path}/run/data" in err
    assert snapshot(tmp_path / "run") == before and not (tmp_path / "model").exists()


def test_recipe_prepare_refuses_a_foreign_file_before_building_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write_recipe(tmp_path, export_file(tmp_path / "exports" / "clinic.jsonl"))
    (tmp_path / "run" / "data").mkdir(parents=True)
    (tmp_path / "run" / "data" / "test.jsonl").write_bytes(b"a hand-made test set\n")
    assert main(["prepare", str(recipe)]) == 2
    assert "already holds test.jsonl, not written by an earlier prepare" in capsys.readouterr().err
    assert (tmp_path / "run" / "data" / "test.jsonl").read_bytes() == b"a hand-made test set\n"
    assert sorted(p.name for p in (tmp_path / "run" / "data").iterdir()) == ["test.jsonl"]
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prepare", "--source", "x.jsonl", "--preview", "-1"], "argument --preview: must be at least 1, got -1"),
        (["prepare", "--source", "x.jsonl", "--preview", "0"], "argument --preview: must be at least 1, got 0"),
        (["prepare", "--workers", "0"], "argument --workers: must be at least 1, got 0"),
        (["prepare", "--workers", "two"], "argument --workers: expected a whole number of at least 1, got 'two'"),
        (["serve", "--port", "70000"], "argument --port: must be from 0 to 65535, got 70000"),
    ],
)
def test_out_of_range_arguments_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"medtune {args[0]}: error: {message}" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prepare", "--workers", "100000"], "workers: Input should be less than or equal to 256 (got 100000)"),
        (["validate", "train.learning_rate=inf"], "train.learning_rate: Input should be a finite number"),
        (["validate", "train.num_train_epochs=1e400"], "train.num_train_epochs: Input should be a finite number"),
        (["train", "train.per_device_train_batch_size=1.0e+15"], "train.per_device_train_batch_size: Input should"),
        (["tiny-model", "out", "--seed", "-1"], "seed: Input should be greater than or equal to 0 (got -1)"),
    ],
)
def test_out_of_range_numbers_are_handled_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err  # (a library may warn on import before the error)
    assert f"\nmedtune {args[0]}: error: " in f"\n{err}" and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
