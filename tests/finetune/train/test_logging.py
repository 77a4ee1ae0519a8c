"""Training logs: TensorBoard event files and a progress line with loss, tokens/s and memory, never patient text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from finetune.train._sft import TENSORBOARD_NAME, train

PROGRESS = re.compile(r"step 1/2 · loss \d+\.\d{4} · [\d,]+ tokens/s · peak RSS \d+\.\d\d GiB")


def test_tensorboard_and_progress_line_log_numbers_and_no_patient_text(
    tmp_path: Path, tiny_model_dir: Path, short_recipe, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    recipe = short_recipe(tmp_path, tiny_model_dir, model={"load_in_4bit": False}, report_to=["tensorboard"])
    adapter = train(recipe)
    out, err = capfd.readouterr()
    assert PROGRESS.search(err), err[-2000:]
    assert re.search(r"step 2/2 · eval loss \d+\.\d{4}", err)

    events = list((adapter / TENSORBOARD_NAME).glob("events.out.tfevents.*"))
    assert events, "TensorBoard writes inside the adapter directory"
    assert not list(tmp_path.glob("**/runs/*/events.out.tfevents.*")), "and nowhere else"
    scalars = {tag for path in events for tag in EventAccumulator(str(path)).Reload().Tags()["scalars"]}
    assert {"train/loss", "train/tokens_per_second", "train/peak_memory_gib", "eval/loss"} <= set(scalars)
    metrics = json.loads((adapter / "training_metrics.json").read_text())
    assert all(entry["tokens_per_second"] > 0 for entry in metrics["log_history"] if "loss" in entry)

    written = out + err + caplog.text + "".join(p.read_bytes().decode("utf-8", "replace") for p in events)
    written += "".join(p.read_text(encoding="utf-8") for p in adapter.glob("*.json"))
    texts = [m["content"] for line in (recipe.data_dir / "train.jsonl").read_text(encoding="utf-8").splitlines()
             for m in json.loads(line)["messages"]]
    leaked = [text for text in texts if text in written]
    assert not leaked, f"patient text reached the logs: {leaked[:2]}"
