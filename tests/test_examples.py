"""Each script in examples/ runs on its tiny budget (in-process, as ``python examples/NAME.py --tiny`` would)."""

import math
import runpy
import tempfile
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str) -> dict:
    """``main(tiny=True)`` of ``examples/NAME.py``, loaded from the file a user copies."""
    return runpy.run_path(str(EXAMPLES / f"{name}.py"))["main"](tiny=True)


def test_every_example_is_tested():
    assert sorted(p.stem for p in EXAMPLES.glob("*.py")) == sorted(TESTED)


def test_learned_simulator():
    out = run_example("learned_simulator")
    assert math.isfinite(out["model_return"]) and out["model_return"] > 0
    assert out["real_return"] > out["random_return"]  # the policy trained only in the model transfers


def test_custom_reward():
    out = run_example("custom_reward")
    assert out["planned"] > out["random"]  # MPC on our reward spins the pendulum faster than random actions


def test_mbpo_own_learner(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the run folder
    out = run_example("mbpo_own_learner")
    assert out["env_steps"] == 300 and out["updates"] == 100 * 2  # 200 random + 100 policy steps, 2 updates each
    (steps, ret), = out["eval_returns"]
    assert steps == 300 and math.isfinite(ret) and ret >= 1


def test_own_env(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the run folder
    out = run_example("own_env")
    assert len(out["mpc_returns"]) == 1 and np.isfinite(out["mpc_returns"]).all()
    assert out["mpc_returns"][0] > out["random_return"]  # planning with the learned reward and termination pays


def test_inverse_dynamics():
    out = run_example("inverse_dynamics")
    assert out["r2"] > 0.9  # the torque is read back from (s, s') on unseen transitions


TESTED = ["learned_simulator", "custom_reward", "mbpo_own_learner", "own_env", "inverse_dynamics"]
