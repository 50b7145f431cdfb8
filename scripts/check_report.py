#!/usr/bin/env python3
"""Render a forgetless HTML report in headless Chromium and check what a reader would see.

    python scripts/check_report.py report.html [--screenshot shot.png] [--expect-plot loss ...]

Checks, each of which fails the run (exit 1):
- the page is self-contained: no src/href to another file or a network address;
- Chromium loads it with no console message (the report has no scripts, so any message is an
  error, e.g. an SVG attribute Chromium could not parse);
- the rendered DOM has at least one plot (`<svg data-plot=KIND>`) of every expected kind and one
  table (`<table data-table=NAME>`) of every expected name;
- the screenshot is a PNG of the window size that is not blank.

Installs nothing: it needs a Chromium binary (`apt-get install chromium` on Debian). Exit code 2
when there is none, or the report file does not exist. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
import tempfile
import zlib
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
WINDOW = (1280, 2000)
DEFAULT_PLOTS = ("scatter", "loss", "lr")
DEFAULT_TABLES = ("overview", "sources", "stages")
# Chromium prints page console messages as "[pid:tid:time:INFO:CONSOLE:line] "message", source: ..."
CONSOLE_LINE = re.compile(r":CONSOLE(?::\d+|\(\d+\))\]\s*(.*)")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)


class _Inventory(HTMLParser):
    """Counts plots and tables by their data-plot / data-table names, and outside references."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: dict[str, int] = {}
        self.tables: dict[str, int] = {}
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "svg" and values.get("data-plot"):
            name = values["data-plot"] or ""
            self.plots[name] = self.plots.get(name, 0) + 1
        if tag == "table" and values.get("data-table"):
            name = values["data-table"] or ""
            self.tables[name] = self.tables.get(name, 0) + 1
        for attr in ("src", "href", "xlink:href"):
            target = values.get(attr)
            if target is not None and not target.startswith(("#", "data:")):
                self.external.append(f"<{tag} {attr}={target!r}>")


def inventory(html: str) -> _Inventory:
    parser = _Inventory()
    parser.feed(html)
    parser.close()
    return parser


def run_chromium(chromium: str, url: str, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="check-report-") as profile:
        return subprocess.run(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def console_messages(stderr: str) -> list[str]:
    return [match.group(1) for match in map(CONSOLE_LINE.search, stderr.splitlines()) if match]


def png_facts(path: Path) -> dict:
    """Width and height of a PNG, and whether it is blank.

    Blank means the decompressed image data holds at most 4 distinct byte values: a page of one
    colour, whatever PNG row filters Chromium chose. Rendered text and plots give hundreds.
    """
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path} is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    idat, offset = b"", 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind == b"IDAT":
            idat += data[offset + 8 : offset + 8 + length]
        offset += 12 + length
    distinct = len(set(zlib.decompress(idat)))
    return {"width": width, "height": height, "distinct_bytes": distinct, "blank": distinct <= 4}


def check(
    report: Path,
    *,
    screenshot: Path,
    chromium: str = CHROMIUM,
    plots: tuple[str, ...] = DEFAULT_PLOTS,
    tables: tuple[str, ...] = DEFAULT_TABLES,
    timeout: float = 120.0,
) -> dict:
    """Run every check; the result has `ok`, `problems` and what was found."""
    url = report.resolve().as_uri()
    problems: list[str] = []

    source = inventory(report.read_text(encoding="utf-8"))
    problems += [f"not self-contained: {ref}" for ref in source.external]

    dom_run = run_chromium(chromium, url, ["--dump-dom"], timeout)
    if dom_run.returncode != 0:
        problems.append(f"chromium --dump-dom exited with {dom_run.returncode}: {dom_run.stderr[-500:]}")
    messages = console_messages(dom_run.stderr)
    problems += [f"console: {m}" for m in messages]
    rendered = inventory(dom_run.stdout)
    problems += [f"no plot of kind {k!r} (svg data-plot)" for k in plots if not rendered.plots.get(k)]
    problems += [f"no table named {t!r} (table data-table)" for t in tables if not rendered.tables.get(t)]

    shot_run = run_chromium(
        chromium,
        url,
        [f"--screenshot={screenshot.resolve()}", f"--window-size={WINDOW[0]},{WINDOW[1]}"],
        timeout,
    )
    problems += [
        f"console (screenshot pass): {m}" for m in console_messages(shot_run.stderr) if m not in messages
    ]
    image: dict = {}
    if not screenshot.is_file():
        problems.append(f"no screenshot written (chromium exited with {shot_run.returncode})")
    else:
        image = png_facts(screenshot)
        if (image["width"], image["height"]) != WINDOW:
            problems.append(
                f"screenshot is {image['width']}x{image['height']}, expected {WINDOW[0]}x{WINDOW[1]}"
            )
        if image["blank"]:
            problems.append("screenshot is blank")
    return {
        "ok": not problems,
        "problems": problems,
        "plots": rendered.plots,
        "tables": rendered.tables,
        "console": messages,
        "screenshot": str(screenshot),
        "image": image,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the HTML file to check")
    parser.add_argument(
        "--screenshot", type=Path, help="where to write the PNG (default: next to the report)"
    )
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser binary (default {CHROMIUM})")
    parser.add_argument(
        "--expect-plot", action="append", help=f"a data-plot kind that must appear (default {DEFAULT_PLOTS})"
    )
    parser.add_argument(
        "--expect-table",
        action="append",
        help=f"a data-table name that must appear (default {DEFAULT_TABLES})",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each browser pass")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: {args.report}: no such file", file=sys.stderr)
        return 2
    if not Path(args.chromium).is_file():
        print(
            f"error: {args.chromium}: no Chromium binary; install it with `apt-get install -y chromium`",
            file=sys.stderr,
        )
        return 2
    result = check(
        args.report,
        screenshot=args.screenshot or args.report.with_suffix(".png"),
        chromium=args.chromium,
        plots=tuple(args.expect_plot or DEFAULT_PLOTS),
        tables=tuple(args.expect_table or DEFAULT_TABLES),
        timeout=args.timeout,
    )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
