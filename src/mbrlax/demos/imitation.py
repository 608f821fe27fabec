"""Demo: imitation from observation with an inverse dynamics model (``mbrlax demo imitation``).

    expert   <- a scripted Reacher controller; we keep only its observations (a video, no actions)
    explore  <- our own random-action episodes, actions included
    inverse  <- p(a_t | s_t, s_t+1), an ensemble fitted on the exploratory transitions
    labels   <- the inverse model's action for each of the expert's transitions
    BC       <- a policy p(a | s) fitted on the expert's states with those labels

This is behavioural cloning from observation (BCO, Torabi et al. 2018). The policy cloned from
inferred labels is compared with the same cloning on the expert's true actions (the ceiling
BCO can reach), with the exploratory policy, with doing nothing, and with the expert. Then the
same pipeline runs on smaller prefixes of the exploratory data: how much of our own experience
does the inverse model need before its labels are as good as the truth?

Reacher-v5 suits the story: an expert is a few lines of kinematics, random torques cover the
arm's angles and speeds, and a torque changes the joint velocities within one step, so (s_t,
s_t+1) says which action was taken. BCO's iterative step, BCO(alpha) (relabel after adding the
cloned policy's own transitions), measured worse than spending the same steps on random
exploration, so it is left out (docs/demo_imitation.md has the numbers). Writes
``imitation.png`` and ``results.json`` into ``cfg.out``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import jax
import numpy as np

from mbrlax.data.buffer import ReplayBuffer
from mbrlax.data.rollout import collect, random_policy
from mbrlax.demos.common import Stopwatch
from mbrlax.envs import make_vector_env
from mbrlax.envs.registry import true_next_obs
from mbrlax.models.conditional import HEADS, ConditionalModel
from mbrlax.models.kinds import build_model, evaluate, window_rows
from mbrlax.models.trainer import TrainerConfig, fit_conditional
from mbrlax.utils.run_logger import RunLogger
from mbrlax.utils.validate import check_choice, check_nonempty, check_range, check_seed

ENV_ID = "Reacher-v5"
OBS_DIM, ACT_DIM, EPISODE_STEPS = 10, 2, 50
LINKS = (0.1, 0.11)  # Reacher's arm: shoulder to elbow, elbow to fingertip (reacher.xml)

Policy = Callable[[np.ndarray], np.ndarray]  # obs[B, D] -> action[B, A], NumPy


@dataclass(frozen=True)
class ImitationDemoConfig:
    """Imitation from observation (BCO) on Reacher-v5."""

    seed: int = 0
    """Random seed."""
    out: str = "runs/demo-imitation"
    """Output folder: imitation.png, results.json, config.json."""
    quick: bool = False
    """Shrink the run (2000 exploratory steps, shorter fits, 20 evaluation episodes, no sweep); the tests use it."""
    explore_steps: int = 5000
    """Random-action transitions (with actions) the inverse model learns from."""
    sweep_steps: tuple[int, ...] = (100, 250, 500, 1000, 2000)
    """Smaller exploration budgets to rerun BCO with (prefixes of the same data), each < explore_steps."""
    collect_envs: int = 8
    """Parallel environments for the exploratory data."""
    expert_episodes: int = 20
    """Expert episodes of 50 steps, kept as observations only."""
    eval_episodes: int = 50
    """Evaluation episodes per policy (the same targets for every policy)."""
    expert_kp: float = 50.0
    """Expert: gain on the fingertip error, mapped to torques by the Jacobian transpose."""
    expert_kd: float = 0.2
    """Expert: damping on the joint velocities."""
    inverse_head: str = "mixture"
    """Output head of the inverse model (mixture measured best; gaussian, flow, deterministic)."""
    components: int = 5
    """Mixture components of the inverse model."""
    policy_head: str = "deterministic"
    """Output head of the cloned policies (they act on its mode)."""
    ensemble_size: int = 3
    """Ensemble members of each model (all are elites)."""
    hidden: int = 64
    """Hidden width of each model."""
    depth: int = 2
    """Hidden layers of each model."""
    batch_size: int = 64
    """Minibatch size of every fit (256 measured 3 of 10 cloned policies stuck early on a plateau)."""
    max_epochs: int = 200
    """Upper bound on training epochs per fit."""
    patience: int = 20
    """Stop a fit after this many epochs without holdout improvement."""

    def __post_init__(self):
        check_nonempty(self, "out")
        check_seed(self)
        check_range(self, "explore_steps", "collect_envs", "expert_episodes", "eval_episodes", "components",
                    "ensemble_size", "hidden", "depth", "batch_size", "max_epochs", "patience", ge=1)
        check_range(self, "sweep_steps", ge=1, lt=self.explore_steps)
        check_range(self, "expert_kp", "expert_kd", ge=0)
        check_choice(self, "inverse_head", HEADS)
        check_choice(self, "policy_head", ("deterministic", "gaussian", "mixture"))


def _quick(cfg: ImitationDemoConfig) -> ImitationDemoConfig:
    return replace(cfg, explore_steps=2000, sweep_steps=(), eval_episodes=20, max_epochs=100, patience=10)


# --------------------------------------------------------------------------- the expert and rollouts


def expert_policy(kp: float, kd: float) -> Policy:
    """Jacobian-transpose control from the observation: torque = kp J(q)^T (target - fingertip) - kd q_dot."""
    l1, l2 = LINKS

    def act(obs: np.ndarray) -> np.ndarray:
        c1, c2, s1, s2 = obs[:, 0], obs[:, 1], obs[:, 2], obs[:, 3]
        c12, s12 = c1 * c2 - s1 * s2, s1 * c2 + c1 * s2  # cos, sin of q1 + q2
        jac = np.stack([np.stack([-l1 * s1 - l2 * s12, -l2 * s12], -1),
                        np.stack([l1 * c1 + l2 * c12, l2 * c12], -1)], -2)  # d fingertip / d q, [B, 2, 2]
        err = -obs[:, 8:10]  # target - fingertip, [B, 2]
        torque = kp * np.einsum("bij,bi->bj", jac, err) - kd * obs[:, 6:8]
        return np.clip(torque, -1.0, 1.0).astype(np.float32)

    return act


def no_action(obs: np.ndarray) -> np.ndarray:
    """Zero torque: the arm stays where it starts (Reacher's control cost is then zero)."""
    return np.zeros((len(obs), ACT_DIM), np.float32)


def rollout(policy: Policy, episodes: int, seed: int) -> dict[str, np.ndarray]:
    """``episodes`` parallel Reacher episodes: obs ``[T + 1, N, D]``, actions ``[T, N, A]``, returns ``[N]``
    and the final fingertip-target distance ``[N]``. The same seed gives the same targets and starts."""
    envs = make_vector_env(ENV_ID, episodes, seed=seed)
    obs, _ = envs.reset(seed=seed)
    observations, actions, rewards = [np.asarray(obs, np.float32)], [], []
    for _ in range(EPISODE_STEPS):
        action = np.asarray(policy(np.asarray(obs, np.float32)), np.float32)
        obs, reward, terminated, truncated, info = envs.step(action)
        actions.append(action)
        rewards.append(reward)
        observations.append(np.asarray(true_next_obs(obs, terminated, truncated, info), np.float32))
    envs.close()
    final = observations[-1]
    return {"obs": np.array(observations), "actions": np.array(actions), "returns": np.sum(rewards, 0),
            "final_distance": np.linalg.norm(final[:, 8:10], axis=-1)}


# --------------------------------------------------------------------------- models


def fit_model(model: ConditionalModel, x: np.ndarray, y: np.ndarray, key: jax.Array, trainer: TrainerConfig):
    """A fresh fit of ``model`` on raw ``x[N, in]``, ``y[N, Y]``."""
    k_init, k_fit = jax.random.split(key)
    return fit_conditional(model, model.init(k_init), x, y, k_fit, trainer)


def predictor(model: ConditionalModel, state) -> Callable[[np.ndarray], np.ndarray]:
    """``x[B, in] -> y[B, Y]`` through the model's mode (what a controller acts on), jitted, NumPy in and out."""
    f = jax.jit(lambda x: model.mode(state, x))
    return lambda x: np.asarray(f(np.asarray(x, np.float32)))


def clone(model: ConditionalModel, states: np.ndarray, actions: np.ndarray, key: jax.Array,
          trainer: TrainerConfig) -> Policy:
    """Behavioural cloning: fit p(a | s) on ``states[N, D]``, ``actions[N, A]``; act on its mode, clipped."""
    f = predictor(model, fit_model(model, states, actions, key, trainer).state)
    return lambda obs: np.clip(f(obs), -1.0, 1.0)


def label_r2(inferred: np.ndarray, true: np.ndarray) -> float:
    """1 - MSE / variance of the true actions (averaged over action dimensions): 1 is perfect labels."""
    return float(1.0 - np.mean((inferred - true) ** 2) / np.var(true, axis=0).mean())


def gaps(r: dict[str, float]) -> tuple[float, float]:
    """Share of the gap from a baseline to BC on true actions that BC on inferred actions closes, with the
    exploratory policy as the baseline and (stricter) with the no-action policy."""
    inf, true = r["BC, inferred actions"], r["BC, true actions"]
    return tuple(float((inf - r[b]) / (true - r[b])) for b in ("explore (random)", "no action"))


# --------------------------------------------------------------------------- figure


def plot(out: Path, evals: dict[str, dict], true_a: np.ndarray, inferred_a: np.ndarray, gap: float,
         gap_still: float, sweep: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if sweep else 2, figsize=(16 if sweep else 11, 4.6))
    ax = axes[0]
    names = list(evals)
    rets = [evals[n]["returns"] for n in names]
    ax.bar(range(len(names)), [r.mean() for r in rets], yerr=[r.std() for r in rets], capsize=4,
           color=["tab:gray", "tab:olive", "tab:blue", "tab:green", "tab:purple"])
    for i, r in enumerate(rets):
        ax.plot(i + np.linspace(-0.3, 0.3, len(r)), r, ".", color="tab:red", ms=2, alpha=0.5)
    ax.set_xticks(range(len(names)), [n.replace(", ", ",\n").replace(" (", "\n(") for n in names], fontsize=8)
    ax.set_ylabel(f"return over {EPISODE_STEPS} steps (mean ± std; dots: episodes)")
    ax.set_title(f"(a) gap closed: {gap:.0%} from random, {gap_still:.0%} from no action", fontsize=10)
    ax.grid(axis="y", alpha=0.3)

    ax = axes[1]
    for j, color in enumerate(("tab:blue", "tab:orange")):
        ax.scatter(true_a[:, j], inferred_a[:, j], s=4, alpha=0.4, color=color, label=f"joint {j + 1}")
    lim = 1.05 * np.abs(np.concatenate([true_a, inferred_a])).max()
    ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("expert's true torque (hidden from BCO)")
    ax.set_ylabel("inverse model's label")
    ax.set_title(f"(b) labels of the expert's transitions: R² = {label_r2(inferred_a, true_a):.3f}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)

    if sweep:
        ax = axes[2]
        steps = [s["explore_steps"] for s in sweep]
        ax.plot(steps, [s["gap_closed"] for s in sweep], "o-", label="gap closed from random")
        ax.plot(steps, [s["gap_closed_vs_no_action"] for s in sweep], "s-", label="gap closed from no action")
        ax.plot(steps, [max(s["label_r2"], -0.5) for s in sweep], "^--", color="k", alpha=0.6,
                label="label R² (clipped at -0.5)")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(-0.55, 1.15)
        ax.set_xlabel("exploratory transitions the inverse model learns from")
        ax.set_title("(c) how much exploration BCO needs", fontsize=10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("Reacher-v5: behavioural cloning from observation (BCO)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- the demo


def run(cfg: ImitationDemoConfig) -> dict:
    """Run the demo; returns the numbers written to ``results.json``."""
    if cfg.quick:
        cfg = _quick(cfg)
    watch = Stopwatch()
    out = Path(cfg.out)
    logger = RunLogger(out, cfg, tensorboard=False)
    key = jax.random.PRNGKey(cfg.seed)
    trainer = TrainerConfig(batch_size=cfg.batch_size, max_epochs=cfg.max_epochs, patience=cfg.patience, progress=False)
    sizes = dict(ensemble_size=cfg.ensemble_size, num_elites=cfg.ensemble_size, hidden=cfg.hidden, depth=cfg.depth)
    inverse = build_model("inverse", OBS_DIM, ACT_DIM, head=cfg.inverse_head, components=cfg.components, **sizes)
    policy_model = ConditionalModel(OBS_DIM, ACT_DIM, head=cfg.policy_head, **sizes)
    expert = expert_policy(cfg.expert_kp, cfg.expert_kd)

    with watch("collect"):
        envs = make_vector_env(ENV_ID, cfg.collect_envs, seed=cfg.seed)
        explore = random_policy(envs.single_action_space, cfg.seed)
        buffer = ReplayBuffer(cfg.explore_steps, OBS_DIM, ACT_DIM)
        collect(envs, explore, cfg.explore_steps, buffer, seed=cfg.seed)
        envs.close()
        x_all, y_all = window_rows("inverse", buffer)  # x [N, 2 D] = (s_t, s_t+1), y [N, A] = a_t; oldest first
        demo = rollout(expert, cfg.expert_episodes, seed=cfg.seed + 1000)
    # all BCO sees of the expert: its observations [T + 1, E, D]
    expert_x = np.concatenate([demo["obs"][:-1], demo["obs"][1:]], -1).reshape(-1, 2 * OBS_DIM)  # [T E, 2 D]
    expert_s = demo["obs"][:-1].reshape(-1, OBS_DIM)  # [T E, D]
    expert_a = demo["actions"].reshape(-1, ACT_DIM)  # [T E, A]: only for BC's ceiling and for scoring labels

    def bco(steps: int, key: jax.Array) -> tuple[Policy, np.ndarray, object]:
        """Inverse model on the first ``steps`` exploratory transitions -> labels -> cloned policy."""
        fit = fit_model(inverse, x_all[:steps], y_all[:steps], key, trainer)
        inferred = predictor(inverse, fit.state)(expert_x)  # [T E, A]
        return clone(policy_model, expert_s, inferred, k_clone, trainer), inferred, fit

    # every clone starts from the same initialisation and minibatch order (k_clone): the arms differ
    # in their labels only, a paired comparison
    key, k_bco, k_clone, k_eval, k_sweep = jax.random.split(key, 5)
    with watch("fit inverse, label, clone"):
        bc_inferred, inferred, inv_fit = bco(cfg.explore_steps, k_bco)
    with watch("clone true actions"):
        bc_true = clone(policy_model, expert_s, expert_a, k_clone, trainer)
    inv_eval = evaluate(inverse, inv_fit.state, expert_x, expert_a, k_eval)

    eval_seed = cfg.seed + 5000  # every policy meets the same targets
    with watch("evaluate"):
        policies = {"explore (random)": explore, "no action": no_action, "BC, inferred actions": bc_inferred,
                    "BC, true actions": bc_true, "expert": expert}
        evals = {name: rollout(pol, cfg.eval_episodes, eval_seed) for name, pol in policies.items()}
    means = {n: float(e["returns"].mean()) for n, e in evals.items()}
    gap, gap_still = gaps(means)

    sweep = []
    for steps, k in zip(cfg.sweep_steps, jax.random.split(k_sweep, max(len(cfg.sweep_steps), 1))):
        with watch("sweep"):
            pol, labels, _ = bco(steps, k)
            ret = float(rollout(pol, cfg.eval_episodes, eval_seed)["returns"].mean())
            r = dict(means, **{"BC, inferred actions": ret})
        g, gs = gaps(r)
        sweep.append({"explore_steps": steps, "label_r2": label_r2(labels, expert_a),
                      "return_mean": r["BC, inferred actions"], "gap_closed": g, "gap_closed_vs_no_action": gs})
    sweep.append({"explore_steps": cfg.explore_steps, "label_r2": label_r2(inferred, expert_a),
                  "return_mean": means["BC, inferred actions"], "gap_closed": gap,
                  "gap_closed_vs_no_action": gap_still})
    plot(out / "imitation.png", evals, expert_a, inferred, gap, gap_still, sweep if cfg.sweep_steps else [])

    results = {
        "env": ENV_ID,
        "returns": {n: {"mean": float(e["returns"].mean()), "std": float(e["returns"].std()),
                        "final_distance": float(e["final_distance"].mean())} for n, e in evals.items()},
        "gap_closed": gap,
        "gap_closed_vs_no_action": gap_still,
        "inverse_model": {
            "head": cfg.inverse_head, "train_rows": cfg.explore_steps, "fit_epochs": len(inv_fit.history),
            "holdout_loss": float(np.mean(inv_fit.holdout_mse)),
            "expert_label_mse": float(np.mean((inferred - expert_a) ** 2)),
            "expert_label_r2": label_r2(inferred, expert_a),
            "expert_normalised_mse": inv_eval["mse"], "expert_nll": inv_eval["nll"],
        },
        "sweep": sweep,
        "seconds": watch.summary(),
    }
    logger.write_json("results.json", results)
    logger.close()

    for n, e in results["returns"].items():
        print(f"imitation: {n:>20s}: return {e['mean']:7.2f} ± {e['std']:5.2f}, "
              f"final distance {e['final_distance']:.3f}")
    print(f"imitation: BC on inferred actions closes {gap:.0%} of the gap from the random policy to BC on true "
          f"actions ({gap_still:.0%} from the no-action policy); "
          f"label R² {results['inverse_model']['expert_label_r2']:.3f}")
    for s in sweep[:-1]:
        print(f"imitation: {s['explore_steps']:5d} exploratory steps: label R² {s['label_r2']:6.3f}, "
              f"gap closed {s['gap_closed']:.0%} (from no action {s['gap_closed_vs_no_action']:.0%})")
    print(f"imitation: wrote {out}/imitation.png, results.json ({results['seconds']['total']:.0f} s)")
    return results
