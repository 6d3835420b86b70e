"""Progress a person can read on a long job: one bar per phase, with frames, steps or clips, rate and ETA (tqdm).

Bars show when the ``diffusion_vas`` logger is at INFO (the command line's default; ``--quiet`` hides them), or
as the caller says, and go to stderr, so the results' log lines and the bars do not mix with anything a script
reads from stdout.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from tqdm import tqdm

logger = logging.getLogger("diffusion_vas")


class Bar:
    """One phase's bar: `update` adds done units; `engine_callback` gives the engine's ``callback(done,
    total)`` for this bar (the engine counts from 0 on every call, the bar keeps adding)."""

    def __init__(self, label: str, total: int | None, unit: str, enabled: bool | None = None):
        shown = logger.isEnabledFor(logging.INFO) if enabled is None else enabled
        self.bar = tqdm(total=total, desc=f"{label:>16}", unit=unit, dynamic_ncols=True, leave=True,
                        disable=not shown)

    def update(self, count: int) -> None:
        self.bar.update(count)

    def engine_callback(self):
        base = self.bar.n

        def callback(done: int, total: int) -> None:
            self.bar.update(base + done - self.bar.n)
        return callback

    def close(self) -> None:
        self.bar.close()


@contextmanager
def phase(label: str, total: int | None, unit: str, enabled: bool | None = None):
    """A `Bar` for the duration of a ``with`` block (``enabled``: None follows the logger)."""
    bar = Bar(label, total, unit, enabled)
    try:
        yield bar
    finally:
        bar.close()
