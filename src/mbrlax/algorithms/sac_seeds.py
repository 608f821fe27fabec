"""Several SAC seeds trained together in one process: ``mbrlax train sac-seeds --seeds 0 1 2 3 4``.

The same loop as :func:`~mbrlax.algorithms.sac_train.train_sac`, run for ``N`` seeds in lockstep
(every seed is at the same env step at every moment):

- the ``N`` learner states are one pytree with a leading seed axis ``[N, ...]``; every update call
  is ``jax.vmap`` of :meth:`SAC.update_many` over it (one compiled call for all seeds), every
  policy step ``jax.vmap`` of :meth:`SAC.act` (one dispatch for all seeds instead of ``N``);
- the ``N`` environments (and ``N`` evaluation environments) are stepped in a Python loop, not
  as a Gymnasium vector env: a ``SyncVectorEnv`` is the same loop inside, and its autoreset
  (next-step by default, the final observation in ``info``) would change when and how each
  seed's episodes restart; the loop keeps every seed's reset stream exactly that of a single run;
- ``N`` replay buffers and ``N`` NumPy generators, each seeded as the single run seeds its own.

So seed ``k`` draws the same random numbers, sees the same transitions and samples the same
batches as ``mbrlax train sac --seed k``; its folder ``OUT/seed<k>/`` holds what that command
would write (config.json with ``seed=k`` and ``out=OUT/seed<k>``, metrics.csv with the same
columns, tb/, learning_curve.png, results.json, and its checkpoints). Numbers agree with the
single run up to float rounding of the batched matmuls (see tests/algorithms/test_sac_seeds.py).
``time_s`` is the wall time of the whole batched run, shared by all seeds.

Checkpoints are written per seed folder in the single run's format, so any seed can be continued
alone with ``mbrlax train sac --seed k --out OUT/seed<k> --resume``; resuming the batched run
itself is not implemented (``--resume`` is refused) because seeds killed between two folders'
writes can sit at different steps, which lockstep cannot continue.
A non-finite loss in any seed stops the whole run (``TrainingDivergedError`` naming the seeds).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import jax
import numpy as np
import tyro
from tqdm.auto import tqdm

from mbrlax.agents.learner import sample_stacked
from mbrlax.agents.sac import SAC
from mbrlax.utils.validate import check_seeds_config
from mbrlax.algorithms.sac_train import SACTrainConfig, make_sac_env, save_checkpoint
from mbrlax.algorithms.seed_axis import stack
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.envs.registry import get_task, resolve_env_id
from mbrlax.errors import ConfigError, TrainingDivergedError
from mbrlax.models.trainer import split_seeds
from mbrlax.utils.checkpoint import clear_checkpoint
from mbrlax.utils.plots import plot_learning_curve
from mbrlax.utils.run_logger import RunLogger


@dataclasses.dataclass(frozen=True)
class SACSeedsConfig(SACTrainConfig):
    """Settings of ``mbrlax train sac-seeds``: those of ``mbrlax train sac`` for every seed, plus the seeds."""

    seed: tyro.conf.Suppress[int] = 0  # not a flag: each run's seed comes from ``seeds``
    out: str = "runs/sac-seeds"
    """Parent folder: seed k's run folder is OUT/seed<k>/, as `mbrlax train sac --seed k --out OUT/seed<k>` writes it."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds trained together (one vmapped learner state per seed)."""
    resume: bool = False
    """Refused (seeds can stop at different points): continue one seed with `mbrlax train sac --seed K --out OUT/seedK --resume`."""

    def __post_init__(self):
        super().__post_init__()
        check_seeds_config(self, "mbrlax train sac")

    def single(self) -> SACTrainConfig:
        """The shared settings as a SACTrainConfig (its ``seed`` and ``out`` are replaced per seed)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(SACTrainConfig)}
        return SACTrainConfig(**fields)


def run(config: SACSeedsConfig) -> list[dict]:
    """The CLI's entry point: :func:`train_sac_seeds` with the config's seeds."""
    return train_sac_seeds(config.single(), config.seeds)


# ------------------------------------------------------------------------------------ vmapped learner calls
@functools.partial(jax.jit, static_argnums=(0, 4))
def act_seeds(learner: SAC, states, obs, keys, deterministic: bool):
    """``states [N, ...], obs [N, 1, D], keys [N, 2] -> actions [N, 1, A]``."""
    return jax.vmap(lambda s, o, k: learner.act(s, o, k, deterministic))(states, obs, keys)


@functools.partial(jax.jit, static_argnums=0)
def update_seeds(learner: SAC, states, batches, keys):
    """``states [N, ...], batches [N, G, B, ...], keys [N, 2] -> (states [N, ...], metrics {name: [N]})``."""
    return jax.vmap(learner.update_many)(states, batches, keys)


@jax.jit
def _act_keys_seeds(keys):
    """``keys [N, 2] -> [N, 256, 2]``: each seed's ``split(key, 256)`` (keys for its next 256 policy steps)."""
    return jax.vmap(lambda k: jax.random.split(k, 256))(keys)


