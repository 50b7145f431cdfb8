"""What the user sees while a run trains: a live display on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressDisplay:
    """Stage, tokens, ETA, tokens/s, loss and the latest evaluation.

    On a TTY a rich progress bar; when not a TTY (logs, CI) one plain line per update, at most every
    `plain_every_s` seconds. `quiet` shows nothing but messages.
    """

    def __init__(self, *, quiet: bool = False, plain_every_s: float = 10.0) -> None:
        self.console = Console(stderr=True)
        self.live = (not quiet) and sys.stderr.isatty()
        self.quiet = quiet
        self.plain_every_s = plain_every_s
        self._last_plain = 0.0
        self._progress: Progress | None = None
        self._task: Any = None
        self._stage = ""
        self._stage_total = 0
        self._latest_eval = ""

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def start_stage(self, name: str, index: int, count: int, total_tokens: int, done_tokens: int = 0) -> None:
        self._stage = f"stage {index + 1}/{count} {name}"
        self._stage_total = total_tokens
        if self.live:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed:,.0f}/{task.total:,.0f} tok"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    TextColumn("{task.fields[status]}"),
                    console=self.console,
                    transient=False,
                )
                self._progress.start()
            self._task = self._progress.add_task(
                self._stage, total=total_tokens, completed=done_tokens, status=""
            )
        elif not self.quiet:
            self.message(f"{self._stage}: {total_tokens:,} tokens")

    def set_eval(self, summary: str) -> None:
        self._latest_eval = summary
        if not self.live and not self.quiet:
            self.message(f"  eval {summary}")

    def update(self, stage_tokens: int, *, loss: float, tokens_per_s: float, lr: float) -> None:
        status = f"loss {loss:.3f}  {tokens_per_s:,.0f} tok/s  lr {lr:.2e}"
        if self._latest_eval:
            status += f"  | {self._latest_eval}"
        if self.live and self._progress is not None:
            self._progress.update(self._task, completed=stage_tokens, status=status)
        elif not self.quiet:
            now = time.monotonic()
            if now - self._last_plain >= self.plain_every_s or stage_tokens >= self._stage_total:
                self._last_plain = now
                pct = 100.0 * stage_tokens / max(1, self._stage_total)
                self.message(
                    f"{self._stage}: {stage_tokens:,}/{self._stage_total:,} tok ({pct:.0f}%)  {status}"
                )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
