"""Which action took the system from s to s'? An inverse dynamics model p(a | s, s') from random data.

Any model kind is a :class:`~mbrlax.models.conditional.ConditionalModel` fitted on rows that
:func:`~mbrlax.models.kinds.window_rows` cuts from a replay buffer's trajectory windows (they
never cross an episode end). Here: Pendulum-v1, random actions; the inverse model then labels
transitions it has never seen, as an imitation-from-observation agent would label an expert's
video (``mbrlax demo imitation``). Try ``kind="inverse-multistep"`` with ``n=5``: s_t+5 says far
less about a_t, and the held-out error shows it.

    python examples/inverse_dynamics.py          # ~20 s on 2 cores
    python examples/inverse_dynamics.py --tiny   # a few seconds (what the tests run)
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from mbrlax import ConditionalModel, ReplayBuffer, TrainerConfig, collect, fit_conditional, make_vector_env, random_policy, window_rows

ENV_ID = "Pendulum-v1"


def random_data(steps: int, seed: int) -> ReplayBuffer:
    envs = make_vector_env(ENV_ID, num_envs=2, seed=seed)
    buffer = ReplayBuffer(steps, envs.single_observation_space.shape[0], envs.single_action_space.shape[0])
    collect(envs, random_policy(envs.single_action_space, seed=seed), steps, buffer, seed=seed)
    return buffer


def main(tiny: bool = False) -> dict:
    train, test = random_data(1500 if tiny else 6000, seed=0), random_data(600, seed=1)
    x, y = window_rows("inverse", train, n=1)  # x = (s_t, s_t+1) [N, 6], y = a_t [N, 1]
    model = ConditionalModel(in_dim=x.shape[1], out_dim=y.shape[1], head="gaussian", hidden=64, depth=2,
                             ensemble_size=3, num_elites=3)
    trainer = TrainerConfig(max_epochs=60 if tiny else 200, patience=15, learning_rate=3e-3, progress=False)
    state = fit_conditional(model, model.init(jax.random.PRNGKey(0)), x, y, jax.random.PRNGKey(1), trainer).state

    xt, yt = window_rows("inverse", test, n=1)  # transitions the model never saw
    inferred = np.asarray(model.mode(state, xt))
    r2 = 1.0 - np.mean((inferred - yt) ** 2) / np.var(yt)
    # R^2 < 1 mostly from steps at Pendulum's speed limit (8 rad/s), where the torque has no effect: no model can tell it
    print(f"{ENV_ID}: inverse model on {len(xt)} unseen transitions: R^2 of the inferred torque = {r2:.3f} "
          f"(mean |error| {np.mean(np.abs(inferred - yt)):.3f} of a range [-2, 2])")
    return {"r2": float(r2), "rows": len(x)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a few seconds: fewer transitions and epochs")
    main(tiny=parser.parse_args().tiny)