def evaluate_seeds(learner: SAC, states, envs: list, episodes: int, seeds: list[int], task=None):
    """Per seed ``k``, what :func:`~mbrlax.algorithms.sac_train.evaluate` returns for ``(states[k], envs[k],
    seeds[k])``; the envs are stepped in lockstep with one vmapped deterministic act per step.
    Returns ``(returns [N, episodes], success rates [N] or None)``."""
    n = len(envs)
    keys = np.zeros((n, 2), np.uint32)  # unused by the deterministic policy
    returns = np.zeros((n, episodes))
    success: list[list] = [[] for _ in range(n)]
    for i in range(episodes):
        obs = np.stack([env.reset(seed=s + i)[0] for env, s in zip(envs, seeds)])  # [N, D]
        done = np.zeros(n, bool)
        visited: list[list] = [[] for _ in range(n)]
        while not done.all():
            actions = np.asarray(act_seeds(learner, states, obs[:, None], keys, True))[:, 0]  # [N, A]
            for k in np.flatnonzero(~done):
                obs[k], reward, terminated, truncated, _ = envs[k].step(actions[k])
                visited[k].append(obs[k].copy())
                returns[k, i] += float(reward)
                done[k] = terminated or truncated
        if task is not None:
            for k in range(n):
                success[k].append(task.success_rate(np.stack(visited[k]), task.max_episode_steps))
    if task is None or success[0][0] is None:
        return returns, None
    return returns, np.asarray([float(np.mean(s)) for s in success])


