"""The MPC aggregation loop (the lecture's model-based RL with MPC; PETS, PDDM, RS-MPC, grad-MPC).

    D <- random-policy episodes
    for each iteration:
        fit the model on D
        run an MPC episode in the real env (replan every step); append its transitions to D

Presets are data: the same loop runs PETS (probabilistic ensemble, CEM, TS∞), PDDM
(deterministic ensemble, MPPI, reward averaged over models), random-shooting MPC and planning
by backprop; any planner, model kind or propagation is a field away.

Checkpoints (after the random episodes and after every MPC episode, in ``OUT/ckpt/iteration_N/``
behind ``OUT/checkpoint.json``, as MBPO's: :func:`~mbrlax.utils.checkpoint.save_checkpoint`) hold
the model state, the data, the loop's key, the agent's key and planner state, the counters and the
number of metrics rows logged. ``resume=True`` continues from one and reproduces the uninterrupted
run exactly (episodes reset the env with their own seed; the random-policy stream is used up
before the first checkpoint); metrics rows and TensorBoard events logged after the checkpoint are
dropped, since that work is redone. A run without ``resume`` starts the folder over (its old
checkpoint is removed before any work).
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mbrlax.agents.mpc import MPCAgent, MPCConfig
from mbrlax.agents.objective import ObjectiveConfig
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.data.rollout import random_policy
from mbrlax.envs import action_bounds, get_task, make_env, resolve_env_id
from mbrlax.errors import ConfigError, DataError
from mbrlax.models.config import ModelConfig
from mbrlax.models.trainer import TrainerConfig, fit
from mbrlax.planning import PLANNER_NAMES, PLANNERS, make_planner
from mbrlax.utils.checkpoint import POINTER, clear_checkpoint, find_checkpoint, load_pytree, save_checkpoint
from mbrlax.utils.plots import plot_learning_curve
from mbrlax.utils.run_logger import RunLogger, to_jsonable
from mbrlax.utils.validate import (check_choice, check_le, check_nonempty, check_range, check_resume, check_seed,
                                   read_csv_rows, setting)
from mbrlax.utils.video import save_video

CHECKPOINT_FILE = POINTER
"""The file whose presence in ``out`` means there is a checkpoint to resume (read by the CLI)."""


@dataclass(frozen=True)
class PlannerConfig:
    """Which planner and its main settings (fields a planner does not have are ignored)."""

    name: str = "cem"
    """rs, cem, icem, mppi, grad or cem-grad."""
    horizon: int = 25
    """Planning horizon H."""
    population: int = 500
    """Candidate sequences per iteration."""
    elites: int = 50
    """Elites refitting the sampling distribution (CEM, iCEM)."""
    iterations: int = 5
    """Optimiser iterations per plan."""
    alpha: float = 0.1
    """Momentum of the CEM/iCEM distribution update."""
    gamma: float = 10.0
    """MPPI reward-weighting temperature (PDDM)."""
    beta: float = 0.6
    """MPPI noise filter coefficient (PDDM)."""
    candidates: int = 16
    """Gradient planner: sequences optimised in parallel."""
    steps: int = 100
    """Gradient planner: Adam steps."""

    def __post_init__(self):
        check_choice(self, "name", PLANNER_NAMES)
        check_range(self, "horizon", "population", "elites", "iterations", "candidates", "steps", ge=1)
        check_range(self, "alpha", ge=0, lt=1)
        check_range(self, "gamma", gt=0)
        check_range(self, "beta", gt=0, le=1)
        if self.name in ("cem", "icem", "cem-grad"):
            check_le(self, "elites", "population")

    def build(self, low: np.ndarray, high: np.ndarray):
        if self.name == "cem-grad":
            cem = {k: getattr(self, k) for k in ("population", "elites", "iterations", "alpha")}
            return make_planner("cem-grad", self.horizon, low, high, cem=cem, grad={"steps": self.steps})
        cls = PLANNERS.get(self.name)
        overrides = {}
        if cls is not None:
            names = set(cls.__dataclass_fields__)
            overrides = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                         if f.name in names and f.name not in ("horizon",)}
        return make_planner(self.name, self.horizon, low, high, **overrides)


@dataclass(frozen=True)
class MPCLoopConfig:
    """Model-based RL with MPC and data aggregation (defaults: a light PETS on the cart-pole swing-up)."""

    env: str = "cartpole-swingup"
    """Gymnasium environment id."""
    seed: int = 0
    """Random seed."""
    out: str = "runs/pets"
    """Output folder: config.json, metrics.csv, learning_curve.png, video, checkpoints."""
    iterations: int = 10
    """MPC episodes after the random ones, each after a refit (0: the random data only)."""
    random_episodes: int = 1
    """Random-policy episodes that seed the dataset."""
    random_steps: int = 0
    """Run random episodes until at least this many random transitions are collected (docs/settings.md)."""
    episode_steps: int = 0
    """Cap on steps per episode (0: the env's own limit)."""
    retrain_every: int = 0
    """Refit every k env steps during an episode too (0: only between episodes)."""
    model: ModelConfig = field(default_factory=lambda: ModelConfig(ensemble_size=5, num_elites=5, hidden=200, depth=3))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(batch_size=32, max_epochs=50, patience=5, progress=False))
    planner: PlannerConfig = field(default_factory=lambda: PlannerConfig(horizon=25, population=400, elites=40))
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    mpc: MPCConfig = field(default_factory=MPCConfig)
    video: bool = True
    """Render the last episode to video.gif."""
    resume: bool = False
    """Continue from the checkpoint in ``out`` if there is one."""
    buffer_capacity: int = 1_000_000
    """Replay buffer capacity."""

    def __post_init__(self):
        check_nonempty(self, "env", "out")
        check_seed(self)
        check_range(self, "buffer_capacity", ge=1)
        check_range(self, "iterations", "random_episodes", "random_steps", "episode_steps", "retrain_every", ge=0)
        if self.random_episodes < 1 and self.random_steps < 1:
            raise ConfigError(f"{setting(self, 'random_episodes')} or {setting(self, 'random_steps')} must be >= 1: "
                              "the first model is fitted on random data")
        check_le(self, "random_steps", "buffer_capacity")


