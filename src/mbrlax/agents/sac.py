"""Soft Actor-Critic with automatic entropy temperature (Haarnoja et al. 2018, arXiv:1812.05905).

A :class:`~mbrlax.agents.learner.PolicyLearner`:

- actor: an MLP giving mean and log-std (clipped) of a Gaussian over ``u``; the action is
  ``tanh(u)`` in ``[-1, 1]``, then scaled affinely to the env's bounds. Its log-probability has
  the change-of-variables term ``- sum log(1 - tanh(u)^2)`` (computed stably as
  ``2 (log 2 - u - softplus(-2u))``). Evaluation acts with ``tanh(mean)``.
- critic: twin Q MLPs on ``(obs, normalised action)`` as one stacked parameter tree ``[2, ...]``
  (``vmap`` over the pair), target copies updated by Polyak averaging with ``tau``.
- temperature: ``log_alpha`` learned so the policy's entropy tracks ``-|A|``.

Internally the critic sees actions normalised to ``[-1, 1]``; batches carry env-scale actions
(as stored in the replay buffer) and are normalised on the way in, so the target entropy
``-|A|`` means the same for every action range.

One update = critic step (target from the target critics, ``done`` masks bootstrapping only at
terminations) -> actor step (against the just-updated critics) -> temperature step -> Polyak.
All of it is one jitted function; :meth:`SAC.update_many` runs ``G`` of them in one ``lax.scan``.
The jitted functions are module-level with the ``SAC`` object as a static argument (hashed by
its dims, bounds and config), so learners with equal settings share compiled code.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from mbrlax.agents.learner import PRNGKey, TrainBatch
from mbrlax.errors import ConfigError
from mbrlax.utils.validate import check_finite, check_le, check_range

_LOG2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC hyperparameters; defaults from Haarnoja et al. 2018b (arXiv:1812.05905), Table 1."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of actor and critics (paper: 2 layers of 256, ReLU)."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor (paper: 3e-4)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics (paper: 3e-4)."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log(alpha), the entropy temperature (paper: 3e-4)."""
    gamma: float = 0.99
    """Discount factor (paper: 0.99)."""
    tau: float = 0.005
    """Polyak step of the target critics, target <- tau * online + (1 - tau) * target (paper: 0.005)."""
    batch_size: int = 256
    """Transitions per gradient step (paper: 256)."""
    init_alpha: float = 1.0
    """Initial entropy temperature alpha."""
    target_entropy: float | None = None
    """Entropy the temperature aims for; None means -|A| (paper's heuristic)."""
    log_std_min: float = -20.0
    """Lower clip of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clip of the actor's log standard deviation."""

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))  # hashable
        if not self.hidden_sizes:
            raise ConfigError("SACConfig.hidden_sizes needs at least one layer width")
        check_range(self, "hidden_sizes", "batch_size", ge=1)
        check_range(self, "actor_lr", "critic_lr", "alpha_lr", "init_alpha", gt=0)
        check_range(self, "gamma", ge=0, le=1)
        check_range(self, "tau", gt=0, le=1)
        check_finite(self, "target_entropy", "log_std_min", "log_std_max")
        check_le(self, "log_std_min", "log_std_max", strict=True)


# ------------------------------------------------------------------------------------ networks
class MLP(nn.Module):
    """ReLU MLP: ``[..., in] -> [..., out_dim]``."""

    hidden_sizes: Sequence[int]
    out_dim: int

    @nn.compact
    def __call__(self, x):
        for h in self.hidden_sizes:
            x = nn.relu(nn.Dense(h)(x))
        return nn.Dense(self.out_dim)(x)


