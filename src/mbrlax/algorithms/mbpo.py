"""Model-Based Policy Optimisation (MBPO; Janner et al. 2019, "When to Trust Your Model", Alg. 2).

    fill the real buffer D_env with `init_steps` uniformly random steps
    for each epoch:
        k <- rollout length from the schedule [epoch_a, epoch_b, k_a, k_b]
        for each of `epoch_length` env steps t:
            if t % model_train_freq == 0:
                fit the ensemble (7 members, 5 elites; reward and Δobs) on all of D_env
                branch `rollout_batch_size` k-step rollouts of the policy in the model from
                states of D_env; add them to D_model (which keeps the last `retain_epochs`)
            act in the env with the policy; add the transition to D_env
            G = `updates_per_step` policy updates, each on a batch with `real_ratio` of it
                from D_env and the rest from D_model
        evaluate the deterministic policy; log; checkpoint

Reward in the model is learned, as in the paper; termination is the task's where one is
known, else learned. The policy learner is pluggable: MBPO talks to it only through the
:class:`~mbrlax.agents.learner.PolicyLearner` protocol (``run(cfg, learner=...)``); SAC by
default, which sees the task's ``policy_features`` (a runner's root x dropped). A learner passed in
gets the raw observations ``make_env`` gives (root x included); wrap it in
:class:`~mbrlax.agents.learner.ObservedThrough` to map them. Its ``G`` updates per env step are one ``update_many`` call (one ``lax.scan``); the
``k``-step rollout of the whole rollout batch is one jitted call
(:func:`~mbrlax.agents.model_rollouts.make_branched_rollout`).

Checkpoints (after the initial exploration and after every epoch) hold the learner state
(with its optimiser states), the model state, both buffers, both RNGs, the counters and the
episode in progress, in ``OUT/ckpt/epoch_N/``; ``OUT/checkpoint.json`` is replaced atomically
to point at a complete folder, so a killed run loses at most one epoch. ``resume=True``
continues from it and reproduces the uninterrupted run: the episode in progress is rebuilt by
resetting its env with the episode's seed and replaying its actions (Gymnasium envs are
deterministic given the reset seed), and the model buffer is restored with its exact ring
layout. The model trainer's Adam state is not kept: the loop passes no ``opt_state`` to
:func:`~mbrlax.models.trainer.fit`, so each fit starts a fresh optimiser (warm-starting the weights)
and there is none to save. MBPO's reference keeps it; continuing it left the fitted models no better
(``benchmarks/refit.py``).

Several seeds in one process (``mbrlax train mbpo-seeds``, :mod:`~mbrlax.algorithms.mbpo_seeds`) run this
loop's pieces batched: :func:`make_parts`, :func:`init_states`, one :class:`HostRun` per seed (env, buffers,
NumPy generator, counters, logger and checkpoints, exactly the single run's), :func:`fit_stats`.

Presets (:func:`mbpo_preset`) are the paper's per-environment settings from its released
configs (github.com/jannerm/mbpo, ``examples/config/*/0.py``), for the v5 envs.

Measured on InvertedPendulum (``benchmarks/mbpo.py --light``, seeds 0-2): with the paper's
sampled TS1 steps the eval return reached 1000 after 4500, 3000 and 4750 env steps; with
``propagation="mean"`` after 3000, 3250 and 3000. The ensemble's predicted std there is 3-6x
its holdout error, so sampled imagined steps are far noisier than the deterministic env.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mbrlax.agents.learner import ObservedThrough, PolicyLearner, TrainBatch
from mbrlax.agents.model_rollouts import ModelBuffer, make_branched_rollout
from mbrlax.agents.sac import SAC, SACConfig
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.envs import action_bounds, get_task, make_env, resolve_env_id
from mbrlax.envs.task import Task
from mbrlax.errors import ConfigError, DataError, TrainingDivergedError
from mbrlax.models.config import ModelConfig
from mbrlax.models.propagation import PROPAGATIONS
from mbrlax.models.trainer import FitResult, TrainerConfig, fit
from mbrlax.utils.checkpoint import (POINTER, check_same_policy_input, clear_checkpoint, find_checkpoint, load_pytree,
                                     save_checkpoint)
from mbrlax.utils.plots import plot_learning_curve
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_nonempty, check_range, check_resume, check_seed, setting

CHECKPOINT_FILE = POINTER  # its presence in ``out`` marks a checkpoint (the CLI's --resume check)
PHASES = ("env", "model", "rollout", "policy", "eval")


@dataclass(frozen=True)
class MBPOConfig:
    """MBPO (Janner et al. 2019); defaults are the paper's Hopper settings (``mbpo_preset`` for others)."""

    env: str = "Hopper-v5"
    """Gymnasium environment id."""
    seed: int = 0
    """Seed of the environment, the networks and every random draw."""
    out: str = "runs/mbpo"
    """Run folder: config.json, metrics.csv, tb/, learning_curve.png, results.json, checkpoints."""
    resume: bool = False
    """Continue from the checkpoint in ``out`` if there is one."""
    epochs: int = 125
    """Epochs after the initial exploration, each of ``epoch_length`` env steps (paper Hopper: 125)."""
    epoch_length: int = 1000
    """Env steps per epoch (paper: 1000; 250 for InvertedPendulum)."""
    init_steps: int = 5000
    """Uniformly random env steps that fill the real buffer before the first epoch (paper: 5000)."""
    model_train_freq: int = 250
    """Env steps between model fits; each fit is followed by a batch of branched rollouts (paper: 250)."""
    rollout_batch_size: int = 100_000
    """Rollouts branched after each fit (paper: 100k per 250 steps, i.e. 400 per env step)."""
    rollout_schedule: tuple[int, int, int, int] = (20, 150, 1, 15)
    """[epoch_a, epoch_b, k_a, k_b]: rollout length k grows linearly from k_a to k_b between these epochs."""
    retain_epochs: int = 1
    """Epochs of rollouts the model buffer keeps (paper: 1)."""
    real_ratio: float = 0.05
    """Share of real transitions in each policy batch (paper: 0.05); 1.0 turns the model off (SAC with G updates)."""
    updates_per_step: int = 20
    """Policy updates G per env step, run as one update_many call (paper: 20; 10 IP, 40 HalfCheetah)."""
    eval_episodes: int = 5
    """Episodes of the deterministic policy evaluated after every epoch."""
    learned_reward: bool = True
    """Rollout rewards from the model's learned reward head (paper); False uses the task's reward where known."""
    propagation: str = "ts1"
    """Rollout steps: ts1 (a sampled step of a random elite, as the paper) or mean (no sampling), tsinf, expectation."""
    buffer_capacity: int = 1_000_000
    """Real replay buffer capacity (paper: 1e6); the model buffer is sized from the rollout settings."""
    model: ModelConfig = field(default_factory=lambda: ModelConfig(
        ensemble_size=7, num_elites=5, hidden=200, depth=4, activation="silu", probabilistic=True,
        predict_reward=True))
    """Dynamics ensemble (paper: 7 probabilistic members of 4x200 swish, 5 elites, predicting Δobs and reward)."""
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(progress=False))
    """Model fitting (paper: Adam 1e-3, batch 256, 20% holdout up to 5000, stop after 5 epochs without gain)."""
    sac: SACConfig = field(default_factory=lambda: SACConfig(target_entropy=-1.0))
    """SAC hyperparameters (paper: 2x256, lr 3e-4, gamma 0.99, tau 5e-3, batch 256; target entropy per env)."""
    checkpoint: bool = True
    """Checkpoint after the initial exploration and after every epoch."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self):
        check_nonempty(self, "env", "out")
        check_seed(self)
        check_range(self, "epochs", "epoch_length", "model_train_freq", "rollout_batch_size", "retain_epochs",
                    "updates_per_step", "eval_episodes", "buffer_capacity", ge=1)
        check_range(self, "init_steps", ge=1)  # rollouts branch from real states
        check_range(self, "real_ratio", ge=0, le=1)
        sched = tuple(self.rollout_schedule)
        if (len(sched) != 4 or min(sched) < 0
                or sched[2] < 1 or sched[3] < 1 or sched[1] < sched[0]):
            raise ConfigError(f"{setting(self, 'rollout_schedule')} must be [epoch_a >= 0, epoch_b >= epoch_a, k_a >= 1, "
                              f"k_b >= 1], got {self.rollout_schedule}")
        check_choice(self, "propagation", PROPAGATIONS)


# ------------------------------------------------------------------------------------ presets
# Paper settings per env (Janner et al. 2019; github.com/jannerm/mbpo examples/config/*/0.py):
# (epochs, epoch_length, init_steps, updates_per_step G, SAC target entropy, rollout schedule);
# epochs cover the training lengths plotted in the paper (Hopper 125k steps, Walker2d/Ant 300k, HalfCheetah 400k).
# InvertedPendulum's config sets 500 initial steps and 80 epochs of 250 steps (20k steps).
_PAPER = {
    "InvertedPendulum-v5": (80, 250, 500, 10, -0.05, (1, 15, 1, 1)),
    "Hopper-v5": (125, 1000, 5000, 20, -1.0, (20, 150, 1, 15)),
    "Walker2d-v5": (300, 1000, 5000, 20, -3.0, (20, 150, 1, 1)),
    "HalfCheetah-v5": (400, 1000, 5000, 40, -3.0, (20, 150, 1, 1)),
    "Ant-v5": (300, 1000, 5000, 20, -4.0, (20, 100, 1, 25)),
}


def mbpo_preset(env: str) -> MBPOConfig:
    """The paper's settings for ``env`` (Hopper's structure with k = 1 and target entropy -|A| for others).

    Common to all (paper): 7 members / 5 elites, model fit every 250 steps, 100k rollouts per
    fit, model buffer of 1 epoch, real ratio 0.05, SAC 2x256 with lr 3e-4.
    """
    canonical = resolve_env_id(env)
    short = canonical.split("/")[-1]
    if canonical in _PAPER:
        epochs, length, init, G, entropy, schedule = _PAPER[canonical]
        return MBPOConfig(env=canonical, out=f"runs/mbpo-{short}", epochs=epochs, epoch_length=length,
                          init_steps=init, updates_per_step=G, rollout_schedule=schedule,
                          sac=SACConfig(target_entropy=entropy))
    return MBPOConfig(env=canonical, out=f"runs/mbpo-{short}", rollout_schedule=(20, 150, 1, 1),
                      sac=SACConfig(target_entropy=None))


# ------------------------------------------------------------------------------------ schedule
def rollout_length(schedule: tuple[int, int, int, int], epoch: int) -> int:
    """k at ``epoch``: k_a up to epoch_a, then linear to k_b at epoch_b, then k_b (truncated to an int)."""
    epoch_a, epoch_b, k_a, k_b = schedule
    if epoch <= epoch_a or epoch_b == epoch_a:
        return int(k_a if epoch <= epoch_a else k_b)
    frac = min((epoch - epoch_a) / (epoch_b - epoch_a), 1.0)
    return int(k_a + frac * (k_b - k_a))


def model_buffer_capacity(cfg: MBPOConfig, k: int) -> int:
    """Transitions of ``retain_epochs`` epochs of k-step rollouts (MBPO's model pool size)."""
    fits_per_epoch = math.ceil(cfg.epoch_length / cfg.model_train_freq)
    return cfg.retain_epochs * fits_per_epoch * cfg.rollout_batch_size * k


def mixed_batches(real: ReplayBuffer, model_buf: ModelBuffer, num: int, batch_size: int, real_ratio: float,
                  rng: np.random.Generator) -> TrainBatch:
    """``num`` policy batches ``[num, batch_size, ...]``: ``int(batch_size * real_ratio)`` real transitions each,
    the rest from the model buffer (all real while the model buffer is empty)."""
    n_real = batch_size if len(model_buf) == 0 else int(batch_size * real_ratio)
    n_model = batch_size - n_real
    r = real.sample(num * n_real, rng)
    real_tb = TrainBatch(r.obs, r.action, r.reward, r.next_obs, r.terminated.astype(np.float32))
    if n_model == 0:
        parts = [real_tb]
    else:
        parts = [real_tb, model_buf.take(model_buf.sample_indices(num * n_model, rng))]
    sizes = [n_real, n_model]

    def stack(*fields):
        chunks = [f.reshape(num, n, *f.shape[1:]) for f, n in zip(fields, sizes)]
        return np.concatenate(chunks, axis=1) if len(chunks) > 1 else chunks[0]

    return TrainBatch(*(stack(*fs) for fs in zip(*parts)))


# ------------------------------------------------------------------------------------ environment
class _Episode:
    """The real env and the episode in progress; episode ``i`` resets with seed ``base_seed + i``.

    Keeps the episode's actions so a resumed run can rebuild the env state by replaying them.
    """

    def __init__(self, env, base_seed: int):
        self.env, self.base_seed = env, base_seed
        self.index, self.actions, self.ret = 0, [], 0.0
        self.obs = None

    def reset(self) -> None:
        self.obs, _ = self.env.reset(seed=self.base_seed + self.index)
        self.actions, self.ret = [], 0.0

    def step(self, action: np.ndarray):
        """One env step; returns ``(obs, action, reward, next_obs, terminated, truncated, finished_return)``."""
        action = np.asarray(action, np.float32)
        obs = self.obs
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.actions.append(action)
        self.ret += float(reward)
        finished = None
        if terminated or truncated:
            finished = self.ret
            self.index += 1
            self.reset()
        else:
            self.obs = next_obs
        return obs, action, float(reward), next_obs, bool(terminated), bool(truncated), finished

    def state_dict(self) -> dict:
        return {"index": self.index, "return": self.ret, "actions": np.asarray(self.actions, np.float32).tolist(),
                "obs": np.asarray(self.obs, np.float64).tolist()}

    def restore(self, d: dict) -> None:
        """Reset with the episode's seed and replay its actions; a fresh episode if the env does not reproduce."""
        self.index = int(d["index"])
        self.reset()
        ended = False
        for a in d["actions"]:
            action = np.asarray(a, np.float32)
            self.obs, reward, terminated, truncated, _ = self.env.step(action)
            self.actions.append(action)
            self.ret += float(reward)
            if terminated or truncated:
                ended = True
                break
        if ended or not np.allclose(self.obs, np.asarray(d["obs"]), atol=1e-6):
            warnings.warn("the episode in progress at the checkpoint did not replay identically; starting a new one",
                          stacklevel=2)
            self.index += 1
            self.reset()


def evaluate_policy(learner: PolicyLearner, state, envs: list, seed: int) -> np.ndarray:
    """Returns of one episode per env with the deterministic policy, all envs stepped in lockstep.

    Env ``i`` resets with ``seed + i``; one ``act`` call per step serves every env (finished ones
    are padded with their last observation, so the batch shape never changes).
    """
    key = jax.random.PRNGKey(0)  # unused by a deterministic policy
    return evaluate_lockstep(lambda obs: learner.act(state, obs, key, deterministic=True), envs,
                             [seed + i for i in range(len(envs))])


def evaluate_lockstep(act, envs: list, reset_seeds: list[int]) -> np.ndarray:
    """Returns ``[M]`` of one episode per env, env ``i`` reset with ``reset_seeds[i]``, all stepped in
    lockstep by ``act(obs [M, D] float32) -> actions [M, A]`` (finished envs padded with their last obs)."""
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, reset_seeds)])
    returns, done = np.zeros(len(envs)), np.zeros(len(envs), bool)
    while not done.all():
        actions = np.asarray(act(obs.astype(np.float32)))
        for i, env in enumerate(envs):
            if done[i]:
                continue
            o, r, terminated, truncated, _ = env.step(actions[i])
            returns[i] += float(r)
            obs[i] = o
            done[i] = terminated or truncated
    return returns


