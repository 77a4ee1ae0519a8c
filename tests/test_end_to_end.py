"""`medtune run recipes/tiny-demo.yaml` in a fresh directory: every stage, then a better held-out loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.recipe import RESOLVED_RECIPE_NAME

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_recipe_runs_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "finetune", "run", str(REPO / "recipes" / "tiny-demo.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "tiny-demo"
    for stage in ("data", "adapter", "merged", "eval"):
        assert (run / stage / RESOLVED_RECIPE_NAME).is_file(), stage
    for split in ("train", "validation", "test"):
        assert (run / "data" / f"{split}.jsonl").stat().st_size > 0
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert (run / "merged" / "model.safetensors").is_file()

    report = json.loads((run / "eval" / "report.json").read_text(encoding="utf-8"))
    metrics = report["metrics"]
    assert {"all", "ru", "kk", "zh"} <= set(metrics)
    for group in ("all", "ru", "kk", "zh"):
        base, tuned = metrics[group]["base"], metrics[group]["tuned"]
        assert base["examples"] == tuned["examples"] > 0
        assert tuned["loss"] < base["loss"], f"{group}: tuned held-out loss must beat the base"
        assert 0 <= tuned["chrf"] <= 100 and 0 <= base["chrf"] <= 100
    assert report["endpoint"].startswith("http://127.0.0.1:")
    markdown = (run / "eval" / "report.md").read_text(encoding="utf-8")
    assert "| ru |" in markdown and "| kk |" in markdown and "| zh |" in markdown
    assert "| ru |" in result.stdout
