"""The MPC agent: plan through the model, act, replan (closed loop) or follow the plan (open loop).

``replan_every=1`` is closed-loop MPC (execute the first action, observe, replan);
``replan_every=k`` executes k actions of each plan; ``replan_every >= horizon`` is open loop
(plan once, execute the whole sequence, then plan again from where it ended). With
``warm_start`` the next plan starts from the previous solution shifted in time.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from mbrlax.agents.objective import ObjectiveConfig, TerminalValue, make_objective
from mbrlax.envs.task import Task
from mbrlax.models.dynamics import DynamicsModel, ModelState
from mbrlax.utils.validate import check_range


@dataclass(frozen=True)
class MPCConfig:
    """How the agent uses its planner."""

    replan_every: int = 1
    """Replan after this many executed actions (1: closed loop; >= horizon: open loop)."""
    warm_start: bool = True
    """Start each plan from the previous solution shifted in time."""

    def __post_init__(self):
        check_range(self, "replan_every", ge=1)


class MPCAgent:
    """Owns a planner, a model's (elite) state and a task; ``act(obs)`` returns one action ``[A]``.

    ``notice_slow_plans``: warn once when a plan is slow, pointing at the light settings (for
    library users; a training loop that chose its sizes and logs plan times passes False).

    ``objective_fn(model_state, obs) -> objective`` replaces the objective built from ``model`` and
    ``task`` (both may then be None): e.g. :func:`~mbrlax.agents.latent_objective.make_latent_objective`,
    whose model state is a latent model's params and whose observation is a frame stack. The
    replanning, warm start and open/closed loop are the same.
    """

    SLOW_PLAN_SECONDS = 1.0  # a plan after warm-up slower than this prints a one-time notice
    _slow_noticed = False

    def __init__(self, planner, model: DynamicsModel | None, task: Task | None, objective: ObjectiveConfig = ObjectiveConfig(),
                 cfg: MPCConfig = MPCConfig(), seed: int = 0, terminal_value: TerminalValue | None = None,
                 notice_slow_plans: bool = True, objective_fn=None):
        self.planner, self.model, self.cfg = planner, model, cfg
        self.notice_slow_plans = notice_slow_plans
        self._key = jax.random.PRNGKey(seed)
        self._objective = objective_fn or make_objective(model, task, objective, terminal_value)
        self._plan = jax.jit(lambda ps, ms, obs, key: planner.plan(ps, self._objective(ms, obs), key))
        # shift runs eagerly: its output then lives where ``init``'s does, so the jitted plan sees
        # one input placement (a jitted shift placed it differently with 2 host devices: a recompile)
        self._shift = planner.shift
        self._model_state: ModelState | None = None
        self.plan_seconds: list[float] = []  # wall time of each plan (compile included in the first)
        self.last_info: dict = {}
        self.reset()

    def set_model(self, state: ModelState) -> None:
        """Plan with the elites of this (newly trained) model state (as it is, with an ``objective_fn``)."""
        self._model_state = self.model.elite_state(state) if self.model is not None else state

    def rng_state(self) -> dict:
        """The agent's random state, a pytree for a checkpoint: its key and the planner's state.
        Between episodes only the key matters: :meth:`reset`, called at the start of each episode,
        draws a fresh planner state from it (the saved planner state serves an agent that acts on
        without a reset). Within an episode the stored plan and cursor would matter too; they are
        not saved, so checkpoint between episodes."""
        return {"key": self._key, "planner": self._planner_state}

    def restore_rng_state(self, state: dict) -> None:
        """Continue from :meth:`rng_state` (template for loading it: a fresh agent's ``rng_state()``)."""
        self._key, self._planner_state = state["key"], state["planner"]
        self._actions, self._cursor, self._step = None, 0, 0
        self.planned = []

    def reset(self) -> None:
        """Forget the current plan (call at the start of every episode)."""
        self._key, k = jax.random.split(self._key)
        self._planner_state = self.planner.init(k)
        self._actions: np.ndarray | None = None
        self._cursor = 0
        self._step = 0
        self.planned: list[tuple[int, float]] = []  # (step of the episode, best predicted return) per plan

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self._model_state is None:
            raise RuntimeError("MPCAgent.act called before set_model")
        k = self.next_plan_key()
        if k is not None:
            t0 = time.perf_counter()
            actions, planner_state, info = self._plan(self._planner_state, self._model_state,
                                                      jnp.asarray(obs, jnp.float32), k)
            actions, planner_state = jax.device_get((actions, planner_state))  # waits for the plan
            self.accept_plan(actions, planner_state, info, time.perf_counter() - t0)
        return self.next_action()

    # ``act`` in three steps, so that a caller can run the plan itself, e.g. one vmapped plan for
    # several agents (``algorithms/mpc_seeds.py``): next_plan_key, (plan), accept_plan, next_action.
    def next_plan_key(self) -> jax.Array | None:
        """The key of the plan due before the next action (the planner state made ready: shifted or
        re-initialised), or None when the stored plan still has an action to execute."""
        H = self.planner.horizon
        if self._actions is not None and self._cursor < min(self.cfg.replan_every, H):
            return None
        if self._actions is not None:
            if self.cfg.warm_start:
                for _ in range(self._cursor):
                    self._planner_state = self._shift(self._planner_state)
            else:
                self._key, k = jax.random.split(self._key)
                self._planner_state = self.planner.init(k)
        self._key, k = jax.random.split(self._key)
        return k

    def accept_plan(self, actions, planner_state, info: dict, seconds: float) -> None:
        """Store a plan (``actions [H, A]``, the planner's new state and info) made with the
        :meth:`next_plan_key` key; ``seconds``: the wall time the plan took (logged in ``plan_seconds``)."""
        # kept on the host: the next plan then sees the placement ``init``'s state had, not the
        # plan's multi-device output placement, which cost a second compile of the plan per agent
        self._planner_state = jax.device_get(planner_state)
        self._actions = np.asarray(actions)
        self.plan_seconds.append(seconds)
        self._notice_if_slow()
        self.last_info = info
        self.planned.append((self._step, float(info["best_return"])))
        self._cursor = 0

    def next_action(self) -> np.ndarray:
        """The stored plan's next action ``[A]`` (advances the cursor)."""
        action = self._actions[self._cursor]
        self._cursor += 1
        self._step += 1
        return action

    def _notice_if_slow(self) -> None:
        """Once per agent: say so when a plan after the first (which compiles) is slow, and how to get light settings."""
        if (not self.notice_slow_plans or self._slow_noticed or len(self.plan_seconds) < 2
                or self.plan_seconds[-1] <= self.SLOW_PLAN_SECONDS):
            return
        self._slow_noticed = True
        warnings.warn(f"mbrlax: one plan took {self.plan_seconds[-1]:.1f} s; the library's defaults are the paper's "
                      "sizes. Light settings (~0.1 s per plan on 2 CPU cores): cfg = mbrlax.pets_light_preset(env_id), "
                      "then MPCAgent(cfg.planner.build(low, high), model, task, cfg.objective) with the model from "
                      "cfg.model (the CLI: mbrlax train pets). See docs/getting-started.md.", stacklevel=3)
