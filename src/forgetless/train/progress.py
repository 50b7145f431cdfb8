"""What the user sees while a run trains (see `forgetless.console` for the modes).

- live (a terminal): a rich progress bar per stage with tokens, elapsed time, ETA, loss, tokens/s
  and the latest evaluation.
- plain (a log file, a pipe, CI): at every log interval one line with the stage, tokens, loss, LR,
  tokens/s and ETA; one line (or a few, split between sources) per evaluation. Lines stay within
  `console.LINE_WIDTH` characters and are never cut.
- json: the same records as JSON objects on stdout (`progress`, `eval`, `stage`, `message`).
- quiet: nothing but errors.
"""

from __future__ import annotations

import time
from typing import Any

from forgetless.console import (
    fit_lines,
    format_duration,
    plain_text,
    resolve_progress,
    write_json_line,
    write_line,
)


class ProgressDisplay:
    """Stage, tokens, ETA, tokens/s, loss and the latest evaluation, in the mode `progress` asks for
    (`auto`, `live`, `plain`, `json` or `quiet`); `quiet=True` is `progress="quiet"`."""

    def __init__(self, *, quiet: bool = False, progress: str = "auto") -> None:
        self.mode = "quiet" if quiet else resolve_progress(progress)
        self.live = self.mode == "live"
        self.quiet = self.mode == "quiet"
        self._console: Any = None
        self._progress: Any = None
        self._task: Any = None
        self._stage = ""
        self._stage_name = ""
        self._stage_index = 0
        self._stage_count = 0
        self._stage_total = 0
        self._latest_eval = ""
        self._clock: tuple[float, int] | None = None  # (time, stage tokens) when the stage (re)started

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    def message(self, text: str) -> None:
        if self.mode == "live":
            self.console.print(text, highlight=False)
        elif self.mode == "plain":
            write_line(plain_text(text))
        elif self.mode == "json":
            write_json_line({"kind": "message", "text": plain_text(text)})

    def start_stage(self, name: str, index: int, count: int, total_tokens: int, done_tokens: int = 0) -> None:
        self._stage = f"stage {index + 1}/{count} {name}"
        self._stage_name, self._stage_index, self._stage_count = name, index, count
        self._stage_total = total_tokens
        self._clock = (time.monotonic(), done_tokens)
        if self.mode == "live":
            if self._progress is None:
                from rich.progress import (
                    BarColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                    TimeRemainingColumn,
                )

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
        elif self.mode == "plain":
            write_line(f"{self._stage}: {total_tokens:,} tokens")
        elif self.mode == "json":
            write_json_line(
                {
                    "kind": "stage",
                    "stage": name,
                    "stage_index": index,
                    "stages": count,
                    "stage_total_tokens": total_tokens,
                    "stage_tokens": done_tokens,
                }
            )

    @property
    def _short_stage(self) -> str:
        return f"{self._stage_index + 1}/{self._stage_count} {self._stage_name}"

    def eta_s(self, stage_tokens: int) -> float | None:
        """Seconds left in the stage at the pace since it (re)started, evaluations included."""
        if self._clock is None:
            return None
        since, start_tokens = self._clock
        done = stage_tokens - start_tokens
        if done <= 0:
            return None
        return (time.monotonic() - since) * max(0, self._stage_total - stage_tokens) / done

    def set_eval(self, record: dict[str, Any]) -> None:
        """Show an evaluation: an `eval` line of metrics.jsonl."""
        items = eval_items(record)
        self._latest_eval = ", ".join(items)
        if self.mode == "plain":
            if record.get("point") == "base":
                head = "base model eval: "
            else:
                head = f"[{self._short_stage}] eval at {record.get('stage_tokens', 0):,} tok: "
            for line in fit_lines(head, items):
                write_line(line)
        elif self.mode == "json":
            write_json_line(
                {k: v for k, v in record.items() if not k.endswith("/outcomes")}
                | {"stage_total_tokens": self._stage_total}
            )

    def update(
        self, stage_tokens: int, *, loss: float, tokens_per_s: float, lr: float, step: int | None = None
    ) -> None:
        """Show the train line of a log interval: `stage_tokens` done of the stage, the mean loss,
        tokens per second and learning rate of the interval, and the run's optimizer `step`."""
        eta = self.eta_s(stage_tokens)
        if self.mode == "live" and self._progress is not None:
            status = f"loss {loss:.3f}  {tokens_per_s:,.0f} tok/s  lr {lr:.2e}"
            if self._latest_eval:
                status += f"  | {self._latest_eval}"
            self._progress.update(self._task, completed=stage_tokens, status=status)
        elif self.mode == "plain":
            pct = 100.0 * stage_tokens / max(1, self._stage_total)
            fields = [
                f"{stage_tokens:,}/{self._stage_total:,} tok {pct:.0f}%",
                f"loss {loss:.3f}",
                f"lr {lr:.2e}",
                f"{tokens_per_s:,.0f} tok/s",
                f"ETA {format_duration(eta)}",
            ]
            for line in fit_lines(f"[{self._short_stage}] ", fields, separator="  "):
                write_line(line)
        elif self.mode == "json":
            write_json_line(
                {
                    "kind": "progress",
                    "stage": self._stage_name,
                    "stage_index": self._stage_index,
                    "stages": self._stage_count,
                    "step": step,
                    "stage_tokens": stage_tokens,
                    "stage_total_tokens": self._stage_total,
                    "loss": loss,
                    "lr": lr,
                    "tokens_per_s": tokens_per_s,
                    "eta_s": eta,
                }
            )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def eval_items(record: dict[str, Any]) -> list[str]:
    """`general loss 3.412`, `security-mcq acc 24.1%`: the held-out losses and MCQ accuracies of an
    eval line."""
    items = []
    for key, value in record.items():
        if not isinstance(value, (int, float)):
            continue
        if key.startswith("eval/") and key.endswith("/loss"):
            items.append(f"{key[len('eval/') : -len('/loss')]} loss {value:.3f}")
        elif key.startswith("mcq/") and key.endswith("/acc"):
            items.append(f"{key[len('mcq/') : -len('/acc')]} acc {value:.1%}")
    return items
