"""Several MBPO seeds trained together in one process: ``mbrlax train mbpo-seeds --seeds 0 1 2 3 4``.

The loop of :func:`~mbrlax.algorithms.mbpo.run`, run for ``N`` seeds in lockstep (every seed is at
the same env step of the same epoch at every moment):

- the model fits are :func:`~mbrlax.models.trainer.fit_seeds`: every epoch of all ``N`` fits is one
  vmapped call, each seed keeping its own early stopping by masking (the seeds' real buffers always
  hold the same number of transitions, one per env step, so their data sets stack);
- the branched rollouts of all seeds are one call of the jitted rollout ``vmap``-ped over the model
  states, learner states, start states ``[N, R, D]`` and keys;
- the ``N`` learner states are one pytree with a leading seed axis ``[N, ...]``; each env step's acts
  and ``G`` updates of all seeds are one call each (``sac_seeds``' vmapped :meth:`act` / :meth:`update_many`);
- the envs, the real and model buffers and the NumPy generators stay per seed in Python: each seed
  is a :class:`~mbrlax.algorithms.mbpo.HostRun`, the very object the single run uses.

So seed ``k`` draws the same keys and random numbers, resets its envs with the same seeds and samples the
same batches as ``mbrlax train mbpo --seed k``; its folder ``OUT/seed<k>/`` holds what that command writes
(config.json with ``seed=k`` and ``out=OUT/seed<k>``, metrics.csv with the same columns, tb/,
learning_curve.png, results.json, and checkpoints in its format). Numbers agree with the single run up
to the float rounding of the batched matmuls (tests/algorithms/test_mbpo_seeds.py: up to ~4e-7 relative
on a tiny run). Long fits amplify it, as in ``pets-seeds``: on the benchmark's Pendulum settings (the
preset's 7 x 4x200 ensemble, 400 transitions) a first fit's holdout MSE agreed to 4e-7 up to epoch 30,
then 6e-4 at epoch 50 and 2e-2 at 70; a later fit can then stop at another epoch, and from there a seed's
run parts from its single run (same distribution, other numbers). The ``time_*`` columns are the batched
run's, shared by all seeds; so is ``--trainer.max-seconds``, which bounds the batched fit's wall time,
longer per epoch than one seed's (a seed's fit can then stop earlier than in its single run). A model fit
that diverges in any seed is redone one seed at a time, as the single run fits (a diverged seed
keeps its last good weights).

This is a second loop beside :func:`~mbrlax.algorithms.mbpo.run`, not that loop ``vmap``-ped whole: the envs,
buffers and generators are host objects (Python and NumPy), so only the device calls are batched; the host
side is the single run's code (``HostRun``), and the two loops differ only in making those calls per seed.

Speed (benchmarks/seeds.py --part mbpo, Pendulum-v1 with the preset's networks on a short budget, 2 shared
CPU cores at load 7-8): 5 seeds batched take ~3.7x one seed's wall time, ~1.3x less than five single runs;
the SAC updates gain, the fits (compute-bound, and as long as their longest seed) do not.

Limits: the model must not learn termination (an env without a known task, or
``--model.predict-termination``): its extra training rows, one per terminal transition, differ between
seeds, so the fits cannot be stacked; refused with one line. ``--resume`` is refused with one line: seeds killed
between two folders' writes can sit at different epochs, which lockstep cannot continue; continue one
seed instead with ``mbrlax train mbpo --seed K --out OUT/seedK --resume`` and the same flags.
A non-finite policy loss in any seed stops the run (``TrainingDivergedError`` naming the seeds).
Only the default learner (SAC on the task's policy features) is batched.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import tyro
from tqdm.auto import tqdm

from mbrlax.algorithms.mbpo import (PHASES, HostRun, MBPOConfig, evaluate_lockstep, fit_on_real, fit_stats, init_states,
                                    make_parts, mbpo_preset, policy_means, timed, total_steps)
from mbrlax.algorithms.seed_axis import seed_config, seeds_preset, stack, stack_on_device, unstack
from mbrlax.algorithms.sac_seeds import act_seeds, update_seeds
from mbrlax.envs import make_env
from mbrlax.errors import ConfigError, TrainingDivergedError
from mbrlax.models.trainer import fit_seeds
from mbrlax.utils.checkpoint import clear_checkpoint
from mbrlax.utils.validate import check_seeds_config, setting


@dataclasses.dataclass(frozen=True)
class MBPOSeedsConfig(MBPOConfig):
    """Settings of ``mbrlax train mbpo-seeds``: those of ``mbrlax train mbpo`` for every seed, plus the seeds."""

    seed: tyro.conf.Suppress[int] = 0  # not a flag: each run's seed comes from ``seeds``
    out: str = "runs/mbpo-seeds"
    """Parent folder: seed k's run folder is OUT/seed<k>/, as `mbrlax train mbpo --seed k --out OUT/seed<k>` writes it."""
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Seeds trained together (fits, rollouts and policy updates vmapped over a seed axis)."""
    resume: bool = False
    """Refused (seeds can stop at different epochs): continue one seed with `mbrlax train mbpo --seed K --out OUT/seedK --resume`."""

    def __post_init__(self):
        super().__post_init__()
        check_seeds_config(self, "mbrlax train mbpo")

    def single(self, seed: int) -> MBPOConfig:
        """Seed ``seed``'s run as an MBPOConfig: the shared settings, ``seed`` and ``out=OUT/seed<seed>``."""
        return seed_config(self, MBPOConfig, seed)


