"""Demo: synthetic transitions from a joint model as extra SAC training data (``mbrlax demo synthetic-data``).

SynthER (Lu et al. 2023, "Synthetic Experience Replay", arXiv:2303.06614), online variant:

    for each env step t (SAC acting; uniformly random for the first ``start_steps``):
        store the real transition in D_real
        every ``refit_every`` steps: fit the joint model p(s, a, r, s' - s) on D_real (kind "joint",
            x empty), sample ``synthetic_samples`` whole transitions into a fresh D_synth
        every ``update_every`` steps: ``update_every * utd`` SAC updates, each batch half D_real and
            half D_synth (``synthetic_ratio``)

The generator is not a dynamics model: nobody asks it where a given action leads; it draws whole
rows (s, a, r, s') at once, like new rows of the replay buffer. Pendulum's dynamics are known, so the
demo checks its samples against physics: the true next state of each generated (s, a) against the
generated s'. Then it trains SAC on Pendulum-v1 three ways at the same env steps, all seeds each:
real data only at the same update-to-data ratio (the controlled comparison), real plus synthetic,
and real only at one update per step (SynthER's SAC baseline). A mixture-head generator fitted on
the same data as the last flow generator shows what the head choice does to the samples.

Differences from the paper, all for the 5-minute CPU budget: the paper's generator is a diffusion
model (a residual MLP of width 1024 and 6 layers, 100k training steps, 128 sampling steps), refitted
from scratch every 10k env steps, sampling 200k transitions, with SAC at 20 updates per step
(``config/online/sac_synther_dmc.gin`` in github.com/conglu1997/SynthER); ours is a flow-matching
model (the same family: noise integrated to data) of width 256 and 3 layers, warm-started at each
refit, with early stopping, and the schedule is shrunk to fit Pendulum's few thousand steps.
Writes ``synthetic_data.png`` and ``results.json``; ``docs/demo_synthetic_data.md`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.agents.model_rollouts import ModelBuffer
from mbrlax.agents.sac import SAC, SACConfig
from mbrlax.algorithms.mbpo import evaluate_policy, mixed_batches
from mbrlax.data.buffer import ReplayBuffer
from mbrlax.demos.common import Stopwatch
from mbrlax.envs import get_task, make_env
from mbrlax.models.conditional import ConditionalModel
from mbrlax.models.dynamics import ModelState
from mbrlax.models.kinds import build_model, window_rows
from mbrlax.models.trainer import TrainerConfig, fit_conditional
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_finite, check_le, check_nonempty, check_range, check_seed

ENV_ID = "Pendulum-v1"
ARMS = ("real", "real + synthetic", "real, 1 update/step")


@dataclass(frozen=True)
class SyntheticDataDemoConfig:
    """SAC on real plus joint-model synthetic transitions (SynthER) against SAC on real data only."""

    seed: int = 0
    """First training seed; the arms share seeds seed, seed + 1, ..."""
    out: str = "runs/demo-synthetic-data"
    """Output folder: synthetic_data.png, results.json, config.json."""
    quick: bool = False
    """Shrink the run (one seed, 1500 steps, a smaller SAC, only the real + synthetic arm); the tests use it."""
    seeds: int = 3
    """Training seeds per arm."""
    total_steps: int = 3000
    """Environment steps per training run (15 Pendulum episodes of 200 steps)."""
    start_steps: int = 500
    """Initial uniformly random steps; updates and the first generator fit start after them."""
    utd: int = 5
    """SAC updates per env step in the real and the real + synthetic arms (paper: 20 with SynthER)."""
    update_every: int = 50
    """Env steps between update calls; each runs ``update_every * utd`` updates in one scan."""
    eval_every: int = 250
    """Env steps between evaluations."""
    eval_episodes: int = 5
    """Episodes per evaluation (deterministic policy, the same reset seeds for every run)."""
    sac_hidden: int = 128
    """Width of SAC's two hidden layers (paper: 256)."""
    sac_batch: int = 128
    """Transitions per SAC update, real and synthetic together (paper: 256)."""
    sac_lr: float = 1e-3
    """Adam step of SAC's actor, critics and temperature (paper: 3e-4)."""
    synthetic_ratio: float = 0.5
    """Share of each SAC batch drawn from the synthetic buffer (paper: 0.5)."""
    refit_every: int = 500
    """Env steps between generator refits (paper: 10 000)."""
    synthetic_samples: int = 20_000
    """Transitions sampled at each refit; they replace the previous ones (paper: 200 000)."""
    solved_return: float = -200.0
    """Eval return that counts as swung up and held (the steps to reach it measure sample efficiency)."""
    reward: str = "generated"
    """Reward of a synthetic transition: the generated one (SynthER) or the task's, computed from (s, a, s')."""
    head: str = "flow"
    """Generator head: flow (flow matching; SynthER uses diffusion) or mixture (a Gaussian mixture)."""
    gen_hidden: int = 256
    """Hidden width of the generator."""
    gen_depth: int = 3
    """Hidden layers of the generator."""
    gen_lr: float = 1e-3
    """Adam step of the generator."""
    gen_max_epochs: int = 200
    """Upper bound on epochs per generator fit (early stopping on a 20% holdout)."""
    baselines: bool = True
    """Also train SAC on real data only, at ``utd`` and at 1 update per step (SynthER's SAC baseline)."""
    compare_heads: bool = True
    """Fit a mixture-head generator on the last flow fit's data and report its dynamics error too."""

    def __post_init__(self):
        check_nonempty(self, "out")
        check_seed(self)
        check_range(self, "seeds", "total_steps", "utd", "update_every", "eval_every", "eval_episodes", "sac_hidden",
                    "sac_batch", "refit_every", "synthetic_samples", "gen_hidden", "gen_depth", "gen_max_epochs", ge=1)
        check_range(self, "start_steps", ge=1)
        check_le(self, "start_steps", "total_steps")
        check_range(self, "sac_lr", "gen_lr", gt=0)
        check_range(self, "synthetic_ratio", ge=0, lt=1)
        check_finite(self, "solved_return")
        check_choice(self, "reward", ("generated", "task"))
        check_choice(self, "head", ("flow", "mixture"))


