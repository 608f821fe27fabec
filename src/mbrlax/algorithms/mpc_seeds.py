"""Several MPC-loop seeds trained together in one process: ``mbrlax train pets-seeds --seeds 0 1 2 3 4``.

The same loop as :func:`~mbrlax.algorithms.mpc_loop.run`, run for ``N`` seeds in lockstep (every
seed is at the same env step of the same iteration at every moment):

- the model fit is :func:`~mbrlax.models.trainer.fit_seeds`: every epoch of all ``N`` fits is one
  call of the epoch ``vmap``-ped over the seeds; each seed keeps its own early stopping (a seed
  whose patience ran out has its later epochs masked out), so a fit lasts as long as its longest seed;
- every plan of all ``N`` agents is one compiled call: ``jax.vmap`` over the seeds of the planner
  and the objective, over the elite model states, planner (warm-start) states, keys and
  observations. Each seed's :class:`~mbrlax.agents.mpc.MPCAgent` still owns its key and planner
  state (``next_plan_key`` / ``accept_plan``), so its random stream and checkpoint are the single run's;
- the ``N`` environments are stepped in a Python loop, ``N`` replay buffers filled; the random
  episodes that seed the data are each seed's own single-run episodes.

So seed ``k`` draws the same keys, resets its env with the same seeds and fits the same data split
as ``mbrlax train pets --seed k``; its folder ``OUT/seed<k>/`` holds what that command writes
(config.json with ``seed=k`` and ``out=OUT/seed<k>``, metrics.csv with the same columns, tb/,
learning_curve.png, results.json, video.gif, and checkpoints in its format, so a seed can be continued
alone with ``mbrlax train pets --seed K --out OUT/seedK --resume``). ``fit_seconds``, the plan times and
``episode_seconds`` are the batched run's, shared by all seeds.

Numbers agree with the single run up to float rounding, which can grow: the batched matmuls sum in
another order (~1e-7 relative per epoch or plan), and long fits amplify it (a 2-seed light-PETS fit
against single fits, holdout MSE: 1e-7 relative at epoch 10, 1e-5 at 20, 1e-3 to 1e-2 at 40-80), so
a long fit can stop at another epoch, and CEM can pick other elites once candidates nearly tie; from
there a seed's run parts from its single run (same distribution, other numbers). Short runs stay
together to ~1e-7 (tests/algorithms/test_mpc_seeds.py).

Speed (benchmarks/seeds.py, light PETS on the cart-pole swing-up, 2 shared CPU cores): 5 seeds
batched take ~4.7x one seed's wall time, ~0.95x five single runs. On this CPU both the plan (84 ms
for one seed, 430 ms for five) and the fit are compute-bound, so batching saves only per-call overhead
and compiles; a GPU is where it should pay off (not measured).

Limits: only environments whose episodes all have one length (a known task that never terminates:
cartpole-swingup, Pendulum, HalfCheetah, ...), since the seeds' data sets are stacked in the fit;
others are refused with one line. ``--resume`` is refused with one line: seeds killed between two folders' writes
can sit at different iterations, which lockstep cannot continue. Continue one seed instead with
``mbrlax train pets --seed K --out OUT/seedK --resume`` and the same flags as the pets-seeds run.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from tqdm.auto import tqdm

from mbrlax.agents.mpc import MPCAgent
from mbrlax.agents.objective import make_objective
from mbrlax.algorithms.seed_axis import seed_config, seeds_preset, stack, stack_on_device, unstack
from mbrlax.algorithms.mpc_loop import (MPCLoopConfig, announce_state_cost, finish_run, mpc_row,
                                        mpc_title, planned_vs_achieved, random_start, render_frame, save_iteration,
                                        success_scorer)
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.envs import action_bounds, get_task, make_env, never_terminates, resolve_env_id
from mbrlax.errors import ConfigError
from mbrlax.models.trainer import fit_seeds
from mbrlax.utils.checkpoint import clear_checkpoint
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_seeds_config, setting
from mbrlax.utils.video import save_video


@dataclasses.dataclass(frozen=True)
class MPCSeedsConfig(MPCLoopConfig):
    """Settings of ``mbrlax train pets-seeds``: those of the MPC loop for every seed, plus the seeds."""

    seed: tyro.conf.Suppress[int] = 0  # not a flag: each run's seed comes from ``seeds``
    out: str = "runs/pets-seeds"
    """Parent folder: seed k's run folder is OUT/seed<k>/, as `mbrlax train pets --seed k --out OUT/seed<k>` writes it."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds trained together (fits and plans vmapped over a seed axis)."""
    resume: bool = False
    """Refused (seeds can stop at different points): continue one seed with `mbrlax train pets --seed K --out OUT/seedK --resume`."""

    def __post_init__(self):
        super().__post_init__()
        check_seeds_config(self, "mbrlax train pets")

    def single(self, seed: int) -> MPCLoopConfig:
        """Seed ``seed``'s run as an MPCLoopConfig: the shared settings, ``seed`` and ``out=OUT/seed<seed>``."""
        return seed_config(self, MPCLoopConfig, seed)


