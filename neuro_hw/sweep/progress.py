"""A progress bar across a sweep (tqdm on stderr): runs done of the runs to do, failures, skipped (resumed) runs."""

from __future__ import annotations

import sys
from typing import Any


class Progress:
    """Counts finished runs (rows); shows a tqdm bar when ``enabled`` (and a plain line at the end when not).

    Parameters
    ----------
    total:
        Runs (point x seed) to run now.
    description:
        The bar's label (the sweep's name).
    skipped:
        Runs already in the table (resumed), shown in the bar's postfix.
    """

    def __init__(self, total: int, description: str, skipped: int = 0, enabled: bool = True) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.skipped = skipped
        self._bar: Any = None
        if enabled and total > 0:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit="run", file=sys.stderr, dynamic_ncols=True)
            self._bar.set_postfix(self._postfix(), refresh=False)

    def _postfix(self) -> dict[str, int]:
        return {"failed": self.failed, "skipped": self.skipped}

    def update(self, runs: int, failed: int = 0, skipped: int = 0) -> None:
        """``runs`` more runs finished, ``failed`` of them with an error; ``skipped``: runs found done (counted in
        the bar's total, not in :attr:`done`)."""
        if skipped:
            self.skipped += skipped
            if self._bar is not None:
                self._bar.update(skipped)
            runs -= skipped
        self.done += runs
        self.failed += failed
        if self._bar is not None:
            self._bar.set_postfix(self._postfix(), refresh=False)
            self._bar.update(runs)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