def _quick(cfg: SyntheticDataDemoConfig) -> SyntheticDataDemoConfig:
    return replace(cfg, seeds=1, total_steps=1500, start_steps=250, utd=8, sac_hidden=64, synthetic_samples=10_000,
                   baselines=False, compare_heads=False)


# --------------------------------------------------------------------------- the generator


def pendulum_next_obs(obs: np.ndarray, action: np.ndarray, env) -> np.ndarray:
    """Pendulum-v1's next observation ``[B, 3]`` from ``obs[B, 3]`` = (cos th, sin th, th_dot), ``action[B, 1]``:
    gymnasium's equations (``PendulumEnv.step``) with the env's own constants."""
    p = env.unwrapped
    th, thdot = np.arctan2(obs[:, 1], obs[:, 0]), obs[:, 2]
    u = np.clip(action[:, 0], -p.max_torque, p.max_torque)
    new_thdot = np.clip(thdot + (3 * p.g / (2 * p.l) * np.sin(th) + 3.0 / (p.m * p.l**2) * u) * p.dt,
                        -p.max_speed, p.max_speed)
    new_th = th + new_thdot * p.dt
    return np.stack([np.cos(new_th), np.sin(new_th), new_thdot], axis=1)


def make_generator(cfg: SyntheticDataDemoConfig, head: str) -> ConditionalModel:
    """The joint model p(s, a, r, s' - s): one network (SynthER fits one diffusion model, not an ensemble)."""
    return build_model("joint", 3, 1, head=head, hidden=cfg.gen_hidden, depth=cfg.gen_depth, ensemble_size=1,
                       num_elites=1)


def generator_trainer(cfg: SyntheticDataDemoConfig) -> TrainerConfig:
    # no bootstrap: one generator should see every row; patience 20 because the flow loss is noisy
    return TrainerConfig(learning_rate=cfg.gen_lr, max_epochs=cfg.gen_max_epochs, patience=20, bootstrap=False,
                         progress=False)


@lru_cache(maxsize=4)
def _sampler(model: ConditionalModel, n: int):
    """Jitted ``(state, key) -> y[n, 2D + A + 1]``: n unconditional draws."""
    return jax.jit(lambda state, key: model.sample(state, jnp.zeros((n, 0), jnp.float32), key))