def pets_light_seeds_preset(env: str) -> MPCSeedsConfig:
    """``mbrlax train pets``'s light PETS preset for ``env``, for several seeds."""
    from mbrlax.algorithms.presets import pets_light_preset  # presets import mpc_loop

    return seeds_preset(pets_light_preset(env), MPCSeedsConfig)


def check_fixed_length(cfg: MPCLoopConfig, task) -> None:
    """Refuse (one ConfigError line) an env whose episodes can end early: the seeds' data sets must keep one size."""
    if task is None or task.termination_fn is not never_terminates:
        why = "has no known task" if task is None else "can terminate episodes early"
        raise ConfigError(f"{setting(cfg, 'env')} {cfg.env} {why}: seeds batched in one process need episodes of "
                          "one length (e.g. cartpole-swingup, Pendulum-v1, HalfCheetah-v5); train its seeds one at a "
                          "time with `mbrlax train pets --seed K`")


def run(cfg: MPCSeedsConfig) -> list[dict]:
    """Run the MPC loop for every seed of ``cfg.seeds`` at once; returns each seed's results.json summary."""
    seeds, n_seeds = cfg.seeds, len(cfg.seeds)
    env_id, task = resolve_env_id(cfg.env), get_task(cfg.env)
    check_fixed_length(cfg, task)
    configs = [cfg.single(s) for s in seeds]
    envs = [make_env(c.env, seed=c.seed, render_mode="rgb_array" if c.video else None, render_optional=True)
            for c in configs]
    if cfg.video and envs[0].render_mode != "rgb_array":
        print(f"{cfg.env} cannot render rgb_array frames: the run goes on without video.gif")
        configs = [dataclasses.replace(c, video=False) for c in configs]
    video = configs[0].video
    low, high = action_bounds(envs[0])
    obs_dim, act_dim = envs[0].observation_space.shape[0], envs[0].action_space.shape[0]
    model = cfg.model.build_for_task(obs_dim, act_dim, task)
    planner = cfg.planner.build(low, high)
    agents = [MPCAgent(planner, model, task, cfg.objective, cfg.mpc, seed=s, notice_slow_plans=False) for s in seeds]
    objective = make_objective(model, task, cfg.objective)
    # planner states [N, ...], elite model states [N, ...], obs [N, D], keys [N, 2] -> actions [N, H, A], ...
    plan_seeds = jax.jit(jax.vmap(lambda ps, ms, obs, key: planner.plan(ps, objective(ms, obs), key)))
    elites_seeds = jax.jit(jax.vmap(model.elite_state))  # model states [N, ...] -> elite states [N, ...]
    keys, states = [], []  # each seed's loop key and model state, as the single run makes them
    for s in seeds:
        key, k_init = jax.random.split(jax.random.PRNGKey(s))
        keys.append(key)
        states.append(model.init(k_init))
    buffers = [ReplayBuffer(cfg.buffer_capacity, obs_dim, act_dim) for _ in seeds]
    success_rate = success_scorer(configs[0], envs[0], task)  # None: the task has no success measure
    announce_state_cost(cfg)

    loggers = []
    for c in configs:
        clear_checkpoint(Path(c.out))  # a new run: an earlier run's checkpoint must not meet this one's
        loggers.append(RunLogger(c.out, c))
    steps = set()
    for k in range(n_seeds):  # each seed's own random episodes, exactly as its single run plays them
        row, n = random_start(configs[k], envs[k], buffers[k], success_rate)
        steps.add(n)
        save_iteration(Path(configs[k].out), loggers[k], env_id, 0, n, row, keys[k], states[k], agents[k], buffers[k])
    if len(steps) != 1:  # check_fixed_length let only never-terminating tasks through
        raise RuntimeError(f"internal error: the seeds' random episodes on {cfg.env} took {sorted(steps)} steps, "
                           "though its task never terminates (check_fixed_length); please report it")
    env_steps = steps.pop()
    model_states = None  # the elite states every plan uses, [N, ...]

    def refit():
        """Fit every seed's model on its own data (one vmapped epoch per call), as its single run's refit."""
        nonlocal states, model_states
        subs = []
        for k in range(n_seeds):
            keys[k], sub = jax.random.split(keys[k])
            subs.append(sub)
        results = fit_seeds(model, states, [b.all() for b in buffers], subs, cfg.trainer)
        states = [r.state for r in results]
        model_states = elites_seeds(stack_on_device(states))
        return results

    def act(obs: np.ndarray) -> np.ndarray:
        """``obs [N, D] -> actions [N, A]``: every agent's next action; a plan due is one vmapped call for all."""
        plan_keys = [a.next_plan_key() for a in agents]
        due = {k is not None for k in plan_keys}
        if len(due) != 1:  # the agents share one config and act in lockstep, so they replan together
            raise RuntimeError(f"internal error: seeds out of lockstep (a plan due for "
                               f"{[s for s, k in zip(seeds, plan_keys) if k is not None]} only); please report it")
        if due.pop():
            t0 = time.perf_counter()
            planner_states = stack([a.rng_state()["planner"] for a in agents])
            out = plan_seeds(planner_states, model_states, jnp.asarray(obs, jnp.float32), jnp.stack(plan_keys))
            actions, new_states, infos = jax.device_get(out)  # [N, H, A], [N, ...], {name: [N, ...]}
            seconds = time.perf_counter() - t0  # the one batched plan's time, every seed's plan time
            for a, plan, ps, info in zip(agents, actions, unstack(new_states, n_seeds), unstack(infos, n_seeds)):
                a.accept_plan(plan, ps, info, seconds)
        return np.stack([a.next_action() for a in agents])

    returns: list[list[float]] = [[] for _ in seeds]
    video_written = [False] * n_seeds
    bar = tqdm(range(cfg.iterations), desc=f"{cfg.env} MPC x{n_seeds} seeds", total=cfg.iterations)
    for it in bar:
        t0 = time.time()
        results = refit()
        for a in agents:
            a.reset()
            a.plan_seconds.clear()
        fit_seconds = time.time() - t0
        last = video and it == cfg.iterations - 1

        def maybe_refit(t):
            if cfg.retrain_every and t % cfg.retrain_every == 0:
                refit()

        t1 = time.time()
        records: list[list] = [[] for _ in seeds]
        rets, n, frames = _episodes(envs, act, cfg.episode_steps, buffers, [s + 1000 + it for s in seeds],
                                    render=last, on_step=maybe_refit, records=records)
        env_steps += n
        episode_seconds = time.time() - t1
        for k in range(n_seeds):
            planned, achieved = planned_vs_achieved(agents[k].planned, [r for r, _, _ in records[k]],
                                                    cfg.planner.horizon, cfg.objective.discount,
                                                    terminated=records[k][-1][1])
            returns[k].append(rets[k])
            row = mpc_row(it + 1, env_steps, rets[k], n, results[k], model.num_elites, fit_seconds,
                          agents[k].plan_seconds, planned, achieved, episode_seconds)
            if success_rate is not None:
                row["success"] = success_rate(records[k])
            if last and frames[k]:
                video_written[k] = save_video(frames[k], Path(configs[k].out) / "video.gif", fps=30)
            save_iteration(Path(configs[k].out), loggers[k], env_id, it + 1, env_steps, row, keys[k], states[k],
                           agents[k], buffers[k])
        bar.set_postfix(ret=f"{np.mean(rets):.1f}", plan_ms=f"{1000 * np.median(agents[0].plan_seconds[1:] or [0]):.0f}")
    bar.close()
    return [finish_run(c, logger, r, env_steps, mpc_title(cfg), w, ran=cfg.iterations > 0)
            for c, logger, r, w in zip(configs, loggers, returns, video_written)]


