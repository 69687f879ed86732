"""A fuzz worker process: ``python fuzz_worker.py WORKDIR`` reads ``family seed`` lines on stdin and answers one JSON
line per case on its original stdout (``{"outcome": "error" | "ok" | "crash", "detail": ...}``).

It runs under an address-space limit (``FUZZ_MEMORY_BYTES`` more than it uses at start); the parent kills it when a
case exceeds the time limit (a hang) and starts a new one.  Everything the code under test prints goes to
/dev/null, so only the answers reach the parent.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from fuzz_cases import Fixtures, run_case  # noqa: E402 - after the redirection (imports may print)

    fixtures = Fixtures(Path(sys.argv[1]))
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = vm + int(os.environ.get("FUZZ_MEMORY_BYTES", str(3 * 2**30)))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    protocol.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        family, seed = line.split()
        try:
            outcome = run_case(fixtures, family, int(seed))
            detail = ""
        except MemoryError:
            outcome, detail = "crash", "MemoryError (address-space limit)"
        except BaseException as err:  # noqa: BLE001 - every other exception is a crash to report
            frames = traceback.extract_tb(err.__traceback__)
            where = next((f"{Path(fr.filename).name}:{fr.lineno}" for fr in reversed(frames)
                          if "neuro_hw" in fr.filename or "emulator" in fr.filename), "?")  # fmt: skip
            outcome, detail = "crash", f"{type(err).__name__} at {where}: {str(err)[:300]}"
        protocol.write(json.dumps({"outcome": outcome, "detail": detail}) + "\n")


if __name__ == "__main__":
    main()
