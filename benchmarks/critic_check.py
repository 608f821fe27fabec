"""Does a run's critic know what its policy earns? Q(s, a) against the realised discounted return.

    python benchmarks/critic_check.py --run runs/bench_mbpo_Hopper-v5 --episodes 6

Loads the latest checkpoint of an MBPO run with the default SAC learner (its learner and real
replay buffer), takes the last ``--episodes`` complete episodes the policy collected (skipping
any whose steps do not chain, e.g. across a resume), and compares min(Q1, Q2) on the taken
actions with the discounted sum of the rewards that followed (gamma from the run's SAC settings).
Episodes that end by termination are exact; for time-limit truncations only steps at least
500 before the end are scored (the missing tail weighs gamma^500 < 0.7% at gamma 0.99).

Tells apart two reasons a policy stays at a poor return: a critic that overrates it (e.g. model
rollouts that miss a failure, so the policy exploits the model) or an accurate critic at a local
optimum. Writes ``benchmarks/results/critic_check_<run>.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.agents.learner import ObservedThrough
from mbrlax.agents.sac import SAC, SACConfig
from mbrlax.algorithms.mbpo import default_learner
from mbrlax.data.buffer import Batch, ReplayBuffer
from mbrlax.envs import get_task, make_env
from mbrlax.envs.registry import action_bounds
from mbrlax.utils.checkpoint import check_same_policy_input, load_pytree

TRUNCATED_MARGIN = 500  # steps before a truncation whose return is scored


def discounted_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = sum_k gamma^k r_{t+k}`` to the end of the episode: ``[T] -> [T]``."""
    out, acc = np.zeros(len(rewards)), 0.0
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        out[t] = acc
    return out


def load_run(run: Path) -> tuple[SAC, Callable[[jax.Array], jax.Array], Any, Batch]:
    """``(sac, observe, state, buffer)`` of an MBPO run's latest checkpoint; ``observe`` maps obs to the learner's input.

    Only MBPO with its default learner: ``train sac`` stores the features themselves in its
    buffer, so its observations would go through the features twice.
    """
    saved = json.loads((run / "config.json").read_text())
    pointer = run / "checkpoint.json"
    if not pointer.exists():
        raise SystemExit(f"{run} has no checkpoint.json: give the folder of an MBPO run with checkpoints")
    folder = run / json.loads(pointer.read_text())["path"]
    if not (folder / "real_buffer.npz").exists():
        raise SystemExit(f"{folder} has no real_buffer.npz: only MBPO runs are supported")
    env = make_env(saved["env"])
    low, high = action_bounds(env)
    sac_cfg = SACConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["sac"].items()})
    learner, policy_input = default_learner(get_task(saved["env"]), env.observation_space.shape[0], len(low),
                                            low, high, sac_cfg)
    check_same_policy_input(json.loads((folder / "loop.json").read_text()), policy_input, str(run))
    sac, observe = (learner.learner, learner.features) if isinstance(learner, ObservedThrough) else (learner, lambda o: o)
    state = load_pytree(folder / "learner.msgpack", sac.init(jax.random.PRNGKey(0)))
    return sac, observe, state, ReplayBuffer.load(folder / "real_buffer.npz").all()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/bench_mbpo_Hopper-v5", help="an MBPO run folder (default SAC learner)")
    p.add_argument("--episodes", type=int, default=6)
    args = p.parse_args()
    run = Path(args.run)
    sac, observe, state, data = load_run(run)
    ends = np.flatnonzero(data.terminated | data.truncated)
    starts = np.r_[0, ends[:-1] + 1]
    chained = [(s, e) for s, e in zip(starts, ends) if np.array_equal(data.next_obs[s:e], data.obs[s + 1:e + 1])]
    rows = []
    for s, e in chained[-args.episodes:]:
        obs, act = jnp.asarray(data.obs[s:e + 1]), jnp.asarray(data.action[s:e + 1])
        q = np.asarray(sac._q(state.critic_params, observe(obs), sac.normalize_action(act))).min(axis=0)
        g = discounted_returns(np.asarray(data.reward[s:e + 1], np.float64), sac.config.gamma)
        scored = len(g) if data.terminated[e] else max(len(g) - TRUNCATED_MARGIN, 0)
        marks = sorted({t for t in (0, 50, 100, 150, 200, scored - 30, scored - 10, scored - 1) if 0 <= t < scored})
        row = {"length": int(e - s + 1), "terminated": bool(data.terminated[e]), "return": float(data.reward[s:e + 1].sum()),
               "q_over_g_median": float(np.median(q[:scored] / np.maximum(np.abs(g[:scored]), 1e-6))) if scored else None,
               "q_and_g_at": {int(t): [float(q[t]), float(g[t])] for t in marks}}
        rows.append(row)
        print(f"length {row['length']:4d} {'terminated' if row['terminated'] else 'truncated'} return {row['return']:7.1f}  "
              + "  ".join(f"t{t}: Q {qt:.0f} / G {gt:.0f}" for t, (qt, gt) in row["q_and_g_at"].items()))
    out = Path("benchmarks/results") / f"critic_check_{run.name}.json"
    out.write_text(json.dumps({"run": str(run), "gamma": sac.config.gamma, "episodes": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