def _episodes(envs: list, act, max_steps: int, buffers: list, seeds: list[int], render: bool, on_step,
              records: list[list]) -> tuple[list[float], int, list[list]]:
    """One real episode per env in lockstep with ``act(obs [N, D]) -> actions [N, A]``: what
    :func:`~mbrlax.algorithms.mpc_loop._episode` does for one env, for each. Returns ``(returns [N],
    steps, frames per env)``; episodes that end at different steps are an internal error (RuntimeError)."""
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)])  # [N, D]
    totals, frames, t = [0.0] * len(envs), [[] for _ in envs], 0
    rendering = [render] * len(envs)  # per env: an env whose rendering failed loses its own video only
    while True:
        for k, env in enumerate(envs):
            if rendering[k]:
                rendering[k] = render_frame(env, frames[k])
                if not rendering[k]:
                    frames[k] = []
        actions = np.asarray(act(obs), np.float32)  # [N, A]
        t += 1
        done = []
        for k, env in enumerate(envs):
            next_obs, reward, terminated, truncated, _ = env.step(actions[k])
            truncated = truncated or (max_steps > 0 and t >= max_steps)
            buffers[k].add(obs[k], actions[k], reward, next_obs, terminated, truncated)
            totals[k] += float(reward)
            records[k].append((float(reward), bool(terminated), next_obs))
            obs[k] = next_obs
            done.append(terminated or truncated)
        if on_step is not None:
            on_step(t)
        if all(done):
            return totals, t, frames
        if any(done):  # check_fixed_length let only never-terminating tasks through
            raise RuntimeError(f"internal error: the seeds' episodes ended at different steps ({t}), though their "
                               "task never terminates (check_fixed_length); please report it")
