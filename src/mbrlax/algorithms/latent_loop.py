"""Model-based RL from pixels: a latent model learned from camera frames, planned in with MPC.

    D <- random-policy episodes, seen only through the camera (frames, actions, rewards)
    fit the latent model on D (:func:`~mbrlax.models.latent.fit_latent`)
    for each iteration:
        run an MPC episode: encode the current frames, plan in latent space, act, replan
        append its frames to D; continue the fit (about ``updates_per_step`` updates per step taken)

It is the MPC loop (:mod:`mbrlax.algorithms.mpc_loop`) with frames in place of states: the same
planners, unchanged (:func:`~mbrlax.agents.latent_objective.make_latent_objective` is the only new
piece they see), the same :class:`~mbrlax.agents.mpc.MPCAgent` (replanning, warm start), the same
run folder (config.json, metrics.csv, TensorBoard, learning_curve.png, results.json, video.gif of
the last episode as the agent saw it; with a decoder, ``--model.objective reconstruct`` or ``both``,
also open_loop.png, the newest episode beside the model's decoded open-loop prediction of it) and
the same checkpoints and exact ``--resume``. Unlike the
state-based loop the fit continues from the previous one (TD-MPC's schedule, Hansen et al. 2022:
one update per env step) instead of starting over, since a conv encoder is dear to retrain.

The true state stays out of the agent's hands; the loop reads it (``info["state"]``) only to
report how much of it the latent holds: ``probe_r2_mean``, the R^2 of a linear probe from z to
the state (:func:`~mbrlax.models.latent.probe_r2`, fitted on the even and scored on the odd
episodes of the newest frames; an unwrapped angle reads poorly, being no linear function of a
picture).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from mbrlax.agents.latent_objective import make_latent_objective
from mbrlax.agents.mpc import MPCAgent, MPCConfig
from mbrlax.algorithms.mpc_loop import (PlannerConfig, finish_run, planned_vs_achieved, random_episode_seed,
                                        resume_point)
from mbrlax.data.frames import FrameBuffer
from mbrlax.envs import resolve_env_id
from mbrlax.envs.pixels import make_pixel_env
from mbrlax.errors import ConfigError, DataError
from mbrlax.models.latent import LatentFit, LatentModel, decode_open_loop, encode_frames, fit_latent, probe_r2
from mbrlax.utils.checkpoint import POINTER, clear_checkpoint, load_pytree, save_checkpoint
from mbrlax.utils.plots import save_frame_strip
from mbrlax.utils.run_logger import RunLogger, to_jsonable
from mbrlax.utils.validate import check_nonempty, check_range, check_seed, setting
from mbrlax.utils.video import save_video

__all__ = ["LatentFitConfig", "LatentLoopConfig", "latent_preset", "run"]

CHECKPOINT_FILE = POINTER
"""The file whose presence in ``out`` means there is a checkpoint to resume (read by the CLI and sweeps)."""


@dataclass(frozen=True)
class LatentFitConfig:
    """How the latent model is trained (:func:`~mbrlax.models.latent.fit_latent`) and how often."""

    batch_size: int = 32
    """Sequences per update."""
    length: int = 5
    """Steps per training sequence (TD-MPC: 5)."""
    learning_rate: float = 1e-3
    """Adam step size (TD-MPC: 1e-3)."""
    ema_rate: float = 0.01
    """Target-encoder EMA rate (TD-MPC: 0.01)."""
    first_updates: int = 1000
    """Updates on the random data, before the first MPC episode."""
    updates_per_step: float = 1.0
    """Updates after each MPC episode per agent step it took (TD-MPC: 1)."""
    min_updates: int = 100
    """At least this many updates after each MPC episode (short episodes still teach)."""
    partial: bool = True
    """Also train on sequences cut short by an episode's end (masked; short episodes show terminations there)."""

    def __post_init__(self):
        check_range(self, "batch_size", "length", ge=1)
        check_range(self, "first_updates", "min_updates", ge=0)
        check_range(self, "learning_rate", "ema_rate", gt=0)
        check_range(self, "ema_rate", le=1)
        check_range(self, "updates_per_step", ge=0)

    def updates_after(self, steps: int) -> int:
        return max(self.min_updates, int(round(self.updates_per_step * steps)))


