"""Paper settings per environment, as data (PETS, PDDM, RS-MPC, planning by backprop).

PETS: Chua et al. 2018 and its released configs (5 probabilistic members, TS∞ with 20
particles, CEM with α = 0.1 and 10% elites; cart-pole H=25, pop 400; HalfCheetah H=30,
pop 500, 4×200 layers; Reacher H=25, pop 400; Pusher H=25, pop 500). The paper has no
InvertedPendulum; ours adds iCEM and a cart-position cost (see ``_ALIVE_BONUS_PRIOR``).
PDDM: Nagabandi et al. 2020 (3 deterministic members of 2×250, MPPI γ=10, β=0.6, N=700,
H=7, reward averaged over members). RS-MPC: Nagabandi et al. 2018 (one deterministic
model 2×500, N=1000 random sequences, H=20).
``mbrlax train pets`` uses :func:`pets_light_preset`, lighter than the paper so it finishes in
minutes on 2 cores; ``mbrlax train pets-paper`` uses the paper's settings.
"""

from __future__ import annotations

import dataclasses

import gymnasium as gym

from mbrlax.agents.objective import ObjectiveConfig
from mbrlax.algorithms.mpc_loop import MPCLoopConfig, PlannerConfig
from mbrlax.envs import resolve_env_id
from mbrlax.errors import ConfigError
from mbrlax.models.config import ModelConfig
from mbrlax.models.trainer import TrainerConfig

# per-env PETS settings: (horizon, population, elites, hidden, depth, iterations of the loop)
_PETS = {
    "mbrlax/CartpoleSwingup-v0": (25, 400, 40, 200, 3, 15),
    "HalfCheetah-v5": (30, 500, 50, 200, 4, 300),
    "Reacher-v5": (25, 400, 40, 200, 3, 100),
    "Pusher-v5": (25, 500, 50, 200, 3, 100),
    "InvertedPendulum-v5": (25, 400, 40, 200, 3, 5),
}
_PETS_DEFAULT = (25, 500, 50, 200, 4, 50)

# Alive-bonus tasks: (planner, ObjectiveConfig.state_cost). InvertedPendulum pays 1 per step alive, so
# every plan that keeps the pole up for the horizon ties, and the cart drifts to the rail at |x| = 1
# (which the model has never seen) just beyond it. Its PETS plans with iCEM and a cost of 0.3 x² on the
# cart position. Measured, light PETS, episodes 1-3 on seeds 0/1/2: CEM, env reward 132, 263, 109 /
# 486, 274, 191 / 73, 97, 277; iCEM, env reward 77, 419, 504 / 163, 155, 216 / 72, 190, 278; CEM +
# 0.3 x² 327, 232, 170 (seed 0); iCEM + 0.3 x² 1000, 1000, 1000 / 1000, 1000, 1000 / 89, 55, 1000.
# Without the cost, 8 of 9 episodes per variant ended at the rail; CEM's white noise plans near bang-bang
# actions (mean |a| 1.0-1.4 of 3, iCEM's coloured noise 0.4) that, at this budget, do not bring the cart
# back (details: docs/benchmarks.md).
_ALIVE_BONUS_PRIOR = {"InvertedPendulum-v5": ("icem", (0.3, 0.0, 0.0, 0.0))}

# Light PETS only (the paper has its own HalfCheetah setting, which ``pets-paper`` keeps): a cost of
# 1.0·pitch² on HalfCheetah's root pitch (obs[2]), so plans keep the body upright. Without it the
# cheetah flips onto its back and runs there at ~1.5 m/s, a local optimum the model predicts well:
# light PETS seed 1, 49 of 50 episodes on the back, 1310 at 51k steps (best 1483); seed 0, 11 of
# 50, 3901 at 51k. With it, seed 1 (2-core AMD EPYC): upright in every episode from the 5th on,
# returns in docs/benchmarks.md. Turn it off with ``--objective.state-cost`` (no values).
_UPRIGHT_PRIOR = {"HalfCheetah-v5": tuple(1.0 if i == 2 else 0.0 for i in range(18))}

