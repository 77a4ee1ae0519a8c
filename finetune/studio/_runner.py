"""The process a studio run lives in: `python PATH/_runner.py RUN_DIR VERB RECIPE …` runs the `medtune` command
line in this process and writes how it ended into RUN_DIR, so the outcome is known even when the studio that
started it was closed meanwhile. SIGTERM and SIGINT stop the stage as Ctrl-C would. It is started as a file, not
with `-m`, so that nothing heavy (the studio package) is imported before it can catch a stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

EXIT_NAME = "exit.json"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    run_dir, command = Path(argv[0]), argv[1:]
    signal.signal(signal.SIGTERM, _interrupt)
    print("$ medtune " + " ".join(command), flush=True)
    stopped = False
    try:
        from finetune.cli import main as medtune

        code = medtune(command)
    except KeyboardInterrupt:
        code, stopped = 130, True
        print("stopped", file=sys.stderr)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # an error the command line does not turn into a message: its traceback, then the record
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    ended = {"returncode": code, "stopped": stopped, "ended": time.time(), "pid": os.getpid()}
    (run_dir / EXIT_NAME).write_text(json.dumps(ended) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path.pop(0)  # this folder's private modules must not pass for top-level ones
    sys.exit(main(sys.argv[1:]))
