"""The public API: every name in each package's ``__all__`` imports; ``import mbrlax`` stays light."""

import importlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

PACKAGES = ["mbrlax", "mbrlax.envs", "mbrlax.data", "mbrlax.models", "mbrlax.planning", "mbrlax.agents",
            "mbrlax.algorithms", "mbrlax.utils"]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_imports(package):
    module = importlib.import_module(package)
    assert module.__all__ and len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
        assert name in dir(module)
    with pytest.raises(AttributeError):
        getattr(module, "no_such_name")


def test_import_mbrlax_does_not_import_jax():
    code = "import sys, mbrlax; assert 'jax' not in sys.modules and 'mbrlax.models' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_top_level_names_are_the_subpackages_objects():
    import mbrlax
    from mbrlax.agents.mpc import MPCAgent
    from mbrlax.algorithms.presets import pets_light_preset

    assert mbrlax.MPCAgent is MPCAgent and mbrlax.pets_light_preset is pets_light_preset


def _agent(slow_seconds: float, notice: bool = True):
    import jax

    from mbrlax import MPCAgent, ModelConfig, ObjectiveConfig, get_task, make_planner

    task = get_task("Pendulum-v1")
    model = ModelConfig(ensemble_size=1, num_elites=1, hidden=8, depth=1).build_for_task(task.obs_dim, task.act_dim, task)
    planner = make_planner("rs", 2, task.action_low, task.action_high, population=4)
    agent = MPCAgent(planner, model, task, ObjectiveConfig(num_particles=1), notice_slow_plans=notice)
    agent.SLOW_PLAN_SECONDS = slow_seconds
    agent.set_model(model.init(jax.random.PRNGKey(0)))
    return agent


@pytest.mark.parametrize("slow_seconds, notices, notice", [(-1.0, 1, True), (60.0, 0, True), (-1.0, 0, False)])
def test_slow_planning_notice_once(slow_seconds, notices, notice):
    agent = _agent(slow_seconds, notice)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            agent.act(np.zeros(3, np.float32))
    said = [str(w.message) for w in caught if "one plan took" in str(w.message)]
    assert len(said) == notices  # never for the first (compiling) plan, at most once per agent
    assert all("pets_light_preset" in s for s in said)
