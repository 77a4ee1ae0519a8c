"""Record, or compare against, the outputs that must not change when code moves without changing behaviour.

    python scripts/golden_outputs.py record golden.json     # on the code before the change
    python scripts/golden_outputs.py compare golden.json    # on the code after it; exits 1 on any difference
    … --repo DIR                                            # the code of another checkout (a git worktree)

What it records, each with fixed seeds, through the `medtune` command line (whose verbs and flags are public):
- `prepare --source` on each bundled sample file and on each PII test-set file (its notes as clinic records): the
  sha256 of every output file (the data card as JSON), with the run's folders and the checkout written as
  placeholders first;
- the de-identification scores of `scripts/bench_deid.py` (its recall/precision lines; timing lines left out);
- `medtune run recipes/tiny-demo.yaml` in a fresh folder: the numbers of `eval/report.json`, `data/data_card.json`,
  and the sha256 of each exported file in `merged/manifest.json`.
A run takes several minutes on 2 cores (the demo trains a model).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PII_DIAGNOSIS = {"ru": "Артериальная гипертензия", "kk": "Артериялық гипертензия", "zh": "高血压"}
TIMING = re.compile(r"\bms\b")
VOLATILE_KEYS = {"seconds", "wall_seconds", "elapsed", "created", "generated_at", "duration_s", "endpoint"}


def _env() -> dict[str, str]:
    """This checkout's code first, whatever is installed, so a second worktree records its own outputs."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}


def _medtune(args: list[str], cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "finetune", *args], cwd=cwd, env=_env(), capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"medtune {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _placeholders(text: str, root: str) -> str:
    return text.replace(root, "<out>").replace(str(REPO), "<repo>")


def _normalised(value: Any, root: str) -> Any:
    """The value with the run's folder and the checkout written as placeholders and volatile keys dropped."""
    if isinstance(value, dict):
        return {k: _normalised(v, root) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_normalised(v, root) for v in value]
    if isinstance(value, str):
        return _placeholders(value, root)
    return value


def _file_digest(path: Path, root: str) -> Any:
    """A data card as its normalised JSON (readable when it differs); any other file as a sha256."""
    if path.name == "data_card.json":
        return _normalised(json.loads(path.read_text(encoding="utf-8")), root)
    return hashlib.sha256(_placeholders(path.read_text(encoding="utf-8"), root).encode()).hexdigest()


def _pii_as_clinic_records(source: Path, work: Path) -> Path:
    """The PII test set's notes as clinic records (note → history, one patient each), so `prepare` takes them."""
    target = work / "pii-records" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8") as rows, target.open("w", encoding="utf-8") as out:
        for line in rows:
            row = json.loads(line)
            record = {"record_id": row["id"], "patient_id": row["id"], "history": row["text"],
                      "diagnosis": PII_DIAGNOSIS[source.stem]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return target


def prepared_outputs(work: Path) -> dict[str, dict[str, Any]]:
    hashes: dict[str, dict[str, Any]] = {}
    sources = [(s, "auto") for s in sorted((REPO / "data_prep" / "samples").glob("*.jsonl"))]
    sources += [(_pii_as_clinic_records(s, work), "clinic_records")
                for s in sorted((REPO / "data_prep" / "pii_testset").glob("*.jsonl"))]
    for source, format_name in sources:
        name = f"{source.parent.name}/{source.name}"
        out = work / "prepared" / name.replace("/", "-")
        _medtune(["prepare", "--source", str(source), "--format", format_name, "--out", str(out), "--workers", "1"],
                 cwd=work)
        hashes[name] = {p.name: _file_digest(p, str(work)) for p in sorted(out.iterdir())
                        if p.is_file() and not p.name.startswith(".")}
    return hashes


def deid_scores() -> list[str]:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_deid.py")], cwd=REPO, env=_env(),
                            capture_output=True, text=True, check=True)
    return [line.rstrip() for line in result.stdout.splitlines() if line.strip() and not TIMING.search(line)]


def demo_outputs(work: Path) -> dict[str, Any]:
    _medtune(["run", str(REPO / "recipes" / "tiny-demo.yaml")], cwd=work)
    run = work / "runs" / "tiny-demo"
    root = str(work)
    report = json.loads((run / "eval" / "report.json").read_text(encoding="utf-8"))
    card = json.loads((run / "data" / "data_card.json").read_text(encoding="utf-8"))
    manifest = json.loads((run / "merged" / "manifest.json").read_text(encoding="utf-8"))
    files = manifest["files"]
    entries = files.items() if isinstance(files, dict) else ((f["path"], f) for f in files)
    exported = {path: (entry["sha256"] if isinstance(entry, dict) else entry) for path, entry in entries}
    return {"report": _normalised(report, root), "data_card": _normalised(card, root), "manifest_sha256": exported}


def record() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        return {"prepare": prepared_outputs(work), "bench_deid": deid_scores(), "demo": demo_outputs(work)}


def differences(old: Any, new: Any, where: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = [f"{where}.{k}: only before" for k in old.keys() - new.keys()]
        found += [f"{where}.{k}: only after" for k in new.keys() - old.keys()]
        for key in old.keys() & new.keys():
            found += differences(old[key], new[key], f"{where}.{key}")
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new, strict=True)) for d in differences(a, b, f"{where}[{i}]")]
    if isinstance(old, float) and isinstance(new, float) and old != old and new != new:
        return []  # NaN on both sides
    return [] if old == new else [f"{where}: {json.dumps(old, ensure_ascii=False)[:200]} → "
                                  f"{json.dumps(new, ensure_ascii=False)[:200]}"]


def main() -> int:
    global REPO  # the checkout every step reads; --repo points it at another one
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("record", "compare"))
    parser.add_argument("path", type=Path)
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout whose code runs (default: this one)")
    args = parser.parse_args()
    REPO = args.repo.resolve()
    outputs = record()
    if args.mode == "record":
        args.path.write_text(json.dumps(outputs, ensure_ascii=False, indent=1, sort_keys=True), encoding="utf-8")
        print(f"recorded {args.path}")
        return 0
    found = differences(json.loads(args.path.read_text(encoding="utf-8")), outputs)
    print("\n".join(found) if found else "identical: prepare hashes, de-identification scores, demo report, data "
          "card and export manifest")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