# The return each env's learning curve is drawn against (a dashed line in learning_curve.png):
# (return, the legend's words for it and its source). Cart-pole: our README's target, 180 of the 200
# a perfect swing-up-and-balance earns. InvertedPendulum-v5: the maximum, 1 per step for Gymnasium's
# 1000-step limit. HalfCheetah-v5: PETS's published result, about 4200 at 50k env steps (Chua et al.
# 2018, "Deep Reinforcement Learning in a Handful of Trials using Probabilistic Dynamics Models",
# Fig. 3, read off the curve; the level benchmarks/learning.py checks).
TARGETS: dict[str, tuple[float, str]] = {
    "mbrlax/CartpoleSwingup-v0": (180.0, "180 of 200 (README)"),
    "InvertedPendulum-v5": (1000.0, "1000, the maximum"),
    "HalfCheetah-v5": (4200.0, "≈ 4200 at 50k steps (PETS, Chua et al. 2018)"),
}


def target_return(env: str) -> tuple[float, str] | None:
    """``(return, source)`` the learning curve of ``env`` is drawn against, or None if none is known."""
    try:
        return TARGETS.get(resolve_env_id(env))
    except ConfigError:  # an id that does not resolve has no target
        return None


def pets_preset(env: str, light: bool = False) -> MPCLoopConfig:
    """PETS for ``env``: probabilistic ensemble of 5, CEM, TS∞ with 20 particles (InvertedPendulum:
    iCEM and a cart-position cost, in ``pets-paper`` too, as the paper has no setting for it;
    HalfCheetah, light only: a pitch cost that keeps the body upright)."""
    canonical = resolve_env_id(env)
    H, pop, elites, hidden, depth, iters = _PETS.get(canonical, _PETS_DEFAULT)
    cfg = MPCLoopConfig(
        env=env, out=f"runs/pets-{canonical.split('/')[-1]}", iterations=iters,
        model=ModelConfig(ensemble_size=5, num_elites=5, hidden=hidden, depth=depth, probabilistic=True),
        trainer=TrainerConfig(batch_size=32, learning_rate=1e-3, weight_decay=5e-5, max_epochs=50, patience=5, progress=False),
        planner=PlannerConfig(name="cem", horizon=H, population=pop, elites=elites, iterations=5, alpha=0.1),
        objective=ObjectiveConfig(propagation="tsinf", num_particles=20),
        random_steps=_trial_length(canonical),
    )
    if canonical in _ALIVE_BONUS_PRIOR:
        planner, state_cost = _ALIVE_BONUS_PRIOR[canonical]
        cfg = dataclasses.replace(cfg, planner=dataclasses.replace(cfg.planner, name=planner),
                                  objective=dataclasses.replace(cfg.objective, state_cost=state_cost))
    if light and canonical in _UPRIGHT_PRIOR:
        cfg = dataclasses.replace(cfg, objective=dataclasses.replace(cfg.objective, state_cost=_UPRIGHT_PRIOR[canonical]))
    return light_pets(cfg) if light else cfg


def _trial_length(env_id: str) -> int:
    """One episode's worth of random transitions to start from, as PETS starts from one random
    rollout; on InvertedPendulum a random episode ends after ~5 steps, so this means ~200 of them
    (measured, light PETS seed 0, MPC returns of episodes 1-3: one random episode 31, 47, 49;
    200 random steps 56, 73, 145; 1000 (this preset) 57, 85, 165; 2000 102, 286, 330)."""
    return gym.spec(env_id).max_episode_steps or 0


def pets_light_preset(env: str) -> MPCLoopConfig:
    """The README's PETS: paper structure, lighter numbers (``mbrlax train pets``)."""
    return pets_preset(env, light=True)


def pets_light_without_prior(env: str) -> MPCLoopConfig:
    """Light PETS with CEM on the environment's reward alone (InvertedPendulum and HalfCheetah without their priors)."""
    cfg = pets_light_preset(env)
    return dataclasses.replace(cfg, planner=dataclasses.replace(cfg.planner, name="cem"),
                               objective=dataclasses.replace(cfg.objective, state_cost=()))


def light_pets(cfg: MPCLoopConfig) -> MPCLoopConfig:
    """PETS with a smaller population, fewer particles and a narrower network: minutes on 2 cores.

    Measured on the cart-pole swing-up (seed 0): returns 60, 70, 160, 176, 177, 175, 177 per MPC
    episode (the plateau is 175-181), so the README's run stops after 7 episodes; benchmarks/learning.py runs 10.
    """
    return dataclasses.replace(
        cfg,
        iterations=min(cfg.iterations, 7) if resolve_env_id(cfg.env) == "mbrlax/CartpoleSwingup-v0" else cfg.iterations,
        model=dataclasses.replace(cfg.model, hidden=128, depth=3),
        planner=dataclasses.replace(cfg.planner, population=200, elites=20, iterations=4, horizon=min(cfg.planner.horizon, 20)),
        objective=dataclasses.replace(cfg.objective, num_particles=5),
        trainer=dataclasses.replace(cfg.trainer, batch_size=64, max_epochs=LIGHT_FIT_MAX_EPOCHS),
    )


