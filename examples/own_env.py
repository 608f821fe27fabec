"""Your own environment through mbrlax: define a Gymnasium env, register it, run PETS on it.

No task in mbrlax knows this env, so the model learns its reward and termination as well as its
dynamics (``ModelConfig.build_for_task`` adds those heads when ``get_task`` returns None).

    python examples/own_env.py            # ~1 minute on 2 cores
    python examples/own_env.py --tiny     # a few seconds (what the tests run)

Importing this module registers ``PointMass-v0``, so the command line reaches it too, with
Gymnasium's ``module:Id`` (the folder on ``PYTHONPATH``):

    PYTHONPATH=examples mbrlax train pets --env own_env:PointMass-v0
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

import gymnasium as gym
import numpy as np

from mbrlax.algorithms import mpc_loop, pets_light_preset

ENV_ID = "PointMass-v0"
GOAL, EDGE, DT, MAX_SPEED = 1.0, 2.0, 0.1, 0.5


class PointMassEnv(gym.Env):
    """A mass on a table: obs ``[x, v]``, action ``[force]`` in [-1, 1]; reward 1 at x = GOAL, less away from it.

    Past either edge (``|x| > EDGE``) it falls off the table, which ends the episode.
    """

    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.state = np.zeros(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = np.array([self.np_random.uniform(-1.0, 1.0), 0.0])
        return self.state.astype(np.float32), {}

    def step(self, action):
        x, v = self.state
        v = np.clip(v + 2.0 * float(np.clip(action[0], -1.0, 1.0)) * DT, -MAX_SPEED, MAX_SPEED)
        x = x + v * DT
        self.state = np.array([x, v])
        reward = 1.0 - abs(x - GOAL) / 3.0  # in [0, 1] on the table: falling off forfeits what is left
        return self.state.astype(np.float32), reward, abs(x) > EDGE, False, {}


if ENV_ID not in gym.registry:  # registering makes the id known to gymnasium.make and to mbrlax
    gym.register(ENV_ID, entry_point=PointMassEnv, max_episode_steps=50)


def main(tiny: bool = False) -> dict:
    cfg = pets_light_preset(ENV_ID)  # light PETS; the model learns reward and termination here
    cfg = dataclasses.replace(cfg, out=tempfile.mkdtemp(prefix="mbrlax-own-env-"), iterations=1 if tiny else 5,
                              random_steps=250, video=False)  # 5 random episodes; this env cannot render
    if tiny:  # a few seconds: a small model, a short fit and a small planner
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hidden=64, depth=2),
                                  trainer=dataclasses.replace(cfg.trainer, max_epochs=100, batch_size=32),
                                  planner=dataclasses.replace(cfg.planner, horizon=10, population=100))
    summary = mpc_loop.run(cfg)  # random episodes, then fit -> MPC episode -> refit -> ...
    baseline = float(np.mean([random_return(seed) for seed in range(5)]))
    print(f"{ENV_ID}: MPC returns {[round(r, 1) for r in summary['returns']]}, random actions {baseline:.1f} "
          f"(50 at most); run folder {cfg.out}")
    return {"mpc_returns": summary["returns"], "random_return": baseline}


def random_return(seed: int) -> float:
    """Return of one episode of uniformly random actions in the real env: the baseline."""
    env = gym.make(ENV_ID)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        total, done = total + reward, terminated or truncated
    return total


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds on a tiny budget (what the tests run)")
    main(tiny=parser.parse_args().tiny)
