"""Model-free SAC training on a Gymnasium environment: ``mbrlax train sac``.

The loop, as in the paper's pseudocode (Haarnoja et al. 2018, Alg. 1):

    for each env step:
        act (uniformly at random for the first ``start_steps``, then with the stochastic policy)
        store the transition in the replay buffer
        every ``update_every`` steps: ``update_every * updates_per_step`` gradient steps
        every ``eval_every`` steps: evaluate the deterministic policy, log a row, checkpoint

Batched updates: instead of one jitted update per env step we run the updates of
``update_every`` steps in one ``lax.scan`` (``SAC.update_many``), as Spinning Up's SAC does
(update_every=50). The number of gradient steps per env step is unchanged; the only difference
is that the policy collecting data lags by at most ``update_every`` steps. Measured on
Pendulum-v1 (128x128 nets, lr 1e-3, 1k random steps, eval = 10 deterministic episodes):

    eval return at 4k / 6k / 8k env steps    update_every=50         update_every=1 (1:1)
    seed 0                                   -213 / -204 / -200      -240 / -197 / -188
    seed 1                                   -223 / -200 / -196      -224 / -203 / -208

so batching does not hurt learning; it saves one dispatch and one host->device copy per update
(on 2 CPU cores the 2x256 update dominates, so the speed-up is modest there and large on GPU).

Checkpoints (at every evaluation) go to ``OUT/ckpt/step_N/`` (learner state as msgpack, replay
buffer as npz, loop counters and RNG states as JSON); ``OUT/checkpoint.json`` is then replaced
atomically to point at the new folder, so a run killed at any moment leaves a consistent
checkpoint. ``resume=True`` continues from it; the episode in progress at the checkpoint is
dropped (the environment is reset), everything else (buffer, networks, optimiser, RNGs,
counters, metrics rows) continues.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm.auto import tqdm

from mbrlax.agents.learner import sample_stacked
from mbrlax.agents.sac import SAC, SACConfig
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.envs.registry import get_task, resolve_env_id
from mbrlax.errors import ConfigError, TrainingDivergedError
from mbrlax.utils import checkpoint as checkpoint_files
from mbrlax.utils.checkpoint import POINTER, check_same_policy_input, clear_checkpoint, load_pytree
from mbrlax.utils.plots import plot_learning_curve
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_nonempty, check_range, check_resume, check_seed

CHECKPOINT_FILE = POINTER  # its presence in ``out`` marks a checkpoint (the CLI's --resume check)


@dataclasses.dataclass(frozen=True)
class SACTrainConfig:
    """Settings of a SAC training run."""

    env: str = "Pendulum-v1"
    """Gymnasium environment id or mbrlax alias (continuous Box actions)."""
    seed: int = 0
    """Seed of the environment, the networks and every random draw."""
    out: str = "runs/sac"
    """Run folder: config.json, metrics.csv, tb/, learning_curve.png, results.json, checkpoints."""
    total_steps: int = 100_000
    """Environment steps to train for."""
    start_steps: int = 5_000
    """Initial steps with uniformly random actions; updates start after them (CleanRL's learning_starts)."""
    updates_per_step: int = 1
    """Gradient steps per environment step (update-to-data ratio; paper: 1)."""
    update_every: int = 50
    """Env steps between update calls; each call runs update_every * updates_per_step steps in one scan."""
    eval_every: int = 5_000
    """Env steps between evaluations (and checkpoints)."""
    eval_episodes: int = 10
    """Episodes per evaluation, with the deterministic policy tanh(mean)."""
    buffer_capacity: int = 1_000_000
    """Replay buffer capacity in transitions (paper: 1e6)."""
    sac: SACConfig = SACConfig()
    """SAC hyperparameters (networks, learning rates, discount, batch size, ...)."""
    checkpoint: bool = True
    """Write a checkpoint (learner state + replay buffer) at every evaluation."""
    resume: bool = False
    """Continue from the checkpoint in out if there is one."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self):
        check_nonempty(self, "env", "out")
        check_seed(self)
        check_range(self, "total_steps", "updates_per_step", "update_every", "eval_every", "eval_episodes",
                    "buffer_capacity", ge=1)
        check_range(self, "start_steps", ge=0)


# ------------------------------------------------------------------------------------ environment
def make_sac_env(env_id: str, seed: int | None = None):
    """The library's env factory (aliases, clear errors), observed through the task's features.

    ``make_env`` keeps a runner's x position for the task's reward; SAC must not see it (an
    unbounded input): measured on HalfCheetah-v5 with it, 3354 and 3386 at 100k steps (2 seeds).
    """
    from mbrlax.envs.registry import make_env
    from mbrlax.envs.wrappers import TaskFeatures

    env = make_env(env_id, seed=seed)
    task = get_task(env_id)
    if task is not None and task.policy_features is not None:
        env = TaskFeatures(env, task.policy_features, task.policy_feature_dim)
    return env


def evaluate(learner: SAC, state, env, episodes: int, seed: int, task=None) -> tuple[np.ndarray, float | None]:
    """Returns of ``episodes`` episodes with the deterministic policy (episode i resets with ``seed + i``),
    and their mean success rate if ``task`` has a success measure (``Task.success_rate``; the env must
    show the task's raw observations, i.e. no policy features), else None."""
    key = jax.random.PRNGKey(0)  # unused by the deterministic policy
    returns, success = [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        ret, done, visited = 0.0, False, []
        while not done:
            action = np.asarray(learner.act(state, obs[None], key, deterministic=True))[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            visited.append(obs)
            ret += float(reward)
            done = terminated or truncated
        returns.append(ret)
        if task is not None:
            success.append(task.success_rate(np.stack(visited), task.max_episode_steps))
    return np.asarray(returns), (float(np.mean(success)) if success and success[0] is not None else None)


# ------------------------------------------------------------------------------------ checkpoints
def save_checkpoint(out_dir: Path, state, buffer: ReplayBuffer, loop: dict) -> Path:
    """Write ``out_dir/ckpt/step_N`` then atomically point ``checkpoint.json`` at it; drop older ones."""
    return checkpoint_files.save_checkpoint(out_dir, f"step_{loop['env_steps']:09d}", loop,
                                            trees={"learner.msgpack": state}, files={"buffer.npz": buffer},
                                            pointer={"env_steps": loop["env_steps"]})


def load_checkpoint(out_dir: Path, state_template, capacity: int):
    """``(state, buffer, loop)`` from the checkpoint ``checkpoint.json`` points at, or None if there is none."""
    found = checkpoint_files.find_checkpoint(out_dir)  # DataError naming a corrupt pointer or loop.json
    if found is None:
        return None
    folder, loop = found
    state = load_pytree(folder / "learner.msgpack", state_template)  # checks shapes too
    buffer = ReplayBuffer.load(folder / "buffer.npz", capacity=capacity)
    return state, buffer, loop


# ------------------------------------------------------------------------------------ training
def train_sac(config: SACTrainConfig) -> dict[str, Any]:
    """Train SAC on ``config.env``; returns a summary (also written to ``out_dir/results.json``)."""
    out_dir = Path(config.out)
    env = make_sac_env(config.env, seed=config.seed)  # raises ConfigError for unknown ids
    eval_env = make_sac_env(config.env, seed=config.seed + 1)
    learner = SAC.for_env(env, config.sac)
    obs_dim, act_dim = learner.obs_dim, learner.act_dim

    key = jax.random.PRNGKey(config.seed)
    key, init_key = jax.random.split(key)
    state = learner.init(init_key)
    buffer = ReplayBuffer(min(config.buffer_capacity, config.total_steps), obs_dim, act_dim)
    rng = np.random.default_rng(config.seed)
    env_id = resolve_env_id(config.env)
    task = get_task(config.env)
    policy_input = task.policy_input_tag() if task is not None else "raw"
    loop = {"env": env_id, "policy_input": policy_input, "env_steps": 0, "episodes": 0, "updates": 0,
            "time_s": 0.0, "train_returns": [], "eval_returns": []}

    resume = config.resume and check_resume(out_dir, POINTER)
    restored = load_checkpoint(out_dir, state, buffer.capacity) if resume else None
    if restored is not None:
        state, buffer, loop = restored
        if loop["env"] != env_id:
            raise ConfigError(f"checkpoint in {out_dir} is for {loop['env']}, not {config.env}")
        check_same_policy_input(loop, policy_input, str(out_dir))
        buffer.check_compatible(obs_dim, act_dim, "checkpoint buffer")
        rng.bit_generator.state = loop["np_rng"]
        key = np.asarray(loop["jax_key"], np.uint32)
    else:
        clear_checkpoint(out_dir)  # a new run: an earlier run's checkpoint must not meet this one's
    # on resume, rows logged after the checkpoint's (one per evaluation) belong to the lost stretch:
    # dropped, and their TensorBoard events hidden
    logger = RunLogger(out_dir, config, resume=restored is not None,
                       keep_rows=len(loop["eval_returns"]) if restored is not None else None)

    obs, _ = env.reset(seed=config.seed + loop["episodes"])
    ep_return, metrics = 0.0, None
    t_start, time_before = time.perf_counter(), loop["time_s"]
    act_keys: np.ndarray = np.zeros((0, 2), np.uint32)
    bar = tqdm(total=config.total_steps, initial=loop["env_steps"], disable=not config.progress,
               desc=f"sac {config.env}", unit="step", dynamic_ncols=True)
    updates_per_call = config.update_every * config.updates_per_step

    while loop["env_steps"] < config.total_steps:
        # ---- act and store
        if loop["env_steps"] < config.start_steps:
            action = rng.uniform(learner.action_low, learner.action_high).astype(np.float32)
        else:
            if len(act_keys) == 0:  # one split serves the next 256 steps (no per-step key dispatch)
                key, sub = jax.random.split(key)
                act_keys = np.asarray(jax.random.split(sub, 256))
            action = np.asarray(learner.act(state, obs[None], act_keys[0]))[0]
            act_keys = act_keys[1:]
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        ep_return += float(reward)
        obs = next_obs
        loop["env_steps"] += 1
        bar.update(1)
        if terminated or truncated:
            loop["episodes"] += 1
            loop["train_returns"].append(ep_return)
            obs, _ = env.reset()
            ep_return = 0.0

        # ---- learn: the updates of `update_every` env steps in one compiled call
        if loop["env_steps"] >= config.start_steps and loop["env_steps"] % config.update_every == 0:
            batches = sample_stacked(buffer, updates_per_call, config.sac.batch_size, rng)
            key, sub = jax.random.split(key)
            new_state, metrics = learner.update_many(state, batches, sub)
            if not math.isfinite(float(metrics["critic_loss"])) or not math.isfinite(float(metrics["actor_loss"])):
                bar.close()
                raise TrainingDivergedError(
                    f"SAC diverged at env step {loop['env_steps']} (non-finite loss)", last_good=state)
            state = new_state
            loop["updates"] += updates_per_call

        # ---- evaluate, log, checkpoint
        if loop["env_steps"] % config.eval_every == 0 or loop["env_steps"] == config.total_steps:
            eval_returns, success = evaluate(learner, state, eval_env, config.eval_episodes, seed=config.seed + 100_000,
                                             task=task if task is not None and task.policy_features is None else None)
            loop["time_s"] = time_before + time.perf_counter() - t_start
            recent = loop["train_returns"][-10:]
            row = {
                "env_steps": loop["env_steps"],
                "return": float(eval_returns.mean()),
                "return_std": float(eval_returns.std()),
                "train_return": float(np.mean(recent)) if recent else float("nan"),
                "episodes": loop["episodes"],
                "updates": loop["updates"],
                "time_s": round(loop["time_s"], 2),
            }
            if success is not None:
                row["success"] = success
            if metrics is not None:
                row.update({k: float(v) for k, v in metrics.items()})
            logger.log(row)
            loop["eval_returns"].append([loop["env_steps"], row["return"]])
            bar.set_postfix(ret=f"{row['return']:.1f}", alpha=f"{row.get('alpha', float('nan')):.3f}")
            if config.checkpoint:
                loop["np_rng"] = rng.bit_generator.state
                loop["jax_key"] = np.asarray(key).tolist()
                loop["train_returns"] = loop["train_returns"][-100:]
                save_checkpoint(out_dir, state, buffer, loop)
    bar.close()

    plot_learning_curve(logger.rows, out_dir / "learning_curve.png", x="env_steps", y="return",
                        title=f"SAC on {config.env}")
    evals = loop["eval_returns"]
    results = {
        "env": env_id,
        "seed": config.seed,
        "env_steps": loop["env_steps"],
        "updates": loop["updates"],
        "final_return": evals[-1][1] if evals else None,
        "best_return": max(r for _, r in evals) if evals else None,
        "time_s": round(time_before + time.perf_counter() - t_start, 2),
        "eval_returns": evals,
        "out": str(out_dir),
    }
    logger.write_json("results.json", results)
    logger.close()
    return results
