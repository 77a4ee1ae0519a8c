"""`medtune run recipes/tiny-demo.yaml` in a fresh directory: every stage, then a better held-out loss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.recipe._schema import RESOLVED_RECIPE_NAME

REPO = Path(__file__).resolve().parents[2]


GUARDED_RUN = """
import runpy, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import no_network
no_network.install(Path({log!r}))
sys.argv = ["medtune", "run", {recipe!r}]
runpy.run_module("finetune", run_name="__main__")
"""


@pytest.mark.slow
def test_demo_recipe_runs_end_to_end_without_touching_the_network(tmp_path: Path) -> None:
    """Prepare, train, export, serve and eval, with the hub left in its default (online) mode and any DNS lookup
    or connection outside loopback refused and recorded."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_HUB_OFFLINE", "TRANSFORMERS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    attempts = tmp_path / "network-attempts.log"
    code = GUARDED_RUN.format(tests=str(Path(__file__).parent), log=str(attempts),
                              recipe=str(REPO / "recipes" / "tiny-demo.yaml"))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not attempts.exists(), f"network access outside loopback: {attempts.read_text()}"
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