def sample_transitions(model: ConditionalModel, state: ModelState, n: int, key: jax.Array,
                       task=None) -> tuple[np.ndarray, ...]:
    """``n`` synthetic transitions ``(obs[n, 3], action[n, 1], reward[n], next_obs[n, 3], terminated[n])``;
    the task's reward instead of the generated one when ``task`` is given. Termination is the task's."""
    y = np.asarray(_sampler(model, n)(state, key))
    obs, action, reward, next_obs = y[:, :3], y[:, 3:4], y[:, 4], y[:, :3] + y[:, 5:]
    bound = get_task(ENV_ID).action_high  # the learner's actions are bounded; a sample may stray past
    action = np.clip(action, -bound, bound)
    if task is not None:
        reward = np.asarray(task.reward_fn(obs, action, next_obs))
    terminated = np.asarray(get_task(ENV_ID).termination_fn(obs, action, next_obs), bool)
    return obs, action, reward, next_obs, terminated


def plausibility(samples: tuple[np.ndarray, ...], rows: np.ndarray, env) -> dict:
    """How well synthetic transitions obey Pendulum: errors as fractions of the real data's typical step.

    ``dynamics_error``: median ``|s'_gen - f(s_gen, a_gen)|`` over the median real ``|s' - s|``;
    ``shuffled_error``: the same with the generated s' of another row (right marginals, no dynamics);
    ``reward_error``: median ``|r_gen - r(s_gen, a_gen)|`` over the std of the real rewards;
    ``off_circle``: median ``|cos^2 + sin^2 - 1|`` of the generated states. ``rows[N, 8]`` are the real
    joint rows (s, a, r, s' - s) the generator was fitted on.
    """
    obs, action, reward, next_obs, _ = samples
    step = float(np.median(np.linalg.norm(rows[:, 5:], axis=1)))
    true_next = pendulum_next_obs(obs, action, env)
    perm = np.random.default_rng(0).permutation(len(obs))
    task_reward = np.asarray(get_task(ENV_ID).reward_fn(obs, action, next_obs))
    return {
        "dynamics_error": float(np.median(np.linalg.norm(next_obs - true_next, axis=1)) / step),
        "shuffled_error": float(np.median(np.linalg.norm(next_obs[perm] - true_next, axis=1)) / step),
        "reward_error": float(np.median(np.abs(reward - task_reward)) / rows[:, 4].std()),
        "off_circle": float(np.median(np.abs(obs[:, 0] ** 2 + obs[:, 1] ** 2 - 1))),
        "step_size": step,
    }


# --------------------------------------------------------------------------- one SAC run


def train(cfg: SyntheticDataDemoConfig, arm: str, seed: int, watch: Stopwatch) -> dict:
    """One SAC run of ``arm`` with ``seed``; returns its eval returns and (real + synthetic) generator checks."""
    synthetic = arm == "real + synthetic"
    utd = 1 if arm == "real, 1 update/step" else cfg.utd
    env = make_env(ENV_ID, seed=seed)
    eval_envs = [make_env(ENV_ID) for _ in range(cfg.eval_episodes)]
    learner = SAC.for_env(env, SACConfig(hidden_sizes=(cfg.sac_hidden,) * 2, actor_lr=cfg.sac_lr,
                                         critic_lr=cfg.sac_lr, alpha_lr=cfg.sac_lr, batch_size=cfg.sac_batch))
    gen = make_generator(cfg, cfg.head)
    task = get_task(ENV_ID) if cfg.reward == "task" else None
    key = jax.random.PRNGKey(seed)
    key, k_sac, k_gen = jax.random.split(key, 3)
    state, gen_state = learner.init(k_sac), gen.init(k_gen)
    real = ReplayBuffer(cfg.total_steps, 3, 1)
    synth = ModelBuffer(cfg.synthetic_samples, 3, 1)  # empty: batches are all real until the first fit
    rng = np.random.default_rng(seed)
    out: dict = {"steps": [], "returns": [], "generator": []}
    obs, _ = env.reset(seed=seed)
    for t in range(1, cfg.total_steps + 1):
        with watch("env"):
            if t <= cfg.start_steps:
                action = rng.uniform(learner.action_low, learner.action_high).astype(np.float32)
            else:
                key, k = jax.random.split(key)
                action = np.asarray(learner.act(state, obs[None].astype(np.float32), k))[0]
            next_obs, reward, terminated, truncated, _ = env.step(action)
            real.add(obs, action, reward, next_obs, terminated, truncated)
            obs = env.reset()[0] if terminated or truncated else next_obs
        if synthetic and t >= cfg.start_steps and (t - cfg.start_steps) % cfg.refit_every == 0:
            key, k_fit, k_sample = jax.random.split(key, 3)
            with watch("generator fit"):  # warm start from the previous fit; normalisers refitted
                x, y = window_rows("joint", real)
                fit = fit_conditional(gen, gen_state, x, y, k_fit, generator_trainer(cfg))
                gen_state = fit.state
            with watch("generator sample"):
                samples = sample_transitions(gen, gen_state, cfg.synthetic_samples, k_sample, task)
                synth = ModelBuffer(cfg.synthetic_samples, 3, 1)
                synth.add(*samples)
            out["generator"].append({"env_steps": t, "fit_epochs": len(fit.history), **plausibility(samples, y, env)})
            out["last_fit"] = (x, y, samples)
        if t >= cfg.start_steps and t % cfg.update_every == 0:
            with watch("sac updates"):
                batches = mixed_batches(real, synth, cfg.update_every * utd, learner.config.batch_size,
                                        1.0 - cfg.synthetic_ratio if synthetic else 1.0, rng)
                key, k = jax.random.split(key)
                state, metrics = learner.update_many(state, batches, k)
                if not np.isfinite(float(metrics["critic_loss"])):
                    raise FloatingPointError(f"SAC diverged ({arm}, seed {seed}, step {t})")
        if t % cfg.eval_every == 0:
            with watch("eval"):
                returns = evaluate_policy(learner, state, eval_envs, seed=10_000)
            out["steps"].append(t)
            out["returns"].append(float(returns.mean()))
    for e in [env, *eval_envs]:
        e.close()
    return out