# ------------------------------------------------------------------------------------ training
def train_sac_seeds(config: SACTrainConfig, seeds: tuple[int, ...]) -> list[dict]:
    """Train SAC with ``config`` for every seed in ``seeds`` at once (``config.seed`` is ignored);
    seed ``k``'s run folder is ``config.out/seed<k>``. Returns the per-seed summaries (results.json)."""
    seeds = tuple(int(s) for s in seeds)
    n = len(seeds)
    if config.resume:
        raise ConfigError("train_sac_seeds cannot resume; resume a seed folder with train_sac")
    configs = [dataclasses.replace(config, seed=s, out=str(Path(config.out) / f"seed{s}")) for s in seeds]
    envs = [make_sac_env(c.env, seed=c.seed) for c in configs]
    eval_envs = [make_sac_env(c.env, seed=c.seed + 1) for c in configs]
    learner = SAC.for_env(envs[0], config.sac)
    env_id, task = resolve_env_id(config.env), get_task(config.env)
    eval_task = task if task is not None and task.policy_features is None else None
    policy_input = task.policy_input_tag() if task is not None else "raw"

    keys = np.stack([np.asarray(jax.random.PRNGKey(s)) for s in seeds])  # [N, 2], train_sac's key per seed
    keys, init_keys = split_seeds(keys)
    # each seed's init is the single run's compiled init (a vmapped init compiled 7x slower)
    states = jax.device_put(stack([learner.init(k) for k in init_keys]))  # [N, ...]
    buffers = [ReplayBuffer(min(c.buffer_capacity, c.total_steps), learner.obs_dim, learner.act_dim) for c in configs]
    rngs = [np.random.default_rng(s) for s in seeds]
    loops = [{"env": env_id, "policy_input": policy_input, "env_steps": 0, "episodes": 0, "updates": 0,
              "time_s": 0.0, "train_returns": [], "eval_returns": []} for _ in seeds]
    loggers = []
    for c in configs:
        clear_checkpoint(Path(c.out))  # a new run: an earlier run's checkpoint must not meet this one's
        loggers.append(RunLogger(c.out, c))

    obs = [env.reset(seed=s)[0] for env, s in zip(envs, seeds)]  # N x [D]
    ep_returns, metrics = [0.0] * n, None
    t_start = time.perf_counter()
    act_keys = np.zeros((n, 0, 2), np.uint32)  # [N, K, 2]
    bar = tqdm(total=config.total_steps, disable=not config.progress, desc=f"sac {config.env} x{n} seeds",
               unit="step", dynamic_ncols=True)
    updates_per_call = config.update_every * config.updates_per_step
    steps = 0  # env steps, the same for every seed

    while steps < config.total_steps:
        # ---- act (one vmapped call for all seeds) and store
        if steps < config.start_steps:
            actions = [rng.uniform(learner.action_low, learner.action_high).astype(np.float32) for rng in rngs]
        else:
            if act_keys.shape[1] == 0:
                keys, sub = split_seeds(keys)
                act_keys = np.asarray(_act_keys_seeds(sub))  # [N, 256, 2]
            actions = list(np.asarray(act_seeds(learner, states, np.stack(obs)[:, None], act_keys[:, 0], False))[:, 0])
            act_keys = act_keys[:, 1:]
        steps += 1
        bar.update(1)
        for k in range(n):
            next_obs, reward, terminated, truncated, _ = envs[k].step(actions[k])
            buffers[k].add(obs[k], actions[k], reward, next_obs, terminated, truncated)
            ep_returns[k] += float(reward)
            obs[k] = next_obs
            loops[k]["env_steps"] = steps
            if terminated or truncated:
                loops[k]["episodes"] += 1
                loops[k]["train_returns"].append(ep_returns[k])
                obs[k], _ = envs[k].reset()
                ep_returns[k] = 0.0

        # ---- learn: `update_every` env steps' updates of every seed in one compiled call
        if steps >= config.start_steps and steps % config.update_every == 0:
            per_seed = [sample_stacked(b, updates_per_call, config.sac.batch_size, r) for b, r in zip(buffers, rngs)]
            batches = stack(per_seed)  # [N, G, B, ...]
            keys, sub = split_seeds(keys)
            new_states, metrics = update_seeds(learner, states, batches, sub)
            bad = [s for s, c, a in zip(seeds, np.asarray(metrics["critic_loss"]), np.asarray(metrics["actor_loss"]))
                   if not (np.isfinite(c) and np.isfinite(a))]
            if bad:
                bar.close()
                raise TrainingDivergedError(f"SAC diverged at env step {steps} (non-finite loss) for seeds {bad}",
                                            last_good=states)
            states = new_states
            for loop in loops:
                loop["updates"] += updates_per_call

        # ---- evaluate, log, checkpoint (each seed into its own folder)
        if steps % config.eval_every == 0 or steps == config.total_steps:
            eval_returns, success = evaluate_seeds(learner, states, eval_envs, config.eval_episodes,
                                                   [s + 100_000 for s in seeds], task=eval_task)
            elapsed = time.perf_counter() - t_start
            host_metrics = None if metrics is None else {m: np.asarray(v) for m, v in metrics.items()}  # [N] each
            host_states = jax.device_get(states) if config.checkpoint else None
            for k, (loop, logger) in enumerate(zip(loops, loggers)):
                loop["time_s"] = elapsed
                recent = loop["train_returns"][-10:]
                row = {
                    "env_steps": steps,
                    "return": float(eval_returns[k].mean()),
                    "return_std": float(eval_returns[k].std()),
                    "train_return": float(np.mean(recent)) if recent else float("nan"),
                    "episodes": loop["episodes"],
                    "updates": loop["updates"],
                    "time_s": round(elapsed, 2),
                }
                if success is not None:
                    row["success"] = float(success[k])
                if host_metrics is not None:
                    row.update({m: float(v[k]) for m, v in host_metrics.items()})
                logger.log(row)
                loop["eval_returns"].append([steps, row["return"]])
                if config.checkpoint:
                    loop["np_rng"] = rngs[k].bit_generator.state
                    loop["jax_key"] = np.asarray(keys)[k].tolist()
                    loop["train_returns"] = loop["train_returns"][-100:]
                    save_checkpoint(Path(configs[k].out), jax.tree.map(lambda x: x[k], host_states),
                                    buffers[k], loop)
            bar.set_postfix(ret=f"{float(eval_returns.mean()):.1f}")
    bar.close()

    results = []
    for c, loop, logger in zip(configs, loops, loggers):
        out_dir = Path(c.out)
        plot_learning_curve(logger.rows, out_dir / "learning_curve.png", x="env_steps", y="return",
                            title=f"SAC on {config.env}")
        evals = loop["eval_returns"]
        res = {
            "env": env_id,
            "seed": c.seed,
            "env_steps": loop["env_steps"],
            "updates": loop["updates"],
            "final_return": evals[-1][1] if evals else None,
            "best_return": max(r for _, r in evals) if evals else None,
            "time_s": round(time.perf_counter() - t_start, 2),
            "eval_returns": evals,
            "out": str(out_dir),
        }
        logger.write_json("results.json", res)
        logger.close()
        results.append(res)
    return results
