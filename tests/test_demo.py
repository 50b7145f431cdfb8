"""The embedded default: `forgetless demo --quick` runs offline and shows what the literature shows."""

from __future__ import annotations

import json
from pathlib import Path

from forgetless.cli import main


def test_quick_demo_learns_the_domain_and_replay_forgets_less(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("FORGETLESS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    try:
        main(["demo", "--quick", "--quiet", "--out", str(out)])
    except SystemExit as exit_:
        assert exit_.code in (0, None)
    printed = capsys.readouterr().out
    assert "no-replay" in printed and "replay-25%" in printed and "security loss" in printed
    assert "Evaluation took " in printed and "of the demo's wall time" in printed
    assert "n.s." in printed or " ± " in printed  # MCQ changes come with their intervals

    summary = json.loads((out / "summary.json").read_text())
    rows = {row["strategy"]: row for row in summary["table"]}
    assert list(rows) == ["no-replay", "replay-5%", "replay-25%"]
    for row in rows.values():
        assert row["security_loss_change"] < -0.1  # every strategy learns the domain
        assert row["security_mcq_change"]["acc_ci95"] is not None
    no_replay, replay25 = rows["no-replay"]["general_loss_change"], rows["replay-25%"]["general_loss_change"]
    assert no_replay > 0.1  # continuing on security text alone forgets general text
    # Replay forgets less: with 25% of the stage replayed, general text is forgotten about half as much
    # (measured over a sample of all four general sub-corpora, replayed from the whole corpus).
    assert no_replay >= 1.5 * max(replay25, 0.0)
    for name in rows:
        run = out / name
        assert (run / "final" / "model.safetensors").is_file() and (run / "metrics.jsonl").is_file()
    html = (out / "report.html").read_text()
    assert "<svg" in html and "replay-25%" in html
