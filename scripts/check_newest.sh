#!/usr/bin/env bash
# Install the newest releases that pyproject.toml allows, without constraints.txt, into a fresh venv, and run the
# test suite there: what a new user gets on the day a library ships. Prints the versions that differ from the lock.
#   scripts/check_newest.sh [pytest args…]     e.g. scripts/check_newest.sh -x -q
# TORCH_SPEC picks torch (default: the README's torch==2.13.0; TORCH_SPEC=torch for the newest); VENV keeps the venv
# somewhere of your choosing.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$(mktemp -d)/venv}"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
"$venv/bin/python" -m pip install --quiet "$torch_spec"
# torch stays as TORCH_SPEC says (an eager upgrade would otherwise fetch the newest CUDA build); the rest is newest.
echo "$torch_spec" > "$venv/torch-constraint.txt"
"$venv/bin/python" -m pip install --quiet --upgrade --upgrade-strategy eager -c "$venv/torch-constraint.txt" -e "$repo[dev]"
echo "== versions that differ from constraints.txt (lock → newest)"
"$venv/bin/python" - "$repo/constraints.txt" <<'PY'
import sys
from importlib.metadata import distributions

def key(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")

locked = {}
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.split("#", 1)[0].strip()
    if "==" in line:
        name, version = line.split("==", 1)
        locked[key(name)] = version
installed = {key(d.metadata["Name"]): d.version for d in distributions()}
changed = [(n, locked[n], v.split("+")[0]) for n, v in sorted(installed.items()) if n in locked
           and locked[n] != v.split("+")[0]]
for name, old, new in changed:
    print(f"  {name}: {old} → {new}")
new = sorted(set(installed) - set(locked) - {"medtune", "pip", "setuptools", "wheel"})
if new:
    print("  not in the lock: " + ", ".join(f"{n} {installed[n]}" for n in new))
if not changed and not new:
    print("  none: the lock holds the newest releases")
PY
echo "== tests with the newest releases ($venv)"
cd "$repo"
exec "$venv/bin/python" -m pytest -p no:cacheprovider "${@:--q}"