def mbpo_seeds_preset(env: str) -> MBPOSeedsConfig:
    """``mbrlax train mbpo``'s preset for ``env`` (the paper's settings), for several seeds."""
    return seeds_preset(mbpo_preset(env), MBPOSeedsConfig)


def check_batchable(cfg: MBPOConfig, model) -> None:
    """Refuse (one ConfigError line naming the flag) a model that learns termination: see the module docstring."""
    if not model.cfg.predict_termination:
        return
    where = (f"{setting(cfg.model, 'predict_termination')} is set" if cfg.model.predict_termination
             else f"{setting(cfg, 'env')} {cfg.env} has no known task")
    raise ConfigError(f"{where}, so the model learns termination, whose training rows differ between seeds and "
                      "cannot be batched; train its seeds one at a time with `mbrlax train mbpo --seed K`")


@functools.partial(jax.jit, static_argnums=(0, 5))
def _rollout_seeds(rollout_fn, model_states, learner_states, starts, keys, horizon: int):
    """``model_states [N, ...], learner_states [N, ...], starts [N, R, D], keys [N, 2]`` -> a RolloutBatch
    ``[N, k, R, ...]``: each seed's ``rollout_fn(..., horizon=k)``."""
    return jax.vmap(lambda m, s, x, k: rollout_fn(m, s, x, k, horizon=horizon))(model_states, learner_states,
                                                                                  starts, keys)


def _fit_all(model, states: list, hosts: list[HostRun], keys: list, trainer) -> list[tuple]:
    """Every seed's model fit on its real buffer, batched: ``[(state, stats)]`` per seed, as the single run's
    ``fit_on_real``. A divergence in any seed redoes the fits one seed at a time, as the single run would."""
    try:
        results = fit_seeds(model, states, [h.real.all() for h in hosts], keys, trainer)
    except TrainingDivergedError:
        return [fit_on_real(model, s, h.real, k, trainer) for s, h, k in zip(states, hosts, keys)]
    return [(r.state, fit_stats(model, r)) for r in results]