# ------------------------------------------------------------------------------------ checkpoints
def _save_checkpoint(out: Path, epoch: int, learner_state, model_state, real: ReplayBuffer, model_buf: ModelBuffer,
                     loop: dict) -> None:
    """Write ``out/ckpt/epoch_N`` completely, then point ``checkpoint.json`` at it, then drop older folders."""
    save_checkpoint(out, f"epoch_{epoch:05d}", loop,
                    trees={"learner.msgpack": learner_state, "model.msgpack": model_state},
                    files={"real_buffer.npz": real, "model_buffer.npz": model_buf},
                    pointer={"epoch": epoch, "env_steps": loop["env_steps"]})


def _load_checkpoint(out: Path, learner_template, model_template, real_capacity: int):
    """``(learner_state, model_state, real, model_buf, loop)`` of the checkpoint, or None if there is none."""
    found = find_checkpoint(out)  # DataError naming a corrupt pointer or loop.json
    if found is None:
        return None
    folder, loop = found
    learner_state = load_pytree(folder / "learner.msgpack", learner_template)
    model_state = load_pytree(folder / "model.msgpack", model_template)
    real = ReplayBuffer.load(folder / "real_buffer.npz", capacity=real_capacity)
    model_buf = ModelBuffer.load(folder / "model_buffer.npz")
    return learner_state, model_state, real, model_buf, loop


