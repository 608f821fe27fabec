"""The loop demo: under model error, replanning every step beats executing one plan open loop."""

from __future__ import annotations

import json

from mbrlax.demos.loop import LoopDemoConfig, run


def test_closed_loop_beats_open_loop_and_costs_more(tmp_path):
    summary = run(LoopDemoConfig(quick=True, out=str(tmp_path), samplings=("clip",)))
    rows = {(r["schedule"], r["warm_start"]): r for r in summary["rows"]}
    assert len(rows) == 6
    best = summary["best_return_by_schedule"]
    # measured on full runs (seeds 0, 1; 8-12 episodes): open loop 13-17, closed loop 35-37 of 40
    assert best["closed loop"] > best["open loop"] + 8, best
    for warm in (True, False):
        closed, open_ = rows[("closed loop", warm)], rows[("open loop", warm)]
        assert closed["plans_per_step"] == 1.0
        assert open_["plans_per_step"] <= 0.25  # one plan per episode; episodes last >= 4 steps
        assert closed["model_evals_per_step"] > 4 * open_["model_evals_per_step"]
        assert closed["plan_ms_per_step"] > open_["plan_ms_per_step"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert len(saved["rows"]) == 6
    assert (tmp_path / "loop.png").stat().st_size > 10_000