def run(cfg: MBPOSeedsConfig) -> list[dict]:
    """Run MBPO for every seed of ``cfg.seeds`` at once; returns each seed's results.json summary."""
    seeds, n = cfg.seeds, len(cfg.seeds)
    configs = [cfg.single(s) for s in seeds]
    first = make_env(configs[0].env, seed=configs[0].seed)
    parts = make_parts(configs[0], first)
    learner, model = parts.learner, parts.model
    try:
        check_batchable(cfg, model)
    except ConfigError:
        first.close()
        raise
    envs = [first] + [make_env(c.env, seed=c.seed) for c in configs[1:]]  # made only once the run can go
    eval_envs = [[make_env(c.env) for _ in range(c.eval_episodes)] for c in configs]  # N x E
    use_model = cfg.real_ratio < 1.0

    keys, learner_states, model_states, hosts = [], [], [], []  # each seed's, as its single run makes them
    for c, env in zip(configs, envs):
        key, learner_state, model_state = init_states(parts, c.seed)
        keys.append(key)
        learner_states.append(learner_state)
        model_states.append(model_state)
        hosts.append(HostRun(c, env, parts))
    states = jax.device_put(stack(learner_states))  # [N, ...]
    bar = tqdm(total=total_steps(cfg), disable=not cfg.progress, unit="step", desc=f"mbpo {cfg.env} x{n} seeds",
               dynamic_ncols=True)

    # ---- initial exploration: each seed's uniformly random steps, as its single run takes them
    for i, h in enumerate(hosts):
        h.episode.reset()
        clear_checkpoint(h.out)  # a new run: an earlier run's checkpoint must not meet this one's
        h.start_logging(resumed=False)
        with timed(h.loop["time_s"], "env"):
            steps = h.explore(parts.low, parts.high)
        h.checkpoint(0, keys[i], learner_states[i], model_states[i])
    bar.update(steps)

    for epoch in range(cfg.epochs):
        times = {p: 0.0 for p in PHASES}
        k = [h.start_epoch(epoch) for h in hosts][0]  # one k: the seeds share the schedule
        act_keys, update_keys, fit_keys = [], [], []
        for i in range(n):
            keys[i], k_act, k_update, k_fit = jax.random.split(keys[i], 4)
            act_keys.append(np.asarray(jax.random.split(k_act, cfg.epoch_length)))
            update_keys.append(np.asarray(jax.random.split(k_update, cfg.epoch_length)))
            fit_keys.append(k_fit)
        act_keys, update_keys = np.stack(act_keys), np.stack(update_keys)  # [N, L, 2]
        fits, rollouts, policy_metrics = ([[] for _ in seeds] for _ in range(3))

        for t in range(cfg.epoch_length):
            if use_model and t % cfg.model_train_freq == 0:
                split = [jax.random.split(jax.random.fold_in(kf, t)) for kf in fit_keys]  # N x (k_fit_t, k_roll_t)
                with timed(times, "model"):  # every seed's ensemble fitted on its real data, one vmapped fit
                    fitted = _fit_all(model, model_states, hosts, [s[0] for s in split], cfg.trainer)
                    model_states = [m for m, _ in fitted]
                    for h, (_, stats), f in zip(hosts, fitted, fits):
                        f.append(stats)
                        h.loop["model_fits"] += 1
                with timed(times, "rollout"):  # every seed's k-step rollouts from its real states, one call
                    starts = jnp.asarray(np.stack([h.rollout_starts() for h in hosts]))  # [N, R, D]
                    stacked = stack_on_device(model_states)  # [N, ...]
                    batch = jax.device_get(_rollout_seeds(parts.rollout_fn, stacked, states, starts,
                                                          jnp.stack([s[1] for s in split]), k))
                    for i, h in enumerate(hosts):
                        rollouts[i].append(h.add_rollouts(jax.tree.map(lambda x: x[i], batch)))

            with timed(times, "env"):  # one real step per seed with its stochastic policy, one act call
                obs = np.stack([h.episode.obs for h in hosts])[:, None].astype(np.float32)  # [N, 1, D]
                actions = np.asarray(act_seeds(learner, states, obs, act_keys[:, t], False))[:, 0]  # [N, A]
                for h, a in zip(hosts, actions):
                    h.env_step(a)
                bar.update(1)

            with timed(times, "policy"):  # G updates of every seed on its mixed batches, one compiled call
                batches = stack([h.policy_batches(parts.batch_size) for h in hosts])  # [N, G, B, ...]
                states, metrics = update_seeds(learner, states, batches, update_keys[:, t])
                metrics = jax.device_get(metrics)  # {name: [N]}
                for i, h in enumerate(hosts):
                    policy_metrics[i].append({name: v[i] for name, v in metrics.items()})
                    h.loop["updates"] += cfg.updates_per_step

        # ---- evaluate, log, checkpoint (each seed into its own folder)
        with timed(times, "eval"):
            returns = _evaluate(learner, states, eval_envs, [s + 1_000_000 for s in seeds])  # [N, E]
        means = [policy_means(m) for m in policy_metrics]
        bad = [s for s, m in zip(seeds, means) if not all(math.isfinite(v) for v in m.values())]
        if bad:
            bar.close()
            raise TrainingDivergedError(f"the policy learner diverged in epoch {epoch} for seeds {bad} (non-finite "
                                        f"loss); the checkpoints in {cfg.out}/seed<k> hold the last good states",
                                        last_good=None)
        saved = unstack(jax.device_get(states), n) if cfg.checkpoint else [None] * n  # host copies
        for i, h in enumerate(hosts):
            h.log_epoch(epoch, k, returns[i], fits[i], rollouts[i], means[i], times)
            h.checkpoint(epoch + 1, keys[i], saved[i], model_states[i])
        bar.set_postfix(epoch=epoch + 1, ret=f"{returns.mean():.1f}", k=k)
    bar.close()

    results = [h.finish() for h in hosts]
    for e in [*envs, *(e for es in eval_envs for e in es)]:
        e.close()
    return results


def _evaluate(learner, states, eval_envs: list[list], seeds: list[int]) -> np.ndarray:
    """Returns ``[N, E]``: per seed what :func:`~mbrlax.algorithms.mbpo.evaluate_policy` returns for its state,
    envs and evaluation seed, every seed's envs stepped in lockstep with one vmapped deterministic act."""
    n, e = len(eval_envs), len(eval_envs[0])
    keys = np.zeros((n, 2), np.uint32)  # jax.random.PRNGKey(0) per seed, unused by the deterministic policy

    def act(obs):  # [N * E, D] -> [N * E, A]
        return np.asarray(act_seeds(learner, states, obs.reshape(n, e, -1), keys, True)).reshape(n * e, -1)

    flat = [env for envs in eval_envs for env in envs]
    return evaluate_lockstep(act, flat, [s + j for s in seeds for j in range(e)]).reshape(n, e)
