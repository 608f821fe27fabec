"""The learned simulator as a Gymnasium env: train a policy with your own RL loop inside the model.

Fit an ensemble on random InvertedPendulum-v5 data, wrap it in :class:`~mbrlax.models.ModelEnv`
(reset draws a real start state; each step samples one elite member), and improve a linear
policy ``action = K @ obs`` by random search on returns the *model* gives. The real environment
runs each round's policy once, and that episode joins the data of the next fit. Any RL code that
speaks Gymnasium can replace the search loop.

    python examples/learned_simulator.py          # 3 rounds, ~3 minutes on 2 cores (real returns ~400-550 of 1000)
    python examples/learned_simulator.py --tiny   # a few seconds (what the tests run)
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import numpy as np

from mbrlax import ModelEnv, ReplayBuffer, collect, fit, get_task, make_env, make_vector_env, pets_light_preset, random_policy

ENV_ID = "InvertedPendulum-v5"


def main(tiny: bool = False) -> dict:
    task, cfg = get_task(ENV_ID), pets_light_preset(ENV_ID)
    env = make_env(ENV_ID)
    trainer = dataclasses.replace(cfg.trainer, max_epochs=50) if tiny else cfg.trainer
    model = cfg.model.build_for_task(task.obs_dim, task.act_dim, task)  # reward and termination: the task's
    rng = np.random.default_rng(0)

    # random data to start from
    envs = make_vector_env(ENV_ID, num_envs=1, seed=0)
    buffer = ReplayBuffer(100_000, task.obs_dim, task.act_dim)
    collect(envs, random_policy(envs.single_action_space, seed=0), 500 if tiny else 2000, buffer)
    random_return = float(np.mean([episode_return(env, None, seed=s, rng=rng) for s in range(5)]))
    start_states = np.stack([env.reset(seed=s)[0] for s in range(100)])

    K = np.zeros(task.obs_dim, np.float32)  # the policy: action = clip(K @ obs)
    for round_ in range(1 if tiny else 3):
        state = fit(model, model.init(jax.random.PRNGKey(round_)), buffer.all(), jax.random.PRNGKey(100 + round_),
                    trainer).state
        # the learned simulator: a gymnasium.Env that starts from the real env's start states
        sim = ModelEnv(model, state, env.observation_space, env.action_space, start_states=start_states,
                       task=task, max_episode_steps=50 if tiny else 200)
        # your RL loop, entirely inside the model: random search over linear policies
        for it in range(15 if tiny else 40):
            candidate = K + rng.normal(0.0, 1.0, task.obs_dim).astype(np.float32)
            seeds = range(3 * it, 3 * it + 3)  # both judged on the same starts and the same model noise
            if sum(episode_return(sim, candidate, s) for s in seeds) > sum(episode_return(sim, K, s) for s in seeds):
                K = candidate
        model_return = episode_return(sim, K, seed=10_000)
        # one real episode with the policy; its transitions join the data for the next fit
        real_return = episode_return(env, K, seed=round_, buffer=buffer)
        print(f"round {round_}: K={np.round(K, 2)}, return {model_return:.0f} in the model, {real_return:.0f} in "
              f"the real env (random actions: {random_return:.0f}; 1000 at most)")
    return {"model_return": model_return, "real_return": real_return, "random_return": random_return}


def episode_return(env, K, seed: int, rng=None, buffer=None) -> float:
    """One episode of ``action = clip(K @ obs)`` (random if ``K`` is None) in any Gymnasium env, optionally recorded."""
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    low, high = env.action_space.low, env.action_space.high
    while not done:
        action = np.asarray(rng.uniform(low, high) if K is None else np.clip(K @ obs, low, high), np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action.reshape(low.shape))
        if buffer is not None:
            buffer.add(obs, action.reshape(low.shape), reward, next_obs, terminated, truncated)
        obs, total, done = next_obs, total + reward, terminated or truncated
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds on a tiny budget (what the tests run)")
    main(tiny=parser.parse_args().tiny)
