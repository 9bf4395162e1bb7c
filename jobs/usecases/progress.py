"""Driver progress: a live bar on a terminal, periodic log lines otherwise."""

import logging
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

log = logging.getLogger("troop")


class UnitProgress:
    """Counts units, samples and tokens; shows units done, samples, tokens/s and ETA."""

    def __init__(self, total_units: int, total_samples: int, label: str = "generate", log_every: float = 10.0):
        self.total_units, self.total_samples, self.label = total_units, total_samples, label
        self.units = self.samples = self.tokens = 0
        self.started = time.monotonic()
        self._log_every, self._last_log = log_every, 0.0
        self._bar = None
        if sys.stderr.isatty():
            self._bar = Progress(
                TextColumn(f"[bold]{label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("units  {task.fields[samples]:,} samples  {task.fields[rate]:,.0f} tok/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self._task = self._bar.add_task(label, total=total_units, samples=0, rate=0.0)

    def __enter__(self):
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        else:
            self._log_line()

    @property
    def tokens_per_second(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.tokens / elapsed if elapsed > 0 else 0.0

    def advance(self, samples: int, tokens: int) -> None:
        self.units += 1
        self.samples += samples
        self.tokens += tokens
        if self._bar is not None:
            self._bar.update(self._task, completed=self.units, samples=self.samples, rate=self.tokens_per_second)
        elif time.monotonic() - self._last_log >= self._log_every:
            self._log_line()

    def _log_line(self) -> None:
        self._last_log = time.monotonic()
        elapsed = self._last_log - self.started
        eta = elapsed / self.units * (self.total_units - self.units) if self.units else float("nan")
        log.info(
            "%s: %d/%d units, %d/%d samples, %.0f tok/s, elapsed %.0fs, ETA %.0fs",
            self.label, self.units, self.total_units, self.samples, self.total_samples,
            self.tokens_per_second, elapsed, eta,
        )
