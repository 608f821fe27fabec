"""The user's own environment: Gymnasium's ``module:Id``, an env that cannot render, and PETS
learning one (learned reward and termination) through the command line."""

import textwrap

import gymnasium
import pytest

from mbrlax.algorithms.presets import pets_light_preset
from mbrlax.envs import get_task, make_env, make_vector_env, resolve_env_id
from mbrlax.errors import ConfigError


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A fresh module ``my_envs_<n>`` on sys.path that registers ``Mine<n>-v0`` when imported."""
    name = f"my_envs_{tmp_path.name.replace('-', '_')}"
    env_id = f"Mine{abs(hash(name)) % 10**8}-v0"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(f"""
        import gymnasium
        gymnasium.register({env_id!r}, entry_point="user_envs:UserBalanceEnv", max_episode_steps=50)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name, env_id


def test_module_colon_id_imports_the_module_that_registers_the_id(user_module):
    module, env_id = user_module
    assert env_id not in gymnasium.registry
    assert resolve_env_id(f"{module}:{env_id}") == env_id  # imported, so registered
    env = make_env(f"{module}:{env_id}", seed=0)
    assert env.spec.id == env_id and env.observation_space.shape == (4,)
    assert get_task(f"{module}:{env_id}") is None  # no task: reward and termination are learned
    assert make_vector_env(f"{module}:{env_id}", 2, seed=0).reset()[0].shape == (2, 4)
    cfg = pets_light_preset(f"{module}:{env_id}")  # presets read the canonical id's spec
    assert cfg.env == f"{module}:{env_id}" and cfg.random_steps == 50  # the config keeps what was typed


def test_a_module_that_cannot_be_imported_is_one_line_naming_it(tmp_path, monkeypatch):
    (tmp_path / "broken_envs_mod.py").write_text("raise RuntimeError('boom\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for env_id, needle in [("no_such_module_xyz:Env-v0", "'no_such_module_xyz'"),
                           ("broken_envs_mod:Env-v0", "'broken_envs_mod' (RuntimeError: boom)"),
                           ("json:Env-v0", "registers no environment 'Env-v0'"),
                           (":Env-v0", "expected 'module:Id'")]:
        with pytest.raises(ConfigError) as e:
            make_env(env_id)
        assert needle in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_an_env_without_render_mode_is_made_without_one_when_rendering_is_optional():
    import user_envs  # noqa: F401  (registers UserBalance-v0)

    env = make_env("UserBalance-v0", render_mode="rgb_array", render_optional=True)
    assert env.render_mode is None
    with pytest.raises(ConfigError, match="render_mode"), pytest.warns(UserWarning, match="render_modes"):
        make_env("UserBalance-v0", render_mode="rgb_array")
    assert make_env("cartpole-swingup", render_mode="rgb_array", render_optional=True).render_mode == "rgb_array"


def test_pets_learns_the_users_alive_bonus_env_through_the_command_line(tmp_path, monkeypatch, capsys):
    """``mbrlax train pets --env user_envs:UserBalance-v0``: reward and termination learned, no video.

    UserBalance pays 1 per step and ends when the pole falls (random actions: 28 steps on average);
    the episode limit is 100. 300 random steps (about 10 falls to learn termination from) and a lighter
    planner keep it short (15 s on 2 idle cores). Measured, MPC returns of episodes 1-3 for seeds
    0-6: seed 4 (this test) 100, 100, 100; the limit within 3 episodes for 6 of 7 seeds (seed 2: in the
    4th). With the termination head on plain cross-entropy and no absorbing rows (before
    ``models.trainer.termination_rows``), seeds 0/1/2/4/5/6: 100, 12, 78 / 17, 45, 29 / 10, 11, 20 /
    13, 10, 13 / 13, 65, 13 / 23, 69, 85.
    """
    import json
    import os

    from mbrlax.cli import main

    monkeypatch.syspath_prepend(os.path.dirname(__file__))  # where user_envs.py lives, as PYTHONPATH would
    out = tmp_path / "run"
    rc = main(["train", "pets", "--env", "user_envs:UserBalance-v0", "--seed", "4", "--out", str(out),
               "--iterations", "3", "--random-steps", "300", "--planner.population", "100",
               "--planner.elites", "10", "--planner.iterations", "3"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.count("cannot render") == 1 and not (out / "video.gif").exists()  # one notice, no video
    assert json.loads((out / "config.json").read_text())["env"] == "user_envs:UserBalance-v0"  # --resume reuses it
    returns = json.loads((out / "results.json").read_text())["returns"]
    assert max(returns) == 100.0, returns  # the episode limit, within 3 MPC episodes (random: ~28)
