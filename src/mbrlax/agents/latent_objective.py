"""Planning in a learned latent space with the planners as they are (issue 20, item 3).

The objective a planner sees is the same function ``(key, actions[N, H, A]) -> returns[N]`` as for
a state-space model (:mod:`mbrlax.agents.objective`): the planner never learns that the model
behind it works on camera frames. The current frames are encoded once per plan; each candidate
action sequence is then scored by the latent model's predicted rewards along its open-loop latent
rollout, so a plan costs only MLP steps (``benchmarks/pixels.py``: a latent rollout runs at 54-75 %
of the machine's matmul rate).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mbrlax.errors import ConfigError
from mbrlax.models.latent import LatentModel

Objective = Callable[[jax.Array, jnp.ndarray], jnp.ndarray]


def make_latent_objective(model: LatentModel, discount: float = 1.0) -> Callable[[dict, jnp.ndarray], Objective]:
    """``(params, frames[size, size, 3k] uint8) -> objective``: the sum over the horizon of
    ``discount^t`` times the predicted reward of each plan, from the latent of ``frames``, each
    reward weighted by the predicted probability that no earlier step ended the episode; with a value
    head (``LatentModel.value_coef``), plus the discounted value of the last latent, so weighted
    (TD-MPC's terminal value, Hansen et al. 2022): the horizon no longer hides a fall that comes later."""
    if not 0.0 < discount <= 1.0:
        raise ConfigError(f"make_latent_objective: discount must be in (0, 1], got {discount}")

    def for_frames(params: dict, frames: jnp.ndarray) -> Objective:
        z0 = model.encode(params, jnp.asarray(frames)[None])[0]  # [Z], once per plan

        def objective(key: jax.Array, actions: jnp.ndarray) -> jnp.ndarray:
            del key  # the latent model is deterministic
            N, H, _ = actions.shape
            zs, rewards, t_logit = model.rollout(params, jnp.broadcast_to(z0, (N, z0.shape[-1])), actions)  # [N, H]
            # alive before step t: prod over k < t of (1 - p_k); log(1 - sigmoid(x)) = log_sigmoid(-x)
            log_alive_after = jnp.cumsum(jax.nn.log_sigmoid(-t_logit), axis=-1)  # [N, H]
            weights = discount ** jnp.arange(H, dtype=rewards.dtype) * jnp.exp(log_alive_after - jax.nn.log_sigmoid(-t_logit))
            score = (rewards * weights).sum(-1)
            if "value" in params:  # what lies beyond the horizon, if the episode is still alive there
                score = score + discount ** H * jnp.exp(log_alive_after[:, -1]) * model.value(params, zs[:, -1])
            return score

        return objective

    return for_frames
