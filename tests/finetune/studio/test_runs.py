"""Runs started from the studio: `medtune VERB RECIPE overrides` in a process of its own with its state on disk,
stopped cleanly, listed with their status after a restart; progress read from what the trainer prints."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from finetune.studio import Studio, create_app
from finetune.studio._progress import log_lines, progress
from finetune.studio._runs import RunStore, check_overrides
from finetune.train._trainer import ProgressLine


def _wait(store: RunStore, run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while (status := store.get(run_id).status) in ("running", "stopping"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(0.2)
    return status


@pytest.fixture()
def studio(tmp_path: Path) -> Studio:
    return Studio.open(None, [f"output_dir={tmp_path / 'run'}", f"model.base={tmp_path / 'run' / 'base-model'}"],
                       None, None)


def test_a_run_is_the_cli_command_with_the_same_recipe_and_overrides(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "recipes/tiny-demo.yaml", ["output_dir=/x"], "8gb")
    assert store.command("train", ["train.max_steps=2"], ["--resume"]) == [
        "train", "recipes/tiny-demo.yaml", "output_dir=/x", "train.max_steps=2", "--profile", "8gb", "--resume"]
    assert check_overrides([" eval.max_examples=4 ", ""]) == ["eval.max_examples=4"]
    for bad in ("--endpoint=http://x", "../etc=1", "/etc/passwd", "train.max_steps"):
        with pytest.raises(ValueError, match=r"section\.key=value"):
            check_overrides([bad])


def test_a_failing_stage_ends_failed_with_its_message_in_the_log(studio: Studio) -> None:
    client = TestClient(create_app(studio), base_url="http://127.0.0.1")
    refused = client.post("/api/runs", json={"verb": "export", "overrides": ["train.learning_rat=1"]})
    assert refused.status_code == 400 and "did you mean 'train.learning_rate'" in refused.json()["error"]
    assert client.post("/api/runs", json={"verb": "serve", "overrides": []}).status_code == 400
    started = client.post("/api/runs", json={"verb": "export", "overrides": ["export.dtype=float32"]})
    assert started.status_code == 200, started.text
    run_id = started.json()["id"]
    assert _wait(studio.runs, run_id) == "failed"
    shown = client.get(f"/api/runs/{run_id}").json()
    assert shown["returncode"] == 2 and shown["verb"] == "export"
    assert any("medtune export: error:" in line and "adapter" in line for line in shown["log"]), shown["log"]
    state = json.loads((studio.directory / "runs" / run_id / "state.json").read_text(encoding="utf-8"))
    assert state["overrides"] == ["export.dtype=float32"] and state["verb"] == "export" and state["pid"] > 0
    assert shown["log"][0] == f"$ medtune export {' '.join(studio.overrides)} export.dtype=float32"


def test_a_run_stops_cleanly_and_runs_are_listed_after_a_restart(studio: Studio, tmp_path: Path) -> None:
    run = studio.runs.start("train", ["train.max_steps=50"])
    with pytest.raises(ValueError, match="still going"):
        studio.runs.start("eval", [])
    log = studio.runs.log_path(run.id)
    deadline = time.monotonic() + 60
    while not log.read_text(encoding="utf-8").startswith("$ medtune train"):  # the runner is in charge
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert studio.runs.get(run.id).status == "running"
    studio.runs.stop(run.id)
    assert _wait(studio.runs, run.id, timeout=60) == "stopped"
    ended = json.loads((studio.directory / "runs" / run.id / "exit.json").read_text(encoding="utf-8"))
    assert ended["stopped"] is True and ended["returncode"] == 130
    with pytest.raises(ValueError, match="nothing to stop"):
        studio.runs.stop(run.id)
    # a run whose process vanished without an exit record (killed, machine restarted) is listed as lost
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lost_dir = studio.directory / "runs" / "20000101-000000-eval"
    lost_dir.mkdir(parents=True)
    (lost_dir / "state.json").write_text(json.dumps({"id": lost_dir.name, "verb": "eval", "overrides": [],
                                                     "options": [], "started": 0.0, "pid": gone.pid}))
    restarted = Studio.open(None, studio.overrides, None, None)
    listed = {r.id: r.status for r in restarted.runs.list()}
    assert listed == {run.id: "stopped", lost_dir.name: "lost"}
    page = TestClient(create_app(restarted), base_url="http://127.0.0.1").get("/run")
    assert f'data-run="{run.id}"' in page.text and "s-lost" in page.text


def test_progress_comes_from_the_lines_the_trainer_prints(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with log.open("w", encoding="utf-8") as handle:
        bar = SimpleNamespace(write=lambda text, file=None: handle.write("\r" + " " * 20 + "\r\x1b[A" + text + "\n"))
        line = ProgressLine()
        line.training_bar = bar
        for step, logs in ((2, {"loss": 3.5, "tokens_per_second": 1234.4, "peak_memory_gib": 1.5}),
                           (4, {"loss": 2.25, "tokens_per_second": 1500.0, "peak_memory_gib": 1.75}),
                           (4, {"eval_loss": 2.5})):
            handle.write(f" 40%|████      | {step}/10 [00:02<00:03, 1.2it/s]")
            state = SimpleNamespace(is_world_process_zero=True, global_step=step, max_steps=10)
            line.on_log(None, state, None, logs)
    shown = progress(log)
    assert [p["step"] for p in shown["points"]] == [2, 4, 4]
    assert shown["points"][0] == {"step": 2, "max_steps": 10, "loss": 3.5, "tokens_per_second": 1234.0,
                                  "peak_memory_gib": 1.5}  # as printed: "1,234 tokens/s"
    assert shown["latest"] == {"step": 4, "max_steps": 10, "loss": 2.25, "tokens_per_second": 1500.0,
                               "peak_memory_gib": 1.75, "eval_loss": 2.5}
    assert all("\x1b" not in text and "\r" not in text for text in log_lines(log))
