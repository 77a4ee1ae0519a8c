"""Runs started from the studio: each one `medtune VERB RECIPE overrides` in a process of its own, with its state
on disk under the run's output directory (`studio/runs/ID/`), so runs can be stopped and are listed with their
status after the studio restarts."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from finetune.studio._runner import EXIT_NAME

VERBS = ("prepare", "train", "export", "eval", "run")
STATE_NAME = "state.json"
LOG_NAME = "log.txt"
_OVERRIDE = re.compile(r"^[A-Za-z_][\w.\[\]-]*=.*$", re.DOTALL)


@dataclass
class RunState:
    """What a run is: its command, its process and how it ended (`status` is worked out from these)."""

    id: str
    verb: str
    overrides: list[str]
    options: list[str]
    started: float
    pid: int | None = None
    returncode: int | None = None
    stopped: bool = False
    ended: float | None = None
    stop_requested: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.ended is not None:
            return "stopped" if self.stopped else "finished" if self.returncode == 0 else "failed"
        if self.pid is not None and _alive(self.pid):
            return "stopping" if self.stop_requested else "running"
        # gone without an exit record: stopped before it could write one, or killed (or the machine restarted)
        return "stopped" if self.stop_requested else "lost"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.is_file():  # a zombie (exited, not yet reaped) is not running
        return stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    return True


def check_overrides(overrides: list[str]) -> list[str]:
    """Overrides as the CLI takes them (`section.key=value`); anything else (a flag, a path) is refused."""
    cleaned = [o.strip() for o in overrides if o.strip()]
    for item in cleaned:
        if not _OVERRIDE.match(item):
            raise ValueError(f"{item!r}: an override is section.key=value")
    return cleaned


class RunStore:
    """The runs of one recipe: start, stop, list, and read one's log."""

    def __init__(self, directory: Path, recipe_path: str | None, base_overrides: list[str], profile: str | None):
        self.directory = directory
        self.recipe_path = recipe_path
        self.base_overrides = base_overrides
        self.profile = profile
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def command(self, verb: str, overrides: list[str], options: list[str]) -> list[str]:
        """The `medtune` arguments of a run: the same verb, recipe, profile and overrides as on the command line."""
        args = [verb]
        if self.recipe_path is not None:
            args.append(self.recipe_path)
        args.extend([*self.base_overrides, *overrides])
        if self.profile is not None:
            args.extend(["--profile", self.profile])
        return [*args, *options]

    def start(self, verb: str, overrides: list[str], resume: bool = False) -> RunState:
        if verb not in VERBS:
            raise ValueError(f"{verb!r}: a run is one of {', '.join(VERBS)}")
        overrides = check_overrides(overrides)
        options = ["--resume"] if resume and verb == "train" else []
        with self._lock:
            if active := [r.id for r in self.list() if r.status in ("running", "stopping")]:
                raise ValueError(f"run {active[0]} is still going: stop it or wait for it to end")
            run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{verb}"
            run_dir = self.directory / run_id
            run_dir.mkdir(parents=True, exist_ok=False)
            state = RunState(run_id, verb, overrides, options, started=time.time())
            argv = [sys.executable, "-u", str(Path(__file__).with_name("_runner.py")), str(run_dir),
                    *self.command(verb, overrides, options)]
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
            with (run_dir / LOG_NAME).open("wb") as log:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=env, start_new_session=True)
            state.pid = proc.pid
            self._procs[run_id] = proc
            self._save(state)
            threading.Thread(target=self._reap, args=(run_id, proc), daemon=True).start()
            return state

    def _reap(self, run_id: str, proc: subprocess.Popen) -> None:
        """Wait for the process so it leaves no zombie; its exit record is written by the process itself."""
        proc.wait()
        self._procs.pop(run_id, None)

    def stop(self, run_id: str, grace_s: float = 20.0) -> RunState:
        """Ask the run to stop (SIGINT to its process group, as Ctrl-C would); SIGKILL after `grace_s`."""
        state = self.get(run_id)
        if state.status not in ("running", "stopping") or state.pid is None:
            raise ValueError(f"run {run_id} is {state.status}: nothing to stop")
        state.stop_requested = True
        self._save(state)
        pid = state.pid
        os.killpg(pid, signal.SIGINT)

        def escalate() -> None:
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline:
                if not _alive(pid):
                    return
                time.sleep(0.2)
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                return

        threading.Thread(target=escalate, daemon=True).start()
        return state

    def _save(self, state: RunState) -> None:
        path = self.directory / state.id / STATE_NAME
        record = {k: v for k, v in asdict(state).items() if k not in ("returncode", "stopped", "ended")}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)

    def get(self, run_id: str) -> RunState:
        if not re.fullmatch(r"[\w-]+", run_id) or not (self.directory / run_id / STATE_NAME).is_file():
            raise KeyError(run_id)
        run_dir = self.directory / run_id
        state = RunState(**json.loads((run_dir / STATE_NAME).read_text(encoding="utf-8")))
        exit_path = run_dir / EXIT_NAME
        if exit_path.is_file():
            ended = json.loads(exit_path.read_text(encoding="utf-8"))
            state.returncode, state.stopped, state.ended = ended["returncode"], ended["stopped"], ended["ended"]
        return state

    def list(self) -> list[RunState]:
        """Every run of this recipe, newest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in sorted(self.directory.iterdir(), reverse=True):
            if (path / STATE_NAME).is_file():
                found.append(self.get(path.name))
        return found

    def log_path(self, run_id: str) -> Path:
        self.get(run_id)
        return self.directory / run_id / LOG_NAME