# ------------------------------------------------------------------------------------ the loop
@contextmanager
def timed(times: dict, phase: str):
    """Add the wall-clock seconds of the block to ``times[phase]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        times[phase] += time.perf_counter() - t0


def fit_on_real(model, state, real: ReplayBuffer, key, trainer: TrainerConfig):
    """Fit the ensemble on every real transition; ``(state, stats)``. A diverged fit keeps its best weights."""
    try:
        result = fit(model, state, real.all(), key, trainer)
    except TrainingDivergedError as e:  # a long run goes on with the last good weights
        warnings.warn(f"model fit diverged ({e}); keeping the last good weights", stacklevel=2)
        return e.last_good, {}
    return result.state, fit_stats(model, result)


def fit_stats(model, result: FitResult) -> dict:
    """The metrics.csv columns of one model fit."""
    best = np.sort(result.holdout_mse)
    return {
        "model_train_loss": result.history[-1]["train_loss"] if result.history else float("nan"),
        "model_holdout_mse": float(best.mean()),
        "model_elite_holdout_mse": float(best[: model.num_elites].mean()),
        "model_fit_epochs": len(result.history),
    }


def default_learner(task: Task | None, obs_dim: int, act_dim: int, low: np.ndarray, high: np.ndarray,
                    sac: SACConfig) -> tuple[PolicyLearner, str]:
    """MBPO's default learner and its policy-input tag: SAC on the task's policy features (no root
    x), as ``train sac`` does, or on the raw observations where the task has none."""
    if task is not None and task.policy_features is not None:
        return (ObservedThrough(SAC(task.policy_feature_dim, act_dim, low, high, sac), task.policy_features, obs_dim),
                task.policy_input_tag())
    return SAC(obs_dim, act_dim, low, high, sac), "raw"


class Parts(NamedTuple):
    """What every seed of an MBPO run shares: the env's task and shapes, the learner, the model and its rollout."""

    task: Task | None
    low: np.ndarray  # [A] action bounds
    high: np.ndarray  # [A]
    obs_dim: int
    act_dim: int
    learner: PolicyLearner
    policy_input: str  # the learner's input tag, checked on resume
    batch_size: int  # policy batch size
    model: Any  # DynamicsModel
    rollout_fn: Any  # make_branched_rollout's jitted function


