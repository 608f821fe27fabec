"""Planning with a reward you write: make a known environment's pendulum spin, which its own reward never asks.

A :class:`~mbrlax.envs.task.Task` holds an environment's reward and termination as pure JAX
functions of ``(obs, action, next_obs)``; replace its reward and the same learned model plans for
the new goal. Here: Pendulum-v1 (obs ``[cos th, sin th, th_dot]``), reward = angular velocity.

    python examples/custom_reward.py          # ~30 s on 2 cores
    python examples/custom_reward.py --tiny   # a few seconds (what the tests run)
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import numpy as np

from mbrlax import MPCAgent, ReplayBuffer, collect, fit, get_task, make_env, make_vector_env, pets_light_preset, random_policy

ENV_ID = "Pendulum-v1"


def spin_reward(obs, action, next_obs):
    """Counter-clockwise angular velocity after the step: ``obs[..., 3], action[..., 1], next_obs[..., 3] -> [...]``."""
    return next_obs[..., 2]


def main(tiny: bool = False) -> dict:
    task = dataclasses.replace(get_task(ENV_ID), reward_fn=spin_reward)  # the env's termination, our reward
    cfg = pets_light_preset(ENV_ID)

    # a model of the dynamics from random data (the reward is ours, so the model need not learn it)
    envs = make_vector_env(ENV_ID, num_envs=1, seed=0)
    buffer = ReplayBuffer(10_000, task.obs_dim, task.act_dim)
    collect(envs, random_policy(envs.single_action_space, seed=0), 400 if tiny else 1000, buffer)
    model = cfg.model.build_for_task(task.obs_dim, task.act_dim, task)
    trainer = dataclasses.replace(cfg.trainer, max_epochs=50) if tiny else cfg.trainer
    state = fit(model, model.init(jax.random.PRNGKey(0)), buffer.all(), jax.random.PRNGKey(1), trainer).state

    # MPC with CEM on our reward, against random actions, in the real environment
    planner = cfg.planner if not tiny else dataclasses.replace(cfg.planner, horizon=10, population=100, iterations=3)
    agent = MPCAgent(planner.build(task.action_low, task.action_high), model, task, cfg.objective)
    agent.set_model(state)
    rng = np.random.default_rng(0)
    steps = 40 if tiny else 200
    planned = mean_spin(lambda obs: agent.act(obs), steps)
    random = mean_spin(lambda obs: rng.uniform(task.action_low, task.action_high), steps)
    print(f"{ENV_ID}, reward = angular velocity, mean over {steps} steps: MPC {planned:.2f} rad/s, random {random:.2f} rad/s")
    return {"planned": planned, "random": random}


def mean_spin(policy, steps: int) -> float:
    """Mean angular velocity over ``steps`` real steps of ``policy(obs) -> action`` (the reward above, in NumPy)."""
    env = make_env(ENV_ID)
    obs, _ = env.reset(seed=1)
    total = 0.0
    for _ in range(steps):
        obs, *_ = env.step(np.asarray(policy(obs), np.float32))
        total += float(obs[2])
    return total / steps


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds on a tiny budget (what the tests run)")
    main(tiny=parser.parse_args().tiny)