@dataclass(frozen=True)
class LatentLoopConfig:
    """MPC in a latent space learned from camera frames (defaults: the cart-pole swing-up at 64x64)."""

    env: str = "cartpole-swingup"
    """Gymnasium id of a MuJoCo environment (ours, v5 ids, or module:Id) that renders rgb_array frames."""
    seed: int = 0
    """Random seed."""
    out: str = "runs/latent"
    """Output folder: config.json, metrics.csv, learning_curve.png, video.gif, checkpoints."""
    iterations: int = 30
    """MPC episodes after the random ones."""
    random_episodes: int = 5
    """Random-policy episodes that seed the dataset."""
    random_steps: int = 0
    """Run random episodes until at least this many agent steps are collected (for tasks whose random episodes are short)."""
    episode_steps: int = 0
    """Cap on agent steps per episode (0: the env's own limit)."""
    action_repeat: int = 2
    """Env steps per agent action (rewards summed; PlaNet: 2-8)."""
    camera: tuple[float, ...] = ()
    """Camera (distance, lookat x, y, z, elevation, azimuth); empty: the env's default view."""
    model: LatentModel = field(default_factory=lambda: LatentModel(size=64, frame_stack=3, latent_dim=50, inverse_coef=1.0))
    """The latent model (its inverse-dynamics head on: without it the dynamics ignored the actions)."""
    fit: LatentFitConfig = field(default_factory=LatentFitConfig)
    planner: PlannerConfig = field(default_factory=lambda: PlannerConfig(horizon=12, population=500, elites=50,
                                                                         iterations=6))
    discount: float = 0.99
    """Discount of predicted rewards over the planning horizon."""
    mpc: MPCConfig = field(default_factory=MPCConfig)
    video: bool = True
    """Write the last episode's frames, as the agent saw them, to video.gif."""
    probe: bool = True
    """Log probe_r2_mean (a linear probe from the latent to the true state) after each fit."""
    resume: bool = False
    """Continue from the checkpoint in ``out`` if there is one."""
    buffer_capacity: int = 100_000
    """Frames kept (87k 64x64 frames per GiB)."""

    def __post_init__(self):
        check_nonempty(self, "env", "out")
        check_seed(self)
        check_range(self, "iterations", "random_steps", "episode_steps", ge=0)
        check_range(self, "random_episodes", "action_repeat", ge=1)
        check_range(self, "buffer_capacity", ge=2)
        check_range(self, "discount", gt=0, le=1)
        if self.camera and len(self.camera) != 6:
            raise ConfigError(f"LatentLoopConfig.camera takes 6 numbers (distance, lookat x, y, z, elevation, "
                              f"azimuth), got {len(self.camera)}")
        if self.model.act_dim:
            raise ConfigError(f"{setting(self.model, 'act_dim')} is set from the environment; leave it at 0")

    def camera_config(self) -> dict:
        """``default_camera_config`` for ``make_env`` (empty: the env's own)."""
        if not self.camera:
            return {}
        d, x, y, z, elevation, azimuth = self.camera
        return {"default_camera_config": {"distance": d, "lookat": np.array([x, y, z]), "elevation": elevation,
                                          "azimuth": azimuth}}


