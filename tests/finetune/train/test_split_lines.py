"""Every loader of a prepared split (chat, text, prompts, pairs) reads its lines through one reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.train._completion import load_text_rows
from finetune.train._data import TrainingDataError, split_lines
from finetune.train._dpo import load_pair_rows
from finetune.train._grpo import load_prompt_rows


def test_blank_lines_are_skipped_and_each_record_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"}\n', encoding="utf-8")
    assert list(split_lines(path)) == [(f"{path}:1", {"text": "a"}), (f"{path}:3", {"text": "b"})]


@pytest.mark.parametrize("load", [load_text_rows, load_pair_rows, load_prompt_rows])
def test_a_line_that_is_not_json_names_file_and_line_in_every_loader(tmp_path: Path, load) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('\n{"text": \n', encoding="utf-8")
    with pytest.raises(TrainingDataError, match=rf"{path}:2: not valid JSON"):
        load(path)
