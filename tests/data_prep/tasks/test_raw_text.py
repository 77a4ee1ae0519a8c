"""A note without headings becomes a de-identified raw text row (the `text` task), written to the text splits."""

from __future__ import annotations

import json
from pathlib import Path

from data_prep.config import DataConfig, SourceConfig
from data_prep.prepare import prepare

PROSE = (
    "Пациентка Смирнова Ольга Петровна, тел. +7 (916) 482-17-39, обратилась с жалобами на кашель и слабость в "
    "течение недели. Температура до 38,2. При осмотре хрипы в нижних отделах справа. Назначен амоксициллин, "
    "рекомендован контроль через пять дней."
)


def test_prose_note_is_read_deidentified_and_written_as_text(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for index in range(6):
        (notes / f"note{index}.txt").write_text(f"ID: P{index}\n{PROSE}\n", encoding="utf-8")
    (notes / "empty.txt").write_text("ID: P9\n", encoding="utf-8")
    config = DataConfig(sources=[SourceConfig(path=str(notes), format="notes", lang="ru", tasks=["text"])],
                        quality={"near_dup_threshold": None, "dedup": False})
    card = prepare(config, tmp_path / "out")
    rows = [json.loads(line) for split in ("train", "validation", "test")
            for line in (tmp_path / "out" / f"{split}.jsonl").open(encoding="utf-8")]
    assert len(rows) == 6
    for row in rows:
        assert set(row) == {"text", "meta"} and row["meta"]["task"] == "text"
        assert "кашель" in row["text"] and "амоксициллин" in row["text"]
        assert "Смирнова" not in row["text"] and "482-17-39" not in row["text"]
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").open(encoding="utf-8")]
    assert len(rejects) == 1 and "empty.txt" in rejects[0]["location"]
    assert card["records"]["in"] == 7 and card["examples"]["written"] == 6