def _episode(env, policy_act, max_steps: int, buffer: ReplayBuffer, seed: int, render: bool = False,
             on_step=None, record: list | None = None) -> tuple[float, int, list]:
    """One real episode with ``policy_act(obs[D]) -> action[A]``; transitions go into ``buffer``
    (and ``(reward, terminated, next_obs)`` of each step into ``record`` if given). With ``render``, the frames;
    if rendering fails (e.g. no OpenGL), one line says so and the episode goes on without them."""
    obs, _ = env.reset(seed=seed)
    total, frames, t = 0.0, [], 0
    while True:
        if render:
            render = render_frame(env, frames)
            if not render:
                frames = []
        action = np.asarray(policy_act(obs), np.float32)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        t += 1
        truncated = truncated or (max_steps > 0 and t >= max_steps)
        buffer.add(obs, action, reward, next_obs, terminated, truncated)
        total += float(reward)
        if record is not None:
            record.append((float(reward), bool(terminated), next_obs))
        obs = next_obs
        if on_step is not None:
            on_step(t)
        if terminated or truncated:
            return total, t, frames


def render_frame(env, frames: list) -> bool:
    """Append ``env.render()`` to ``frames``; False (and one line saying so) if rendering failed (e.g. no OpenGL)."""
    try:
        frames.append(env.render())
        return True
    except Exception as e:  # GL and driver errors come in many types
        reason = (str(e).strip().splitlines() or [""])[0]
        print(f"rendering failed ({type(e).__name__}: {reason}); the run goes on without video.gif", file=sys.stderr)
        return False


def success_scorer(cfg: MPCLoopConfig, env, task):
    """``record -> float``: the fraction of one episode's steps that succeed (``Task.success_rate``;
    ``record`` as :func:`_episode` fills it); None (no function) for a task without a success measure."""
    if task is None or task.success_fn is None:
        return None
    episode_length = min(n for n in (cfg.episode_steps, env.spec.max_episode_steps if env.spec else 0,
                                      task.max_episode_steps, 10**9) if n)

    def success_rate(record: list) -> float:
        return task.success_rate(np.stack([o for _, _, o in record]), episode_length)

    return success_rate


def planned_vs_achieved(planned: list[tuple[int, float]], rewards: list[float], horizon: int, discount: float,
                        terminated: bool) -> tuple[float, float]:
    """Medians over an episode's plans of the return the planner expected over its horizon and the
    discounted return the real episode then gave over the same steps. A planned return far above the
    achieved one means the planner is exploiting model error (part of the gap is the optimism of
    taking the best of many noisy estimates). Plans whose horizon runs past a time-limit cut are
    skipped; after a termination no reward is due, as in the objective. NaN if no plan qualifies.
    The planned return is the objective's score, so it includes any planning cost or penalty
    (``ObjectiveConfig.state_cost``, ``uncertainty_penalty``) or terminal value (a latent model's
    value head) that the real reward does not."""
    r, w = np.asarray(rewards, np.float64), discount ** np.arange(horizon)
    expected, got = [], []
    for t, p in planned:
        if terminated or t + horizon <= len(r):
            seen = r[t:t + horizon]  # shorter than the horizon only after a termination
            expected.append(p)
            got.append(float(np.dot(w[: len(seen)], seen)))
    if not expected:
        return float("nan"), float("nan")
    return float(np.median(expected)), float(np.median(got))