# Per-env views and settings. Cart-pole: a camera that sees the whole rail (|x| <= 2.5; the default view
# ends at ~2). InvertedPendulum-v5: the default view follows the cart, so the cart's position, which
# the task needs kept off the rail's ends, cannot be seen: a fixed side view of the whole rail instead;
# its random episodes last ~5-10 steps, so 1000 random steps and no action repeat (the pole falls in
# ~0.2 s); 32x32 frames, 4x cheaper, suffice: a linear probe of a random encoder read the cart position
# and pole angle with R^2 0.95 and 0.93 from them (3 stacked frames; 0.9 after a 500-step fit). Its episodes
# are a few steps long, so the fit gets more updates than one per step: seed 0 with 1000 first updates and
# at least 100 per episode kept the pole up 3-8 steps in each of 10 MPC episodes (random: 6.3); with 3000
# and 500: 31, 14, 32, 17, 19, 30, 16, 28, 50, 29 steps (one seed, 2026-12-07). The camera is zoomed in
# on the middle of the rail (distance 1.6 instead of 2.6, ~±0.66 m of it in view): from 2.6 at 32x32, the
# pole's whole allowed swing (±0.2 rad) moved its tip by under 2 pixels; zoomed, by ~6. With the inverse
# head on, the probe's mean R^2 rose from 0.72-0.82 to 0.85-0.89 (seed 0, 2026-12-08); returns did not
# (65, 20, 22, 18, 16, 22 zoomed against 30, 23, 23, 43, 24, 22, 34 from 2.6; doing nothing: 26.7).
_PRESETS = {
    "mbrlax/CartpoleSwingup-v0": dict(camera=(7.0, 0.0, 0.0, 0.2, -5.0, 90.0)),
    "InvertedPendulum-v5": dict(camera=(1.6, 0.0, 0.0, 0.3, 0.0, 90.0), action_repeat=1, random_steps=1000,
                                iterations=10, model=LatentModel(size=32, frame_stack=3, latent_dim=50, inverse_coef=1.0),
                                fit=LatentFitConfig(first_updates=3000, min_updates=500)),
}


def latent_preset(env: str) -> LatentLoopConfig:
    """The defaults for ``env`` (a camera and action repeat for the envs in ``_PRESETS``)."""
    overrides = _PRESETS.get(resolve_env_id(env), {})
    return LatentLoopConfig(env=env, out=f"runs/latent-{resolve_env_id(env).split('/')[-1]}", **overrides)


