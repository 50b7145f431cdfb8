"""Run the fault and bad-input tests and write what they saw into docs/reliability.md.

    python scripts/reliability_report.py [--doc docs/reliability.md]

Runs `tests/train/test_faults.py`, `tests/test_bad_input.py`, the SIGKILL tests of
`tests/train/test_run.py` and the interrupt, run-lock and cache tests (`TESTS`) with pytest (in this
process), collects what each test injected and what happened (the tests record both with pytest's
`record_property`; the SIGKILL tests are described here), and replaces the part of the document
between the two report markers with the tables and their counts. Temporary paths are shown as
`$TMP`. Exits non-zero if any test failed (the tables are written anyway, with the failures marked).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- reliability-report:begin -->"
END = "<!-- reliability-report:end -->"

TESTS = [
    "tests/train/test_faults.py",
    "tests/test_bad_input.py",
    "tests/train/test_run.py::test_resume_after_sigkill_gives_identical_weights",
    "tests/train/test_run.py::test_kill_during_checkpoint_write_keeps_previous_checkpoint",
    "tests/test_interrupts.py",
    "tests/train/test_run_lock.py",
    "tests/test_config.py",
    "tests/data/test_prepare.py::test_a_full_disk_while_preparing_names_the_cache",
    "tests/data/test_prepare.py::test_a_long_document_is_tokenized_in_pieces_with_the_same_tokens",
]

# Tests that record nothing themselves: what they inject, and what they assert happened.
DESCRIBED = {
    "tests/train/test_run.py::test_resume_after_sigkill_gives_identical_weights": (
        "Process",
        "SIGKILL at step 23 or later of 40, between checkpoints (every 4 steps)",
        "`--resume` went on from the latest checkpoint and ended with weights identical to an uninterrupted run",
    ),
    "tests/train/test_run.py::test_kill_during_checkpoint_write_keeps_previous_checkpoint": (
        "Process",
        "SIGKILL in the middle of writing the third checkpoint (its weights half written)",
        "the torn `.tmp-step_12` was never listed; step_8 stayed the latest; `--resume` ended with weights "
        "identical to an uninterrupted run",
    ),
}

CATEGORIES = {
    "Numerical": "Numerical faults",
    "Process": "Process faults",
    "Disk": "A full disk",
    "Memory": "Out of memory",
    "Safety": "Untrusted files",
    "Files": "Files and settings",
    "Bad input": "Bad input (exit code 2, one line, an earlier run left as it was)",
}


class Collector:
    """A pytest plugin that keeps each test's outcome and recorded properties."""

    def __init__(self) -> None:
        self.tests: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        test = self.tests.setdefault(report.nodeid, {"outcome": "passed", "properties": {}})
        if report.failed:
            test["outcome"] = "failed"
        elif report.skipped and test["outcome"] == "passed":
            test["outcome"] = "skipped"
        if report.when == "call":
            test["properties"] = dict(report.user_properties)


def run_tests(basetemp: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    import pytest

    collector = Collector()
    code = pytest.main(
        [*TESTS, "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}", "-m", "not slow"],
        plugins=[collector],
    )
    return int(code), collector.tests


def rows_by_category(tests: dict[str, dict[str, Any]], basetemp: Path) -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {name: [] for name in CATEGORIES}
    for nodeid, test in tests.items():
        props = test["properties"]
        if nodeid in DESCRIBED:
            category, fault, observed = DESCRIBED[nodeid]
        elif "fault" in props:
            category, fault, observed = props["category"], props["fault"], props["observed"]
        elif test["outcome"] == "failed":
            category, fault, observed = _category_of(nodeid), nodeid.split("::")[-1], "(the test failed)"
        else:
            continue  # a supporting check that records no fault of its own
        rows.setdefault(category, []).append(
            {
                "fault": _clean(fault, basetemp),
                "observed": _clean(observed, basetemp),
                "result": {"passed": "as promised", "failed": "**FAILED**"}.get(
                    test["outcome"], test["outcome"]
                ),
                "test": nodeid,
            }
        )
    return rows


def _category_of(nodeid: str) -> str:
    return "Bad input" if "test_bad_input" in nodeid else "Numerical"


def _clean(text: str, basetemp: Path) -> str:
    text = re.sub(re.escape(str(basetemp)) + r"/[^/\s`]+", "$TMP", str(text))
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: dict[str, list[dict[str, str]]]) -> str:
    import torch

    total = sum(len(r) for r in rows.values())
    kept = sum(1 for r in rows.values() for row in r if row["result"] == "as promised")
    lines = [
        BEGIN,
        "",
        f"Produced by `python scripts/reliability_report.py` on {datetime.now(timezone.utc):%Y-%m-%d} "
        f"({platform.system()} {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}): "
        f"**{total} faults tried, {kept} handled as promised, {total - kept} not.**",
        "",
        "| Kind | Tried | As promised |",
        "| --- | ---: | ---: |",
    ]
    for category, title in CATEGORIES.items():
        found = rows.get(category, [])
        if found:
            promised = Counter(row["result"] for row in found)["as promised"]
            lines.append(f"| {title} | {len(found)} | {promised} |")
    lines.append(f"| **All** | **{total}** | **{kept}** |")
    for category, title in CATEGORIES.items():
        found = rows.get(category, [])
        if not found:
            continue
        lines += ["", f"### {title}", "", "| Fault | What happened | Result |", "| --- | --- | --- |"]
        lines += [f"| {row['fault']} | {row['observed']} | {row['result']} |" for row in found]
    lines += ["", END]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "reliability.md")
    args = parser.parse_args()
    os.chdir(ROOT)  # the tests and their pytest settings are found from the repository root
    with tempfile.TemporaryDirectory() as tmp:
        basetemp = Path(tmp) / "t"
        code, tests = run_tests(basetemp)
        section = render(rows_by_category(tests, basetemp))
    doc = args.doc.read_text(encoding="utf-8") if args.doc.exists() else f"{BEGIN}\n{END}\n"
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"{args.doc}: no {BEGIN} ... {END} markers to write the report between")
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    args.doc.write_text(head + section + tail, encoding="utf-8")
    print(f"wrote {args.doc}")
    return code


if __name__ == "__main__":
    sys.exit(main())
