"""Imitation from observation (BCO) on Reacher: an inverse model fitted on random-action data labels
an expert's action-free transitions well enough that cloning those labels does nearly as well as
cloning the true actions (a shortened run)."""

import json

import pytest

from mbrlax.demos.imitation import ENV_ID, ImitationDemoConfig, run
from mbrlax.errors import ConfigError


def test_bco_closes_the_gap_to_cloning_the_true_actions(tmp_path):
    res = run(ImitationDemoConfig(quick=True, out=str(tmp_path), seed=0))
    for name in ("imitation.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "results.json").read_text())["env"] == ENV_ID
    r = {name: e["mean"] for name, e in res["returns"].items()}
    # the scripted expert reaches; the random policy pays Reacher's control cost on top of not reaching
    assert r["expert"] > r["no action"] + 3 > r["explore (random)"] + 20, r
    # the inverse model's labels of the hidden expert actions are nearly exact
    assert res["inverse_model"]["expert_label_r2"] > 0.9, res["inverse_model"]
    assert res["gap_closed"] >= 0.8, r
    # the strict measure: a policy that learned nothing (labels shuffled) acts like "no action" and
    # scores about 0 here, although it would close ~80 % of the gap from the random policy
    assert res["gap_closed_vs_no_action"] >= 0.75, r


def test_sweep_budgets_must_be_below_the_exploration_budget():
    with pytest.raises(ConfigError, match="sweep_steps"):
        ImitationDemoConfig(explore_steps=1000, sweep_steps=(500, 1000))