class GaussianActor(nn.Module):
    """``obs [B, D] -> (mean [B, A], log_std [B, A])`` of the pre-tanh Gaussian; log-std clipped."""

    hidden_sizes: Sequence[int]
    act_dim: int
    log_std_min: float
    log_std_max: float

    @nn.compact
    def __call__(self, obs):
        out = MLP(self.hidden_sizes, 2 * self.act_dim)(obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


def tanh_log_det_jacobian(u: jax.Array) -> jax.Array:
    """``sum_i log(1 - tanh(u_i)^2)`` over the last axis, stable for large ``|u|``. ``[..., A] -> [...]``."""
    return jnp.sum(2.0 * (_LOG2 - u - jax.nn.softplus(-2.0 * u)), axis=-1)


def tanh_gaussian_log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Log-density of ``a = tanh(u)`` where ``u ~ N(mean, exp(log_std)^2)`` (diagonal). ``[..., A] -> [...]``."""
    z = (u - mean) * jnp.exp(-log_std)
    gauss = jnp.sum(-0.5 * z**2 - log_std - 0.5 * math.log(2.0 * math.pi), axis=-1)
    return gauss - tanh_log_det_jacobian(u)


def sample_tanh_gaussian(mean: jax.Array, log_std: jax.Array, key: PRNGKey) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample ``a = tanh(mean + std * eps)`` in ``[-1, 1]`` and its log-prob. ``[B, A], [B]``."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


# ------------------------------------------------------------------------------------ state
@struct.dataclass
class SACState:
    """Everything that changes during training (a pytree)."""

    actor_params: dict
    critic_params: dict  # twin critics stacked: every leaf has a leading axis of 2
    target_critic_params: dict
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    alpha_opt_state: optax.OptState
    log_alpha: jax.Array  # [] float32
    steps: jax.Array  # [] int32, gradient steps taken


class SAC:
    """SAC learner for ``obs_dim``-dim observations and actions in the box ``[action_low, action_high]``.

    All methods are pure and jit-compiled; the object only holds static settings.
    """

    def __init__(self, obs_dim: int, act_dim: int, action_low, action_high, config: SACConfig = SACConfig()):
        if obs_dim <= 0 or act_dim <= 0:
            raise ConfigError(f"SAC needs positive obs_dim/act_dim, got {obs_dim}/{act_dim}")
        low = np.broadcast_to(np.asarray(action_low, np.float32), (act_dim,)).copy()
        high = np.broadcast_to(np.asarray(action_high, np.float32), (act_dim,)).copy()
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low)):
            raise ConfigError(f"SAC needs finite action bounds with high > low, got low={low}, high={high}")
        self.obs_dim, self.act_dim, self.config = int(obs_dim), int(act_dim), config
        self.action_low, self.action_high = low, high
        self._center = (high + low) / 2  # [A] float32
        self._half_range = (high - low) / 2
        self.target_entropy = float(-act_dim if config.target_entropy is None else config.target_entropy)
        self.actor = GaussianActor(tuple(config.hidden_sizes), act_dim, config.log_std_min, config.log_std_max)
        self.critic = MLP(tuple(config.hidden_sizes), 1)
        self.actor_tx = optax.adam(config.actor_lr)
        self.critic_tx = optax.adam(config.critic_lr)
        self.alpha_tx = optax.adam(config.alpha_lr)
        # identity for jit caching: learners with equal settings share compiled functions
        self._key = (self.obs_dim, self.act_dim, tuple(low.tolist()), tuple(high.tolist()), config)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other) -> bool:
        return isinstance(other, SAC) and self._key == other._key

    @classmethod
    def for_env(cls, env, config: SACConfig = SACConfig()) -> "SAC":
        """A learner sized for a Gymnasium env with a flat Box observation and a bounded Box action space."""
        from mbrlax.envs.registry import action_bounds

        low, high = action_bounds(env)
        shape = env.observation_space.shape
        if shape is None or len(shape) != 1:
            raise ConfigError(f"SAC needs a flat Box observation space, got {env.observation_space}")
        return cls(shape[0], low.shape[0], low, high, config)

    # ---------------------------------------------------------------- public API (PolicyLearner)
    def init(self, key: PRNGKey) -> SACState:
        """Fresh parameters (targets = online critics) and optimiser states."""
        return _jit_init(self, key)

    def act(self, state: SACState, obs: jax.Array, key: PRNGKey, deterministic: bool = False) -> jax.Array:
        """Actions ``[B, A]`` in the env's bounds for ``obs [B, D]``; ``tanh(mean)`` if deterministic."""
        return _jit_act(self, state, jnp.asarray(obs, jnp.float32), key, bool(deterministic))

    def update(self, state: SACState, batch: TrainBatch, key: PRNGKey) -> tuple[SACState, dict]:
        """One SAC gradient step on a ``[B, ...]`` batch."""
        return _jit_update(self, state, batch, key)

    def update_many(self, state: SACState, batches: TrainBatch, key: PRNGKey) -> tuple[SACState, dict]:
        """``G`` steps on ``[G, B, ...]`` batches in one ``lax.scan``, keys ``split(key, G)``; mean metrics."""
        return _jit_update_many(self, state, batches, key)

    def normalize_action(self, action: jax.Array) -> jax.Array:
        """Env-scale actions to ``[-1, 1]``."""
        return jnp.clip((action - self._center) / self._half_range, -1.0, 1.0)

    def scale_action(self, unit_action: jax.Array) -> jax.Array:
        """Actions in ``[-1, 1]`` to the env's bounds."""
        return self._center + self._half_range * unit_action

    # ---------------------------------------------------------------- implementation
    def _q(self, critic_params, obs, unit_action):
        """Both critics: ``[B, D], [B, A] -> [2, B]``."""
        x = jnp.concatenate([obs, unit_action], axis=-1)
        return jax.vmap(lambda p: self.critic.apply(p, x)[..., 0])(critic_params)

    def _init_impl(self, key):
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((1, self.obs_dim), jnp.float32)
        x = jnp.zeros((1, self.obs_dim + self.act_dim), jnp.float32)
        actor_params = self.actor.init(k_actor, obs)
        critic_params = jax.vmap(lambda k: self.critic.init(k, x))(jax.random.split(k_critic, 2))
        log_alpha = jnp.asarray(math.log(self.config.init_alpha), jnp.float32)
        return SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            actor_opt_state=self.actor_tx.init(actor_params),
            critic_opt_state=self.critic_tx.init(critic_params),
            alpha_opt_state=self.alpha_tx.init(log_alpha),
            log_alpha=log_alpha,
            steps=jnp.zeros((), jnp.int32),
        )

    def _act_impl(self, state, obs, key, deterministic):
        mean, log_std = self.actor.apply(state.actor_params, obs)
        if deterministic:
            unit = jnp.tanh(mean)
        else:
            unit, _ = sample_tanh_gaussian(mean, log_std, key)
        return self.scale_action(unit)

    def _update_impl(self, state: SACState, batch: TrainBatch, key):
        cfg = self.config
        k_next, k_pi = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        action = self.normalize_action(batch.action)

        # critic: y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s')), a' ~ pi(s')
        next_mean, next_log_std = self.actor.apply(state.actor_params, batch.next_obs)
        next_action, next_logp = sample_tanh_gaussian(next_mean, next_log_std, k_next)
        next_q = jnp.min(self._q(state.target_critic_params, batch.next_obs, next_action), axis=0)
        target = batch.reward + cfg.gamma * (1.0 - batch.done) * (next_q - alpha * next_logp)
        target = jax.lax.stop_gradient(target)

        def critic_loss_fn(params):
            q = self._q(params, batch.obs, action)  # [2, B]
            return 0.5 * jnp.sum(jnp.mean((q - target[None]) ** 2, axis=1)), q

        (critic_loss, q), g = jax.value_and_grad(critic_loss_fn, has_aux=True)(state.critic_params)
        upd, critic_opt_state = self.critic_tx.update(g, state.critic_opt_state, state.critic_params)
        critic_params = optax.apply_updates(state.critic_params, upd)

        # actor: minimise E[alpha log pi(a|s) - min_i Q_i(s, a)], a ~ pi(s) reparameterised
        def actor_loss_fn(params):
            mean, log_std = self.actor.apply(params, batch.obs)
            a, logp = sample_tanh_gaussian(mean, log_std, k_pi)
            q_pi = jnp.min(self._q(critic_params, batch.obs, a), axis=0)
            return jnp.mean(alpha * logp - q_pi), logp

        (actor_loss, logp), g = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor_params)
        upd, actor_opt_state = self.actor_tx.update(g, state.actor_opt_state, state.actor_params)
        actor_params = optax.apply_updates(state.actor_params, upd)

        # temperature: minimise E[-log_alpha (log pi + target_entropy)]
        logp = jax.lax.stop_gradient(logp)

        def alpha_loss_fn(log_alpha):
            return -log_alpha * jnp.mean(logp + self.target_entropy)

        alpha_loss, g = jax.value_and_grad(alpha_loss_fn)(state.log_alpha)
        upd, alpha_opt_state = self.alpha_tx.update(g, state.alpha_opt_state, state.log_alpha)
        log_alpha = optax.apply_updates(state.log_alpha, upd)

        target_critic_params = optax.incremental_update(critic_params, state.target_critic_params, cfg.tau)
        new_state = SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=target_critic_params,
            actor_opt_state=actor_opt_state,
            critic_opt_state=critic_opt_state,
            alpha_opt_state=alpha_opt_state,
            log_alpha=log_alpha,
            steps=state.steps + 1,
        )
        metrics = {
            "critic_loss": critic_loss,
            "actor_loss": actor_loss,
            "alpha_loss": alpha_loss,
            "alpha": alpha,
            "entropy": -jnp.mean(logp),
            "q_mean": jnp.mean(q),
        }
        return new_state, metrics

    def _update_many_impl(self, state: SACState, batches: TrainBatch, key):
        g = batches.obs.shape[0]

        def body(s, xs):
            batch, k = xs
            return self._update_impl(s, batch, k)

        state, metrics = jax.lax.scan(body, state, (batches, jax.random.split(key, g)))
        return state, jax.tree.map(jnp.mean, metrics)


# Compiled once per distinct learner (``self`` is a static, hashable argument).
_jit_init = jax.jit(SAC._init_impl, static_argnums=0)
_jit_act = jax.jit(SAC._act_impl, static_argnums=(0, 4))
_jit_update = jax.jit(SAC._update_impl, static_argnums=0)
_jit_update_many = jax.jit(SAC._update_many_impl, static_argnums=0)
