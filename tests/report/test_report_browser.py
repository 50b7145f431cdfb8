"""The report as a browser renders it: headless Chromium loads it with no console errors, the plots
and tables are in the rendered page, and the screenshot is not blank (scripts/check_report.py)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
from synthetic_runs import three_strategies, write_run

from forgetless.report.html import write_report

CHROMIUM = "/usr/bin/chromium"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_report.py"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason=f"{CHROMIUM} is not installed (apt-get install -y chromium) so the report cannot be rendered",
)


def _checker():
    spec = importlib.util.spec_from_file_location("check_report", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_renders_in_chromium(tmp_path):
    runs = three_strategies(tmp_path / "runs")
    runs.append(
        write_run(
            tmp_path / "runs" / "two-stage",
            forgetting=0.1,
            learning=0.8,
            gap=0.2,
            stages=(("security", "security"), ("code", "code")),
            sources=("general", "security", "code"),
        )
    )
    report = write_report(runs, tmp_path / "report.html")
    result = _checker().check(
        report,
        screenshot=tmp_path / "report.png",
        plots=("scatter", "overlay", "loss", "lr"),
        tables=("overview", "mcq-overview", "sources", "stages", "mcq", "matrix-loss", "matrix-mcq_acc"),
    )
    assert result["problems"] == []
    assert result["ok"]
    assert result["plots"]["loss"] == 3 * 2 + 3 and result["plots"]["lr"] == 4
    assert result["image"]["width"] == 1280 and not result["image"]["blank"]


def test_the_check_catches_console_errors_missing_plots_and_blank_pages(tmp_path):
    checker = _checker()
    broken = tmp_path / "broken.html"
    broken.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>x</title></head><body>'
        '<svg data-plot="loss" width="50" height="50"><path d="M NaN,1 L 2,3"/></svg></body></html>'
    )
    result = checker.check(
        broken, screenshot=tmp_path / "broken.png", plots=("loss", "lr"), tables=("sources",)
    )
    assert not result["ok"]
    assert any("attribute d" in p for p in result["problems"])  # Chromium's complaint about the NaN path
    assert "no plot of kind 'lr' (svg data-plot)" in result["problems"]
    assert "no table named 'sources' (table data-table)" in result["problems"]

    blank = tmp_path / "blank.html"
    blank.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>b</title></head><body></body></html>'
    )
    result = checker.check(blank, screenshot=tmp_path / "blank.png", plots=(), tables=())
    assert result["problems"] == ["screenshot is blank"]


def test_the_check_script_exit_codes(tmp_path):
    checker = _checker()
    assert checker.main([str(tmp_path / "missing.html")]) == 2
    page = tmp_path / "external.html"
    page.write_text(
        '<!DOCTYPE html><html><head><title>e</title><link rel="stylesheet" href="x.css"></head><body>x</body></html>'
    )
    assert checker.main([str(page), "--expect-plot", "none", "--screenshot", str(tmp_path / "e.png")]) == 1