# Each fit of the light preset runs to early stopping (patience 5), capped here; a cap of 30 underfit.
# HalfCheetah, light model fitted on the first 4000 transitions of a run, tested on the unseen 5th
# episode: capped at 30 epochs, holdout MSE (normalised) 0.079, 20-step predicted-return correlation
# 0.39; to early stopping (176 epochs, 29 s), 0.058 and 0.52. Cart-pole seed 1: best return in 10
# episodes 179.2 with the cap of 30, 180.3 to early stopping (fits of 7-98 epochs, under 10 s).
LIGHT_FIT_MAX_EPOCHS = 200


# PDDM's own settings for its Shadow hand tasks (google-research/pddm, pddm/config/baoding.txt and
# cube.txt): MPPI population (num_control_samples) and gamma (mppi_kappa), model batch size (batchsize),
# and random transitions before the first fit (num_rand_rollouts_train 100 x rand_rollout_length 30).
# Both configs share 3 members of 2x250, H=7, beta=0.6, noise 0.9 and 40 epochs, as pddm_preset has.
_PDDM_HAND = {"mbrlax/Baoding-v0": (700, 20.0, 512, 3000), "mbrlax/HandCube-v0": (1000, 10.0, 512, 3000)}


def pddm_preset(env: str) -> MPCLoopConfig:
    """PDDM: 3 deterministic members (2×250), MPPI filtering, reward averaged over the members
    (Baoding and the hand cube: PDDM's population, gamma, batch and random data for them)."""
    canonical = resolve_env_id(env)
    if canonical in _PDDM_HAND:
        population, gamma, batch, random_steps = _PDDM_HAND[canonical]
        cfg = _pddm_preset(env, canonical)
        return dataclasses.replace(
            cfg, random_steps=random_steps, trainer=dataclasses.replace(cfg.trainer, batch_size=batch),
            planner=dataclasses.replace(cfg.planner, population=population, gamma=gamma))
    return _pddm_preset(env, canonical)


def _pddm_preset(env: str, canonical: str) -> MPCLoopConfig:
    return MPCLoopConfig(
        env=env, out=f"runs/pddm-{canonical.split('/')[-1]}", iterations=_PETS.get(canonical, _PETS_DEFAULT)[5],
        model=ModelConfig(ensemble_size=3, num_elites=3, hidden=250, depth=2, probabilistic=False),
        trainer=TrainerConfig(batch_size=500, learning_rate=1e-3, max_epochs=40, patience=5, progress=False),
        planner=PlannerConfig(name="mppi", horizon=7, population=700, gamma=10.0, beta=0.6, iterations=1),
        objective=ObjectiveConfig(propagation="mean", num_particles=3),
        random_steps=_trial_length(canonical),
    )


def rs_mpc_preset(env: str) -> MPCLoopConfig:
    """Random-shooting MPC: one deterministic model, N=1000 sequences, H=20."""
    canonical = resolve_env_id(env)
    return MPCLoopConfig(
        env=env, out=f"runs/rs-mpc-{canonical.split('/')[-1]}", iterations=_PETS.get(canonical, _PETS_DEFAULT)[5],
        model=ModelConfig(ensemble_size=1, num_elites=1, hidden=500, depth=2, probabilistic=False),
        trainer=TrainerConfig(batch_size=512, learning_rate=1e-3, max_epochs=60, patience=5, bootstrap=False, progress=False),
        planner=PlannerConfig(name="rs", horizon=20, population=1000),
        objective=ObjectiveConfig(propagation="mean", num_particles=1),
        random_steps=_trial_length(canonical),
    )


def grad_mpc_preset(env: str) -> MPCLoopConfig:
    """Planning by backprop through a deterministic ensemble, started from a short CEM (cem-grad)."""
    base = pets_preset(env)
    return dataclasses.replace(
        base, out=base.out.replace("pets", "grad-mpc"),
        model=dataclasses.replace(base.model, probabilistic=False),
        planner=dataclasses.replace(base.planner, name="cem-grad", population=100, elites=10, iterations=2, steps=20),
        objective=ObjectiveConfig(propagation="mean", num_particles=5),
    )
