"""The Compare page's backend: it says what is missing before any weights load, and a retrained adapter is
asked instead of the one loaded before."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi.testclient import TestClient

from finetune.studio import Studio, create_app
from finetune.studio._compare import weights_stamp


def _studio(tmp_path: Path, *extra: str) -> Studio:
    return Studio.open(None, [f"output_dir={tmp_path}", f"model.base={tmp_path / 'base-model'}", *extra], None, None)


def test_compare_without_a_tuned_model_says_which_stage_to_run(tmp_path: Path) -> None:
    client = TestClient(create_app(_studio(tmp_path, "export.enabled=false", "eval.tuned=adapter")),
                        base_url="http://127.0.0.1")
    response = client.post("/api/compare", json={"prompt": "Здравствуйте", "max_tokens": 4})
    assert response.status_code == 400 and "run `medtune train` first" in response.json()["error"]
    merged = TestClient(create_app(_studio(tmp_path)), base_url="http://127.0.0.1")
    response = merged.post("/api/compare", json={"prompt": "Здравствуйте", "max_tokens": 4})
    assert response.status_code == 400 and "run `medtune export` first" in response.json()["error"]
    empty = merged.post("/api/compare", json={"prompt": "   ", "max_tokens": 4})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]


def test_the_weights_stamp_changes_when_the_adapter_is_written_again(tmp_path: Path) -> None:
    studio = _studio(tmp_path, "export.enabled=false", "eval.tuned=adapter")
    adapter = studio.recipe.adapter_dir
    adapter.mkdir(parents=True)
    weights = adapter / "adapter_model.safetensors"
    weights.write_bytes(b"first")
    before = weights_stamp(studio.recipe)
    assert before == weights_stamp(studio.recipe) and str(weights) in before[0][0]
    weights.write_bytes(b"second")
    os.utime(weights, ns=(before[0][1] + 10**9, before[0][1] + 10**9))
    assert weights_stamp(studio.recipe) != before