def _episode(env, act, buffer: FrameBuffer, seed: int, max_steps: int, keep_frames: bool = False):
    """One episode; its frames go into ``buffer``. Returns (return, agent steps, env steps, rewards, terminated, frames)."""
    obs, info = env.reset(seed=seed)
    buffer.add_first(obs[..., -3:], info["state"])
    rewards, frames, env_steps = [], [obs[..., -3:]] if keep_frames else [], 0
    while True:
        action = np.asarray(act(obs), np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        truncated = truncated or (max_steps > 0 and len(rewards) + 1 >= max_steps)
        buffer.add(action, reward, obs[..., -3:], terminated, truncated, info["state"])
        rewards.append(float(reward))
        env_steps += info["repeats"]
        if keep_frames:
            frames.append(obs[..., -3:])
        if terminated or truncated:
            return float(np.sum(rewards)), len(rewards), env_steps, rewards, bool(terminated), frames


def _probe(model: LatentModel, params: dict, buffer: FrameBuffer, newest: int = 2000) -> float:
    """Mean R^2 over state entries of a linear probe from z to the true state, on the newest frames
    (fitted on even episodes, scored on odd ones); NaN when either half has too few frames."""
    pos = np.arange(max(0, len(buffer) - newest), len(buffer))
    even = buffer.episode_of(pos) % 2 == 0
    if even.sum() < 50 or (~even).sum() < 50:
        return float("nan")
    z = encode_frames(model, params, buffer.stacked_frames(pos, model.frame_stack))
    s = buffer.states_at(pos)
    return float(np.mean(probe_r2(z[even], s[even], z[~even], s[~even])))


def _save_open_loop(model: LatentModel, params: dict, buffer: FrameBuffer, horizon: int, path: Path) -> None:
    """``open_loop.png``: the newest episode's frames from its start beside what the model imagines for
    them, decoded from the first frames' latent rolled open loop through the actions taken."""
    starts = buffer.sequence_starts(1, partial=True)
    first = starts[buffer.episode_of(starts) == buffer.episode_of(starts[-1:])][0]
    seq = buffer.sequences_at(np.array([first]), horizon, stack=model.frame_stack, partial=True)
    steps = int(seq.valid[0].sum())
    imagined = decode_open_loop(model, params, seq.frames[0, 0], seq.actions[0, :steps])
    save_frame_strip({"real": seq.frames[0, : steps + 1, ..., -3:], "imagined": imagined}, path)


def run(cfg: LatentLoopConfig) -> dict:
    """Run the pixel MPC loop; returns the summary written to ``results.json``."""
    out = Path(cfg.out)
    found = resume_point(out) if cfg.resume else None
    env = make_pixel_env(cfg.env, seed=cfg.seed, size=cfg.model.size, frame_stack=cfg.model.frame_stack,
                         action_repeat=cfg.action_repeat, **cfg.camera_config())
    if not isinstance(env.action_space, gymnasium.spaces.Box):
        raise ConfigError(f"{cfg.env} has a {type(env.action_space).__name__} action space; the planners need a Box")
    env_id = resolve_env_id(cfg.env)
    low, high = env.action_space.low.astype(np.float32), env.action_space.high.astype(np.float32)
    model = dataclasses.replace(cfg.model, act_dim=int(env.action_space.shape[0]))
    fit_kwargs = {k: getattr(cfg.fit, k) for k in ("batch_size", "length", "learning_rate", "ema_rate", "partial")}
    planner = cfg.planner.build(low, high)
    agent = MPCAgent(planner, None, None, cfg=cfg.mpc, seed=cfg.seed, notice_slow_plans=False,
                     objective_fn=make_latent_objective(model, cfg.discount))
    key = jax.random.PRNGKey(cfg.seed)
    key, k_init = jax.random.split(key)
    params = model.init(k_init)
    buffer = FrameBuffer(cfg.buffer_capacity, (model.size, model.size, 3), model.act_dim, env.state_space.shape[0])
    start_iter, env_steps = 0, 0
    fit: LatentFit | None = None

    def train(updates: int, key: jax.Array) -> tuple[dict, jax.Array]:
        """Continue the fit by ``updates`` steps; the last history row (loss parts, seconds)."""
        nonlocal fit
        key, k = jax.random.split(key)
        t0 = time.time()
        fit = fit_latent(model, params, buffer, k, steps=updates, fit=fit, progress=False, log_every=max(updates, 1),
                         **fit_kwargs)
        fit = fit._replace(history=fit.history[-1:])  # only the newest row is logged or needed
        last = dict(fit.history[-1]) if updates and fit.history else {}  # no updates: no losses of this fit
        agent.set_model(fit.params)
        return {"fit_updates": updates, "fit_seconds": time.time() - t0,
                **{f"fit_{k}": v for k, v in last.items() if k not in ("step", "seconds")}}, key

    def checkpoint_then_log(iteration: int, row: dict) -> None:
        row = to_jsonable(row)
        save_checkpoint(out, f"iteration_{iteration:05d}",
                        loop={"env_id": env_id, "iteration": iteration, "env_steps": env_steps,
                              "rows": len(logger.rows) + 1, "row": row, "key": np.asarray(key).tolist(),
                              "history": fit.history},
                        trees={"latent.msgpack": {"params": fit.params, "target": fit.target_encoder,
                                                  "opt_state": fit.opt_state},
                               "agent.msgpack": agent.rng_state()},
                        files={"frames.npz": buffer}, pointer={"iteration": iteration, "env_steps": env_steps})
        logger.log(row)

    if found is not None:
        folder, loop = found
        if loop["env_id"] != env_id:
            raise ConfigError(f"checkpoint in {out} is for {loop['env_id']}, not {cfg.env}: start a new run folder")
        try:
            buffer = FrameBuffer.load(folder / "frames.npz")
        except FileNotFoundError as e:
            raise DataError(f"checkpoint file {folder / 'frames.npz'} is missing") from e
        if buffer.frame_shape != (model.size, model.size, 3) or buffer.act_dim != model.act_dim:
            raise DataError(f"checkpoint file {folder / 'frames.npz'} holds frames {buffer.frame_shape} and actions "
                            f"({buffer.act_dim},); this run takes {(model.size, model.size, 3)} and ({model.act_dim},)")
        template = fit_latent(model, params, buffer, k_init, steps=0, progress=False, **fit_kwargs)
        saved = load_pytree(folder / "latent.msgpack", {"params": template.params, "target": template.target_encoder,
                                                        "opt_state": template.opt_state})
        history = loop.get("history", [])
        if (not isinstance(history, list) or not all(isinstance(h, dict) and isinstance(h.get("step"), int) for h in history)
                or len(loop["key"]) != 2):
            raise DataError(f"checkpoint file {folder / 'loop.json'} has a garbled fit history or key (edited?)")
        fit = LatentFit(saved["params"], saved["target"], saved["opt_state"], history)
        agent.restore_rng_state(load_pytree(folder / "agent.msgpack", agent.rng_state()))
        agent.set_model(fit.params)
        key = jnp.asarray(np.asarray(loop["key"], np.uint32))
        start_iter, env_steps = loop["iteration"], loop["env_steps"]
    else:
        clear_checkpoint(out)
    logger = RunLogger(out, cfg, resume=found is not None, keep_rows=None if found is None else found[1]["rows"] - 1)
    if found is not None:
        logger.log(found[1]["row"])
        print(f"resuming {out} at iteration {start_iter} ({env_steps} env steps)")
    else:
        rng = np.random.default_rng(cfg.seed + 500)
        returns, agent_steps = [], 0
        while len(returns) < cfg.random_episodes or agent_steps < cfg.random_steps:
            ret, n, m, *_ = _episode(env, lambda o: rng.uniform(low, high).astype(np.float32), buffer,
                                     seed=random_episode_seed(cfg.seed, len(returns)), max_steps=cfg.episode_steps)
            returns.append(ret)
            agent_steps, env_steps = agent_steps + n, env_steps + m
        try:
            buffer.sequence_starts(cfg.fit.length, cfg.fit.partial)
        except ConfigError as e:
            raise ConfigError(f"{e}: collect more with --random-episodes or --random-steps, or shorten "
                              "--fit.length") from None
        fit_row, key = train(cfg.fit.first_updates, key)
        row = {"iteration": 0, "env_steps": env_steps, "return": float(np.mean(returns)), "policy": "random",
               "episode_steps": agent_steps / len(returns), **fit_row}
        if cfg.probe:
            row["probe_r2_mean"] = _probe(model, fit.params, buffer)
        checkpoint_then_log(0, row)

    bar = tqdm(range(start_iter, cfg.iterations), desc=f"{cfg.env} latent MPC", initial=start_iter,
               total=cfg.iterations)
    video_written = False
    for it in bar:
        last = cfg.video and it == cfg.iterations - 1
        agent.reset()
        agent.plan_seconds.clear()
        t0 = time.time()
        ret, n, m, rewards, terminated, frames = _episode(env, agent.act, buffer, seed=cfg.seed + 1000 + it,
                                                          max_steps=cfg.episode_steps, keep_frames=last)
        episode_seconds = time.time() - t0
        env_steps += m
        planned, achieved = planned_vs_achieved(agent.planned, rewards, cfg.planner.horizon, cfg.discount, terminated)
        plan = np.array(agent.plan_seconds)
        fit_row, key = train(cfg.fit.updates_after(n), key)
        row = {"iteration": it + 1, "env_steps": env_steps, "return": ret, "policy": "mpc", "episode_steps": n,
               "plan_seconds_median": float(np.median(plan[1:] if len(plan) > 1 else plan)),
               "planned_return_median": planned, "achieved_return_median": achieved,
               "episode_seconds": episode_seconds, **fit_row}
        if cfg.probe:
            row["probe_r2_mean"] = _probe(model, fit.params, buffer)
        if last and frames:  # 4x larger, so that a 64x64 view can be watched
            big = [np.repeat(np.repeat(f, 4, axis=0), 4, axis=1) for f in frames]
            video_written = save_video(big, out / "video.gif", fps=max(1, round(25 / cfg.action_repeat)))
        checkpoint_then_log(it + 1, row)
        bar.set_postfix(ret=f"{ret:.1f}", plan_ms=f"{1000 * row['plan_seconds_median']:.0f}")
    bar.close()
    env.close()
    if "decoder" in fit.params:
        _save_open_loop(model, fit.params, buffer, cfg.planner.horizon, out / "open_loop.png")
    returns = [float(r["return"]) for r in logger.rows if r.get("policy") == "mpc"]
    random_return = next((float(r["return"]) for r in logger.rows if r.get("policy") == "random"), None)
    return finish_run(cfg, logger, returns, env_steps, f"{cfg.env} from {cfg.model.size}x{cfg.model.size} pixels: "
                      f"latent MPC ({cfg.planner.name})", video_written, ran=start_iter < cfg.iterations,
                      extra={"random_return": random_return})