def random_episode_seed(seed: int, i: int) -> int:
    """Reset seed of random episode ``i``: the first keeps ``seed + 500`` (earlier results reproduce);
    later ones come from their own stream (different seeds draw different streams). The MPC
    episodes reset with ``seed + 1000 + it``, so their start states do repeat across seeds (seed 0's
    second episode starts where seed 1's first does; the models and plans still differ)."""
    if i == 0:
        return seed + 500
    return int(np.random.SeedSequence([seed, 500, i]).generate_state(1)[0])


def run(cfg: MPCLoopConfig) -> dict:
    """Run the aggregation loop; returns the summary written to ``results.json``."""
    out = Path(cfg.out)
    found = resume_point(out) if cfg.resume else None
    env = make_env(cfg.env, seed=cfg.seed, render_mode="rgb_array" if cfg.video else None, render_optional=True)
    if cfg.video and env.render_mode != "rgb_array":  # e.g. a user's env whose constructor takes no render_mode
        print(f"{cfg.env} cannot render rgb_array frames: the run goes on without video.gif")
        cfg = dataclasses.replace(cfg, video=False)
    env_id, task = resolve_env_id(cfg.env), get_task(cfg.env)
    low, high = action_bounds(env)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    model = cfg.model.build_for_task(obs_dim, act_dim, task)
    planner = cfg.planner.build(low, high)
    agent = MPCAgent(planner, model, task, cfg.objective, cfg.mpc, seed=cfg.seed, notice_slow_plans=False)
    key = jax.random.PRNGKey(cfg.seed)
    key, k_init = jax.random.split(key)
    state = model.init(k_init)
    buffer = ReplayBuffer(cfg.buffer_capacity, obs_dim, act_dim)

    announce_state_cost(cfg)
    start_iter, env_steps = 0, 0
    # a task's success measure (the hand tasks have one) is logged per episode as `success`
    success_rate = success_scorer(cfg, env, task)

    def checkpoint_then_log(iteration: int, row: dict) -> None:
        """Checkpoint everything the rest of the run depends on (model, data, loop key, agent key and
        planner state, counters, this iteration's metrics row), then log the row."""
        save_iteration(out, logger, env_id, iteration, env_steps, row, key, state, agent, buffer)

    if found is not None:
        folder, loop = found
        if loop["env_id"] != env_id:
            raise ConfigError(f"checkpoint in {out} is for {loop['env_id']}, not {cfg.env}: start a new run folder")
        state = load_pytree(folder / "model.msgpack", state)
        agent.restore_rng_state(load_pytree(folder / "agent.msgpack", agent.rng_state()))
        key = jnp.asarray(np.asarray(loop["key"], np.uint32))
        buffer = _load_buffer(folder / "buffer.npz", cfg.buffer_capacity)
        buffer.check_compatible(obs_dim, act_dim, "checkpointed buffer")
        start_iter, env_steps = loop["iteration"], loop["env_steps"]
    # written only now, so that a checkpoint that cannot be read leaves the folder as it was. On resume,
    # metrics rows after the checkpoint's are dropped; its own row is dropped and logged again, so that
    # a kill while that row was being written leaves no trace in metrics.csv or tb/. A new run first
    # removes an earlier run's checkpoint, which its own would collide with or a later resume continue
    if found is None:
        clear_checkpoint(out)
    logger = RunLogger(out, cfg, resume=found is not None, keep_rows=None if found is None else found[1]["rows"] - 1)
    if found is not None:
        logger.log(found[1]["row"])
        print(f"resuming {out} at iteration {start_iter} ({env_steps} env steps)")
    else:
        row, env_steps = random_start(cfg, env, buffer, success_rate)
        checkpoint_then_log(0, row)

    def refit(state, key):
        key, k = jax.random.split(key)
        result = fit(model, state, buffer.all(), k, cfg.trainer)
        return result, key

    bar = tqdm(range(start_iter, cfg.iterations), desc=f"{cfg.env} MPC", initial=start_iter, total=cfg.iterations)
    summary_returns = [float(r["return"]) for r in logger.rows if r.get("policy") == "mpc"]
    video_written = False
    for it in bar:
        t0 = time.time()
        result, key = refit(state, key)
        state = result.state
        agent.set_model(state)
        agent.reset()
        fit_seconds = time.time() - t0
        agent.plan_seconds.clear()
        last = cfg.video and it == cfg.iterations - 1

        def maybe_refit(t):
            nonlocal state, key
            if cfg.retrain_every and t % cfg.retrain_every == 0:
                res, key = refit(state, key)
                state = res.state
                agent.set_model(state)

        t1 = time.time()
        record: list[tuple[float, bool]] = []
        ret, n, frames = _episode(env, agent.act, cfg.episode_steps, buffer, seed=cfg.seed + 1000 + it,
                                  render=last, on_step=maybe_refit, record=record)
        planned, achieved = planned_vs_achieved(agent.planned, [r for r, _, _ in record], cfg.planner.horizon,
                                                cfg.objective.discount, terminated=record[-1][1])
        env_steps += n
        summary_returns.append(ret)
        row = mpc_row(it + 1, env_steps, ret, n, result, model.num_elites, fit_seconds, agent.plan_seconds,
                      planned, achieved, time.time() - t1)
        if success_rate is not None:
            row["success"] = success_rate(record)
        if last and frames:
            video_written = save_video(frames, out / "video.gif", fps=30)  # warns if it cannot
        checkpoint_then_log(it + 1, row)
        bar.set_postfix(ret=f"{ret:.1f}", plan_ms=f"{1000 * row['plan_seconds_median']:.0f}")
    bar.close()
    return finish_run(cfg, logger, summary_returns, env_steps, mpc_title(cfg), video_written,
                      ran=start_iter < cfg.iterations)


