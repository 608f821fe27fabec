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