def make_parts(cfg: MBPOConfig, env, learner: PolicyLearner | None = None) -> Parts:
    """The learner (default: :func:`default_learner`), model and rollout function for ``cfg`` on ``env``."""
    task = get_task(cfg.env)
    low, high = action_bounds(env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    if learner is None:
        learner, policy_input = default_learner(task, obs_dim, act_dim, low, high, cfg.sac)
    else:
        policy_input = f"custom {type(learner).__name__}"
    if (learner.obs_dim, learner.act_dim) != (obs_dim, act_dim):
        raise ConfigError(f"learner has obs/act dims {learner.obs_dim}/{learner.act_dim}, env has {obs_dim}/{act_dim}")
    batch_size = int(getattr(getattr(learner, "config", None), "batch_size", cfg.sac.batch_size))
    model = dataclasses.replace(cfg.model, predict_reward=True).build_for_task(obs_dim, act_dim, task)
    rollout_fn = make_branched_rollout(model, learner, task, learned_reward=cfg.learned_reward,
                                       propagation=cfg.propagation)
    return Parts(task, low, high, obs_dim, act_dim, learner, policy_input, batch_size, model, rollout_fn)


def init_states(parts: Parts, seed: int):
    """``(key, learner_state, model_state)`` of a fresh run with ``seed``."""
    key = jax.random.PRNGKey(seed)
    key, k_learner, k_model = jax.random.split(key, 3)
    return key, parts.learner.init(k_learner), parts.model.init(k_model)


def total_steps(cfg: MBPOConfig) -> int:
    """Env steps of the whole run: the initial exploration and every epoch."""
    return cfg.init_steps + cfg.epochs * cfg.epoch_length


class HostRun:
    """One run's host side: its real env (episode in progress), real and model buffers, NumPy generator,
    loop counters (checkpointed as loop.json) and logger. :func:`run` has one; ``mbpo_seeds.run`` one per seed."""

    def __init__(self, cfg: MBPOConfig, env, parts: Parts):
        self.cfg, self.out = cfg, Path(cfg.out)
        self.real = ReplayBuffer(min(cfg.buffer_capacity, total_steps(cfg)), parts.obs_dim, parts.act_dim)
        k = rollout_length(cfg.rollout_schedule, 0)
        self.model_buf = ModelBuffer(model_buffer_capacity(cfg, k), parts.obs_dim, parts.act_dim)
        self.rng = np.random.default_rng(cfg.seed)
        self.loop: dict[str, Any] = {"env_id": resolve_env_id(cfg.env), "policy_input": parts.policy_input, "epoch": 0,
                                     "env_steps": 0, "updates": 0, "model_fits": 0, "train_returns": [],
                                     "eval_returns": [], "time_s": {p: 0.0 for p in PHASES}}
        self.episode = _Episode(env, cfg.seed)
        self.logger: RunLogger | None = None

    def start_logging(self, resumed: bool) -> None:
        """Open the run folder's logger; on resume, rows after the checkpoint's (one per evaluation) belong
        to the lost stretch: dropped, and their TensorBoard events hidden."""
        self.logger = RunLogger(self.out, self.cfg, resume=resumed,
                                keep_rows=len(self.loop["eval_returns"]) if resumed else None)

    def env_step(self, action) -> None:
        """One real step with ``action [A]``, stored in the real buffer."""
        obs, action, reward, next_obs, terminated, truncated, finished = self.episode.step(action)
        self.real.add(obs, action, reward, next_obs, terminated, truncated)
        self.loop["env_steps"] += 1
        if finished is not None:
            self.loop["train_returns"] = (self.loop["train_returns"] + [finished])[-100:]

    def explore(self, low: np.ndarray, high: np.ndarray, on_step: Callable[[], Any] = lambda: None) -> int:
        """Uniformly random steps until ``init_steps``, ``on_step()`` after each (the single run's progress
        bar ticks per step, as a bar does in the epochs); returns how many were taken."""
        n = 0
        while self.loop["env_steps"] < self.cfg.init_steps:
            self.env_step(self.rng.uniform(low, high).astype(np.float32))
            on_step()
            n += 1
        return n

    def start_epoch(self, epoch: int) -> int:
        """The epoch's rollout length k; the model buffer is reallocated when k changes its capacity (as MBPO's pool)."""
        k = rollout_length(self.cfg.rollout_schedule, epoch)
        capacity = model_buffer_capacity(self.cfg, k)
        if capacity != self.model_buf.capacity:
            self.model_buf = self.model_buf.resized(capacity)
        return k

    def rollout_starts(self) -> np.ndarray:
        """``[rollout_batch_size, D]`` real states to branch rollouts from."""
        return self.real.sample(self.cfg.rollout_batch_size, self.rng).obs

    def add_rollouts(self, batch) -> dict:
        """Store a rollout batch's valid transitions; its metrics.csv stats."""
        added = self.model_buf.add_rollouts(batch)
        reward = np.asarray(batch.reward)[np.asarray(batch.valid)]
        return {"rollout_transitions": added, "rollout_reward": float(reward.mean()) if added else float("nan")}

    def policy_batches(self, batch_size: int) -> TrainBatch:
        """``updates_per_step`` mixed policy batches ``[G, B, ...]`` (all real when the model is off)."""
        return mixed_batches(self.real, self.model_buf, self.cfg.updates_per_step, batch_size, self.cfg.real_ratio,
                             self.rng)

    def checkpoint(self, epoch: int, key, learner_state, model_state) -> None:
        """Checkpoint (if enabled) with the run's loop key ``key``."""
        if self.cfg.checkpoint:
            self.loop.update(np_rng=self.rng.bit_generator.state, jax_key=np.asarray(key).tolist(),
                             episode=self.episode.state_dict())
            _save_checkpoint(self.out, epoch, learner_state, model_state, self.real, self.model_buf, self.loop)

    def log_epoch(self, epoch: int, k: int, returns: np.ndarray, fits: list[dict], rollouts: list[dict],
                  means: dict, times: dict) -> dict:
        """Count epoch ``epoch`` done and log its metrics.csv row (evaluation ``returns [E]``, fit and rollout
        stats, the policy learner's ``means``, the phases' seconds ``times``); returns the row."""
        loop, clock = self.loop, self.loop["time_s"]
        for p in PHASES:
            clock[p] += times[p]
        loop["epoch"] = epoch + 1
        loop["eval_returns"].append([loop["env_steps"], float(returns.mean())])
        recent = loop["train_returns"][-10:]
        row = {"epoch": epoch + 1, "env_steps": loop["env_steps"], "return": float(returns.mean()),
               "return_std": float(returns.std()), "train_return": float(np.mean(recent)) if recent else float("nan"),
               "rollout_length": k, "model_buffer_size": len(self.model_buf), "updates": loop["updates"]}
        for stats in (fits, rollouts):
            for name in dict.fromkeys(n for s in stats for n in s):
                row[name] = float(np.nanmean([s[name] for s in stats if name in s]))
        row.update(means)
        row.update({f"time_{p}_s": round(times[p], 3) for p in PHASES})
        row["time_epoch_s"] = round(sum(times.values()), 3)
        row["time_s"] = round(sum(clock.values()), 2)
        self.logger.log(row)
        return row

    def finish(self) -> dict[str, Any]:
        """Plot the learning curve, write results.json and close the logger; returns the summary."""
        cfg, loop, out = self.cfg, self.loop, self.out
        plot_learning_curve(self.logger.rows, out / "learning_curve.png", x="env_steps", y="return",
                            title=f"MBPO on {resolve_env_id(cfg.env)}")
        evals = loop["eval_returns"]
        results = {
            "env_id": resolve_env_id(cfg.env),
            "seed": cfg.seed,
            "epochs": loop["epoch"],
            "env_steps": loop["env_steps"],
            "updates": loop["updates"],
            "final_return": evals[-1][1] if evals else None,
            "best_return": max(r for _, r in evals) if evals else None,
            "eval_returns": evals,
            "time_s": {p: round(v, 2) for p, v in loop["time_s"].items()},
            "out_dir": str(out),
        }
        self.logger.write_json("results.json", results)
        self.logger.close()
        return results


def policy_means(policy_metrics: list[dict]) -> dict[str, float]:
    """Each learner metric's mean over an epoch's update calls (``policy_metrics``: one dict of scalars per call)."""
    return {name: float(np.mean(np.stack([np.asarray(m[name]) for m in policy_metrics])))
            for name in policy_metrics[0]}


def run(cfg: MBPOConfig, learner: PolicyLearner | None = None) -> dict[str, Any]:
    """Train with MBPO; returns the summary also written to ``out/results.json``.

    ``learner``: any :class:`PolicyLearner` sized for the env's raw observations (default: ``SAC``
    with ``cfg.sac`` on the task's ``policy_features``).
    """
    out = Path(cfg.out)
    env = make_env(cfg.env, seed=cfg.seed)
    eval_envs = [make_env(cfg.env) for _ in range(cfg.eval_episodes)]
    parts = make_parts(cfg, env, learner)
    learner, model, rollout_fn = parts.learner, parts.model, parts.rollout_fn
    use_model = cfg.real_ratio < 1.0

    # ---- fresh state, or the checkpoint's
    key, learner_state, model_state = init_states(parts, cfg.seed)
    host = HostRun(cfg, env, parts)
    resume = cfg.resume and check_resume(out, POINTER)
    restored = _load_checkpoint(out, learner_state, model_state, host.real.capacity) if resume else None
    if restored is not None:
        learner_state, model_state, host.real, host.model_buf, host.loop = restored
        loop = host.loop
        if loop["env_id"] != resolve_env_id(cfg.env):
            raise ConfigError(f"checkpoint in {out} is for {loop['env_id']}, not {cfg.env}")
        check_same_policy_input(loop, parts.policy_input, str(out))
        host.real.check_compatible(parts.obs_dim, parts.act_dim, "checkpoint real buffer")
        model_buf_dims = (host.model_buf.obs_dim, host.model_buf.act_dim)
        if model_buf_dims != (parts.obs_dim, parts.act_dim):
            raise DataError(f"checkpoint model buffer has dims {model_buf_dims}, env has {(parts.obs_dim, parts.act_dim)}")
        host.rng.bit_generator.state = loop["np_rng"]
        key = jnp.asarray(np.asarray(loop["jax_key"], np.uint32))
        host.episode.restore(loop["episode"])
    else:
        host.episode.reset()
        clear_checkpoint(out)  # a new run: an earlier run's checkpoint must not meet this one's
    host.start_logging(resumed=restored is not None)
    loop = host.loop
    bar = tqdm(total=total_steps(cfg), initial=loop["env_steps"], disable=not cfg.progress, unit="step",
               desc=f"mbpo {cfg.env}", dynamic_ncols=True)

    # ---- initial exploration: uniformly random actions
    if restored is None:
        with timed(loop["time_s"], "env"):
            host.explore(parts.low, parts.high, on_step=lambda: bar.update(1))
        host.checkpoint(0, key, learner_state, model_state)

    for epoch in range(loop["epoch"], cfg.epochs):
        times = {p: 0.0 for p in PHASES}
        k = host.start_epoch(epoch)
        key, k_act, k_update, k_fit = jax.random.split(key, 4)
        act_keys = np.asarray(jax.random.split(k_act, cfg.epoch_length))
        update_keys = np.asarray(jax.random.split(k_update, cfg.epoch_length))
        fits, rollouts, policy_metrics = [], [], []  # per fit / rollout batch / update call: its stats

        for t in range(cfg.epoch_length):
            if use_model and t % cfg.model_train_freq == 0:
                k_fit_t, k_roll_t = jax.random.split(jax.random.fold_in(k_fit, t))
                with timed(times, "model"):  # fit the ensemble on all real data
                    model_state, stats = fit_on_real(model, model_state, host.real, k_fit_t, cfg.trainer)
                    fits.append(stats)
                    loop["model_fits"] += 1
                with timed(times, "rollout"):  # branch k-step rollouts from real states
                    start = jnp.asarray(host.rollout_starts())
                    batch = rollout_fn(model_state, learner_state, start, k_roll_t, horizon=k)
                    rollouts.append(host.add_rollouts(batch))

            with timed(times, "env"):  # one real step with the stochastic policy
                obs = host.episode.obs[None].astype(np.float32)
                host.env_step(np.asarray(learner.act(learner_state, obs, act_keys[t]))[0])
                bar.update(1)

            with timed(times, "policy"):  # G updates on mixed real/model batches, one compiled call
                batches = host.policy_batches(parts.batch_size)
                learner_state, metrics = learner.update_many(learner_state, batches, update_keys[t])
                jax.block_until_ready(learner_state)
                policy_metrics.append(metrics)
                loop["updates"] += cfg.updates_per_step

        # ---- evaluate, log, checkpoint
        with timed(times, "eval"):
            returns = evaluate_policy(learner, learner_state, eval_envs, seed=cfg.seed + 1_000_000)
        means = policy_means(policy_metrics)
        bad = [name for name, v in means.items() if not math.isfinite(v)]
        if bad:
            bar.close()
            raise TrainingDivergedError(f"the policy learner diverged in epoch {epoch} (non-finite {bad}); "
                                        f"the checkpoint in {out} holds the last good state", last_good=None)
        row = host.log_epoch(epoch, k, returns, fits, rollouts, means, times)
        bar.set_postfix(epoch=epoch + 1, ret=f"{row['return']:.1f}", k=k)
        host.checkpoint(epoch + 1, key, learner_state, model_state)
    bar.close()

    results = host.finish()
    for e in [env, *eval_envs]:
        e.close()
    return results