# --------------------------------------------------------------------------- figure


def plot(out: Path, steps: list[int], curves: dict[str, np.ndarray], random_return: float,
         checks: dict[str, tuple[np.ndarray, np.ndarray, dict]]) -> None:
    """(a) return vs env steps, median line and min-max band per arm; (b) generated vs true change of
    th_dot for the generated (s, a), per generator head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12.5, 4.6))
    ax = axes[0]
    colors = dict(zip(ARMS, ("tab:blue", "tab:orange", "tab:gray")))
    for arm, r in curves.items():
        color = colors[arm]
        ax.plot(steps, np.median(r, 0), color=color, lw=2, label=f"{arm} ({len(r)} seed{'s' if len(r) > 1 else ''})")
        ax.fill_between(steps, r.min(0), r.max(0), color=color, alpha=0.18)
    ax.axhline(random_return, color="k", ls=":", lw=1, label="random actions")
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return (mean of episodes)")
    ax.set_title("(a) SAC on Pendulum-v1: median and range over seeds", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    lim = 0.0
    colors = ("tab:orange", "tab:purple")
    for (head, (true_d, gen_d, p)), color in reversed(list(zip(checks.items(), colors))):  # the demo's head on top
        ax.scatter(true_d, gen_d, s=2, alpha=0.3, color=color,
                   label=f"{head}: median error {p['dynamics_error']:.2f} of a step")
        lim = max(lim, np.percentile(np.abs(true_d), 99.5))
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=1)
    ax.set_xlim(-1.2 * lim, 1.2 * lim)
    ax.set_ylim(-1.2 * lim, 1.2 * lim)
    ax.set_xlabel("true change of th_dot from the generated (s, a)")
    ax.set_ylabel("generated change of th_dot")
    ax.set_title("(b) synthetic transitions against Pendulum's physics", fontsize=10)
    ax.legend(fontsize=8, markerscale=4)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- the demo


def random_policy_return(episodes: int) -> float:
    """Mean return of uniformly random actions over the evaluation's reset seeds."""
    env, rng, total = make_env(ENV_ID), np.random.default_rng(0), 0.0
    for i in range(episodes):
        env.reset(seed=10_000 + i)
        done = False
        while not done:
            _, r, terminated, truncated, _ = env.step(rng.uniform(-2, 2, 1).astype(np.float32))
            total += float(r)
            done = terminated or truncated
    return total / episodes


