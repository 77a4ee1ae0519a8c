"""A run's progress as the trainer reports it: the progress lines it prints to the run's log while training
(step, loss, tokens/s, peak memory), and `training_metrics.json`'s log history once the adapter is written."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_STEP = re.compile(r"^step (\d+)/(\d+)")
_PARTS = {
    "loss": re.compile(r"(?<!eval )loss ([-\d.eE+naif]+)"),
    "eval_loss": re.compile(r"eval loss ([-\d.eE+naif]+)"),
    "reward": re.compile(r"reward ([-\d.eE+naif]+)"),
    "tokens_per_second": re.compile(r"([\d,.]+) tokens/s"),
    "peak_memory_gib": re.compile(r"peak \S+ ([\d.]+) GiB"),
}


def log_lines(path: Path, limit: int = 200, tail_bytes: int | None = 256 * 1024) -> list[str]:
    """The last `limit` lines of a log (read from its last `tail_bytes`; None: all of it) as a terminal shows
    them: a progress bar's carriage returns keep only the text after the last one on each line, colours go."""
    if not path.is_file():
        return []
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(0 if tail_bytes is None else max(0, size - tail_bytes))
        text = _ANSI.sub("", handle.read().decode("utf-8", errors="replace"))
    lines = [line.rsplit("\r", 1)[-1] if line.rstrip("\r") else "" for line in text.split("\n")]
    lines = [line.rstrip() for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines[-limit:]


def _number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def points_from_log(path: Path) -> list[dict[str, Any]]:
    """One point per progress line the trainer printed: {step, max_steps, loss?, eval_loss?, tokens_per_second?,
    peak_memory_gib?}."""
    points = []
    for line in log_lines(path, limit=10**9, tail_bytes=None):
        piece = line.strip()
        found = _STEP.match(piece)
        if not found or " · " not in piece:
            continue
        point: dict[str, Any] = {"step": int(found.group(1)), "max_steps": int(found.group(2))}
        for name, pattern in _PARTS.items():
            if (value := pattern.search(piece)) and (number := _number(value.group(1))) is not None:
                point[name] = number
        points.append(point)
    return points


def points_from_metrics(adapter_dir: Path) -> list[dict[str, Any]]:
    """The finished run's log history from `training_metrics.json` (empty when there is none yet)."""
    path = adapter_dir / "training_metrics.json"
    if not path.is_file():
        return []
    try:
        history = json.loads(path.read_text(encoding="utf-8")).get("log_history", [])
    except (json.JSONDecodeError, AttributeError):
        return []
    keep = ("step", "loss", "eval_loss", "tokens_per_second", "peak_memory_gib")
    return [{k: entry[k] for k in keep if k in entry} for entry in history if "step" in entry and
            ("loss" in entry or "eval_loss" in entry)]


def progress(log_path: Path, adapter_dir: Path | None = None) -> dict[str, Any]:
    """The points to draw and the latest of each figure."""
    points = points_from_log(log_path)
    if not points and adapter_dir is not None:
        points = points_from_metrics(adapter_dir)
    latest: dict[str, Any] = {}
    for point in points:
        latest.update(point)
    return {"points": points, "latest": latest}