def announce_state_cost(cfg: MPCLoopConfig) -> None:
    """Say (one line) that the plans add a state cost to the task's reward, if the config has one."""
    if cfg.objective.has_state_cost:
        print(f"planning with a state cost {cfg.objective.state_cost} on top of the task's reward (a planning "
              "prior; returns are the environment's own; --objective.state-cost with no values turns it off)")


def mpc_title(cfg: MPCLoopConfig) -> str:
    """The learning curve's title of an MPC-loop run."""
    return f"{cfg.env}: MPC with {cfg.planner.name}, {cfg.objective.propagation}"


def random_start(cfg: MPCLoopConfig, env, buffer: ReplayBuffer, success_rate) -> tuple[dict, int]:
    """The random-policy episodes that seed the data set (into ``buffer``): iteration 0's metrics row and
    the env steps taken. ``success_rate(record) -> float`` scores an episode (None: no success measure)."""
    act_randomly = random_policy(env.action_space, cfg.seed)
    random_returns, random_success, env_steps = [], [], 0
    while len(random_returns) < cfg.random_episodes or buffer.total_added < cfg.random_steps:
        record = []
        ret, n, _ = _episode(env, lambda o: act_randomly(o[None])[0], cfg.episode_steps, buffer,
                             seed=random_episode_seed(cfg.seed, len(random_returns)), record=record)
        random_returns.append(ret)
        if success_rate is not None:
            random_success.append(success_rate(record))
        env_steps += n
    row = {"iteration": 0, "env_steps": env_steps, "return": float(np.mean(random_returns)), "policy": "random"}
    if success_rate is not None:
        row["success"] = float(np.mean(random_success))
    return row, env_steps


def mpc_row(iteration: int, env_steps: int, ret: float, steps: int, result, num_elites: int, fit_seconds: float,
            plan_seconds: list[float], planned: float, achieved: float, episode_seconds: float) -> dict:
    """The metrics row of an MPC episode (``result``: the last fit's FitResult; the first plan's time,
    which includes its compile, is left out of the median)."""
    plan = np.array(plan_seconds)
    return {"iteration": iteration, "env_steps": env_steps, "return": ret, "policy": "mpc", "episode_steps": steps,
            "train_loss": result.history[-1]["train_loss"] if result.history else float("nan"),
            "holdout_mse": float(np.mean(np.sort(result.holdout_mse)[:num_elites])),
            "fit_epochs": len(result.history), "fit_seconds": fit_seconds,
            "plan_seconds_median": float(np.median(plan[1:] if len(plan) > 1 else plan)),
            "planned_return_median": planned, "achieved_return_median": achieved,
            "episode_seconds": episode_seconds}


