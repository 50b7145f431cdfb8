"""How a command shows its progress: a live display, plain log lines, JSON lines, or nothing.

- `live`: rich progress bars, redrawn in place; only when the stream is a terminal.
- `plain`: one line per record, written whole and never wrapped or cut, so that a log file or a
  CI console reads well; records that would pass `LINE_WIDTH` characters are split between items.
- `json`: one JSON object per line on stdout, for schedulers and CI; nothing else goes to stdout.
- `quiet`: nothing but errors.

`auto` (the default) is `live` when stderr, where progress goes, is a terminal, and `plain` when it
goes to a file or a pipe.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from typing import Any, TextIO

PROGRESS_MODES = ("auto", "live", "plain", "json", "quiet")
LINE_WIDTH = 100


def resolve_progress(mode: str | bool, stream: TextIO | None = None) -> str:
    """`live`, `plain`, `json` or `quiet` for a requested mode (`True` means `auto`, `False` quiet)."""
    if mode is True:
        mode = "auto"
    elif mode is False:
        mode = "quiet"
    if mode not in PROGRESS_MODES:
        raise ValueError(f"progress mode {mode!r}: expected one of {', '.join(PROGRESS_MODES)}")
    if mode != "auto":
        return mode
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "live" if callable(isatty) and isatty() else "plain"


def write_line(text: str, stream: TextIO | None = None) -> None:
    """One plain line on `stream` (default stderr), flushed at once."""
    stream = stream if stream is not None else sys.stderr
    stream.write(text + "\n")
    stream.flush()


def write_json_line(record: dict[str, Any], stream: TextIO | None = None) -> None:
    """One JSON object on one line of `stream` (default stdout); non-finite numbers become null."""
    stream = stream if stream is not None else sys.stdout
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
    stream.write(json.dumps(clean, separators=(",", ":")) + "\n")
    stream.flush()


def fit_lines(
    head: str,
    items: Iterable[str],
    *,
    width: int = LINE_WIDTH,
    indent: str = "  ",
    separator: str = ", ",
) -> list[str]:
    """`head` followed by `items` joined with `separator`, split between items into lines of at
    most `width` characters; continuation lines start with `indent`. An item is never cut: one
    longer than the width stands alone on its line."""
    lines: list[str] = []
    current, count = head, 0
    join = separator
    for item in items:
        separator = join if count else ""
        if count and len(current) + len(separator) + len(item) > width:
            lines.append(current)
            current, count = indent + item, 1
        else:
            current, count = current + separator + item, count + 1
    lines.append(current)
    return lines


def plain_text(markup: str) -> str:
    """Text without rich markup (`[bold]x[/bold]` -> `x`)."""
    from rich.text import Text

    try:
        return Text.from_markup(markup).plain
    except Exception:  # noqa: BLE001 - text with brackets that are not markup: show it as it is
        return markup


def format_duration(seconds: float | None) -> str:
    """`1:02:03`, `2:03`, or `-` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