def steps_to(returns: np.ndarray, steps: list[int], level: float) -> int | None:
    """Env steps at the first evaluation with return >= ``level`` (None if none reached it)."""
    hit = np.flatnonzero(np.asarray(returns) >= level)
    return int(steps[hit[0]]) if len(hit) else None


def _dthdot(samples: tuple[np.ndarray, ...], env) -> tuple[np.ndarray, np.ndarray]:
    obs, action, _, next_obs, _ = samples
    return pendulum_next_obs(obs, action, env)[:, 2] - obs[:, 2], next_obs[:, 2] - obs[:, 2]


def run(cfg: SyntheticDataDemoConfig) -> dict:
    """Run the demo; returns the numbers written to ``results.json``."""
    if cfg.quick:
        cfg = _quick(cfg)
    watch = Stopwatch()
    out = Path(cfg.out)
    logger = RunLogger(out, cfg, tensorboard=False)
    arms = ARMS if cfg.baselines else ("real + synthetic",)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    runs = {arm: {s: train(cfg, arm, s, watch) for s in seeds} for arm in arms}
    steps = runs[arms[0]][seeds[0]]["steps"]
    curves = {arm: np.array([runs[arm][s]["returns"] for s in seeds]) for arm in arms}  # [seeds, evals]
    random_return = random_policy_return(cfg.eval_episodes)

    env = make_env(ENV_ID)
    x, y, samples = runs["real + synthetic"][seeds[0]]["last_fit"]
    gens = [g for s in seeds for g in runs["real + synthetic"][s]["generator"]]
    checks = {cfg.head: (*_dthdot(samples, env), runs["real + synthetic"][seeds[0]]["generator"][-1])}
    heads: dict = {cfg.head: {k: float(np.median([g[k] for g in gens])) for k in gens[0] if k != "env_steps"}}
    if cfg.compare_heads:
        other = "mixture" if cfg.head == "flow" else "flow"
        model = make_generator(cfg, other)
        with watch(f"{other} generator check"):
            fit = fit_conditional(model, model.init(jax.random.PRNGKey(cfg.seed)), x, y,
                                  jax.random.PRNGKey(cfg.seed + 1), generator_trainer(cfg))
            other_samples = sample_transitions(model, fit.state, cfg.synthetic_samples, jax.random.PRNGKey(7))
            p = {"fit_epochs": len(fit.history), **plausibility(other_samples, y, env)}
        checks[other] = (*_dthdot(other_samples, env), p)
        heads[other] = p
    plot(out / "synthetic_data.png", steps, curves, random_return, checks)

    summary = {arm: {"final_median": float(np.median(c[:, -1])), "final_min": float(c[:, -1].min()),
                     "final_max": float(c[:, -1].max()), "mean_over_evals_median": float(np.median(c.mean(1))),
                     "steps_to_solve": [steps_to(r, steps, cfg.solved_return) for r in c]}
               for arm, c in curves.items()}
    results = {
        "env": ENV_ID,
        "seeds": seeds,
        "eval_steps": steps,
        "returns": {arm: {str(s): runs[arm][s]["returns"] for s in seeds} for arm in arms},
        "median_returns": {arm: np.median(c, 0).tolist() for arm, c in curves.items()},
        "summary": summary,
        "random_return": random_return,
        "generator": {"fits": {str(s): runs["real + synthetic"][s]["generator"] for s in seeds},
                      "median_over_fits": heads[cfg.head], "last_fit_seed0": checks[cfg.head][2], "heads": heads},
        "seconds": watch.summary(),
    }
    logger.write_json("results.json", results)
    logger.close()

    g = heads[cfg.head]
    print(f"synthetic-data: {cfg.head} generator: median one-step error {g['dynamics_error']:.3f} of a typical "
          f"step (shuffled s': {g['shuffled_error']:.2f}); reward error {g['reward_error']:.3f} of the reward's std")
    for arm, s in summary.items():
        print(f"synthetic-data: {arm:>20}: return at {steps[-1]} steps median {s['final_median']:.0f} "
              f"[{s['final_min']:.0f}, {s['final_max']:.0f}], mean over evals {s['mean_over_evals_median']:.0f}, "
              f"steps to {cfg.solved_return:.0f}: {s['steps_to_solve']}")
    print(f"synthetic-data: random actions {random_return:.0f}; wrote {out}/synthetic_data.png, results.json "
          f"({results['seconds']['total']:.0f} s)")
    return results