def save_iteration(out: Path, logger: RunLogger, env_id: str, iteration: int, env_steps: int, row: dict,
                   key: jax.Array, state, agent: MPCAgent, buffer: ReplayBuffer) -> None:
    """Checkpoint what the rest of a run depends on after ``iteration`` (model, data, loop key, agent
    key and planner state, counters, this iteration's metrics row) in ``out``, then log the row."""
    row = to_jsonable(row)
    save_checkpoint(out, f"iteration_{iteration:05d}",
                    loop={"env_id": env_id, "iteration": iteration, "env_steps": env_steps,
                          "rows": len(logger.rows) + 1, "row": row, "key": np.asarray(key).tolist()},
                    trees={"model.msgpack": state, "agent.msgpack": agent.rng_state()},
                    files={"buffer.npz": buffer}, pointer={"iteration": iteration, "env_steps": env_steps})
    logger.log(row)


def finish_run(cfg, logger: RunLogger, returns: list[float], env_steps: int, title: str, video_written: bool,
               ran: bool, extra: dict | None = None) -> dict:
    """The end of an MPC-style run (this loop's and the pixel loop's): the learning curve against the env's
    target, results.json (``extra`` added), the closing lines, and why there is no new video.gif."""
    from mbrlax.algorithms.presets import target_return  # presets import this module

    out = Path(cfg.out)
    plot_learning_curve(logger.rows, out / "learning_curve.png", x="env_steps", y="return", title=title,
                        target=target_return(cfg.env))
    summary = {"env": cfg.env, "returns": returns, "final_return": returns[-1] if returns else None,
               "best_return": max(returns) if returns else None, "env_steps": env_steps, **(extra or {})}
    logger.write_json("results.json", summary)
    logger.close()
    print(f"{cfg.env}: MPC returns per iteration: {[round(r, 1) for r in returns]}")
    print(f"wrote {out}/learning_curve.png, metrics.csv, results.json" + (", video.gif" if video_written else ""))
    if cfg.video and not video_written:
        if ran:
            print("no video.gif: rendering or writing it failed (see the warning above)")
        elif (out / "video.gif").exists():
            print(f"{out}/video.gif is from an earlier invocation (no MPC episode ran in this one)")
        else:
            print("no video.gif: no MPC episode ran in this invocation")
    return summary


def resume_point(out: Path) -> tuple[Path, dict] | None:
    """The checkpoint ``--resume`` continues from, ``(folder, loop)``, or None to start from the
    beginning when there is none and nothing would be lost (no metrics rows). Rows without a
    checkpoint are refused (ConfigError, :func:`~mbrlax.utils.validate.check_resume`), as are
    checkpoint files and metrics rows that do not fit (DataError)."""
    if not check_resume(out, POINTER):
        return None
    rows = read_csv_rows(out / "metrics.csv") if (out / "metrics.csv").is_file() else []
    folder, loop = find_checkpoint(out)
    try:
        loop["iteration"], loop["env_steps"], loop["rows"] = int(loop["iteration"]), int(loop["env_steps"]), int(loop["rows"])
        loop["env_id"], loop["key"] = str(loop["env_id"]), [int(k) for k in loop["key"]]
        if not isinstance(loop["row"], dict) or loop["rows"] < 1:
            raise TypeError("row")
    except (KeyError, ValueError, TypeError) as e:
        raise DataError(f"checkpoint file {folder / 'loop.json'} lacks or garbles {e} (written by another command?)") from e
    if len(rows) < loop["rows"] - 1:
        raise DataError(f"{out / 'metrics.csv'} has {len(rows)} rows, its checkpoint covers {loop['rows']}: "
                        "the file was truncated or replaced")
    for i, row in enumerate(rows[: loop["rows"] - 1]):  # the rows the resumed run keeps
        try:
            float(row["return"])
            ok = int(row["iteration"]) == i and math.isfinite(float(row["env_steps"]))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise DataError(f"{out / 'metrics.csv'} row {i + 1} is not iteration {i} with numeric env_steps and return "
                            f"(got iteration {row.get('iteration')!r}, return {row.get('return')!r}): the file was "
                            "edited or replaced")
    return folder, loop


def checkpoint_buffer_path(out: str | Path) -> Path | None:
    """The replay buffer file of a run's checkpoint (its real transitions, the last
    ``buffer_capacity`` of them once the buffer wrapped), or None if it has none; runs written
    before checkpoint.json kept it in ``checkpoint/buffer.npz``."""
    out = Path(out)
    found = find_checkpoint(out)
    path = found[0] / "buffer.npz" if found is not None else out / "checkpoint" / "buffer.npz"
    return path if path.exists() else None


def _load_buffer(path: Path, capacity: int) -> ReplayBuffer:
    try:
        return ReplayBuffer.load(path, capacity=capacity)
    except FileNotFoundError as e:
        raise DataError(f"checkpoint file {path} is missing") from e
