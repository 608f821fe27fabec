"""Making environments: ids and aliases, known-env configuration, tasks, action bounds.

``make_env`` makes any Gymnasium env id, including Gymnasium's ``module:Id`` for an env in the
user's own module (the module is imported, which registers the id). For the envs mbrlax has a task for, it configures
the observation so the task's reward and termination are functions of
``(obs, action, next_obs)`` (``KNOWN_ENVS[id].obs_layout`` says what each entry is):

- HalfCheetah/Hopper/Walker2d/Ant-v5: ``exclude_current_positions_from_observation=False``.
- Ant-v5: contact forces stay in (the v5 default) and the torso ``xpos[:2]`` is appended.
- InvertedDoublePendulum-v5: the tip site ``(x, z)`` and unclipped ``qvel[1:3]`` are appended.

Both appended sets are positions MuJoCo leaves after ``mj_step`` (those of the last RK4
stage, not of the final ``qpos``) or values the observation clips; see ``tasks.py``.

Keyword arguments that change a known env's reward or observation (e.g. ``ctrl_cost_weight``)
make its task wrong; ``make_env`` warns when one is passed.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import gymnasium
import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from mbrlax.envs.cartpole_swingup import CARTPOLE_SWINGUP_ID
from mbrlax.envs.task import Task
from mbrlax.envs.tasks import TASKS
from mbrlax.envs.wrappers import AppendObservation
from mbrlax.errors import ConfigError

__all__ = [
    "ALIASES",
    "KNOWN_ENVS",
    "KnownEnv",
    "action_bounds",
    "get_task",
    "known_env_ids",
    "make_env",
    "make_vector_env",
    "resolve_env_id",
    "true_next_obs",
]


@dataclass(frozen=True)
class KnownEnv:
    """How ``make_env`` configures one env that has a task."""

    env_id: str
    obs_layout: str  # one line: what each observation entry is
    make_kwargs: Mapping[str, Any] = field(default_factory=dict)  # passed to gymnasium.make
    features: Callable[[gymnasium.Env], np.ndarray] | None = None  # appended to the obs
    feature_names: Sequence[str] = ()


def _ant_torso_xy(env) -> np.ndarray:
    return env.data.xpos[1, :2].copy()  # body 1 = torso = AntEnv's main_body


def _idp_tip_and_velocities(env) -> np.ndarray:
    x, _, z = env.data.site_xpos[0]
    return np.array([x, z, env.data.qvel[1], env.data.qvel[2]])


_WITH_X = {"exclude_current_positions_from_observation": False}

KNOWN_ENVS: dict[str, KnownEnv] = {
    k.env_id: k
    for k in [
        KnownEnv("HalfCheetah-v5", "qpos[0:9] (rootx, rootz, rooty, 6 joints), qvel[9:18]", _WITH_X),
        KnownEnv("Hopper-v5", "qpos[0:6] (rootx, rootz, rooty, thigh, leg, foot), clip(qvel,-10,10)[6:12]", _WITH_X),
        KnownEnv("Walker2d-v5", "qpos[0:9] (rootx, rootz, rooty, 6 joints), clip(qvel,-10,10)[9:18]", _WITH_X),
        KnownEnv(
            "Ant-v5",
            "qpos[0:15] (torso xyz, quat wxyz, 8 joints), qvel[15:29], clip(cfrc_ext[1:],-1,1)[29:107], "
            "torso xpos xy after mj_step[107:109]",
            {**_WITH_X, "include_cfrc_ext_in_observation": True},
            _ant_torso_xy,
            ("torso_xpos_x", "torso_xpos_y"),
        ),
        KnownEnv("InvertedPendulum-v5", "[cart x, pole angle, cart x_dot, pole angle_dot]"),
        KnownEnv(
            "InvertedDoublePendulum-v5",
            "[cart x, sin q1, sin q2, cos q1, cos q2, clip(qvel,-10,10) x3, clip(qfrc_constraint[0],-10,10), "
            "tip x, tip z, q1_dot, q2_dot]",
            {},
            _idp_tip_and_velocities,
            ("tip_x", "tip_z", "hinge_velocity", "hinge2_velocity"),
        ),
        KnownEnv("Reacher-v5", "[cos q1, cos q2, sin q1, sin q2, target xy, q1_dot, q2_dot, (fingertip - target) xy]"),
        KnownEnv("Pusher-v5", "qpos[0:7], qvel[7:14], tips_arm xyz[14:17], object xyz[17:20], goal xyz[20:23]"),
        KnownEnv("Pendulum-v1", "[cos th, sin th, th_dot] (float32)"),
        KnownEnv("MountainCarContinuous-v0", "[position, velocity] (float32)"),
        KnownEnv(CARTPOLE_SWINGUP_ID, "[cart x, pole angle (0 = up, pi = down), x_dot, angle_dot]"),
    ]
}

_SHORT_NAMES = {
    "halfcheetah": "HalfCheetah-v5",
    "cheetah": "HalfCheetah-v5",
    "hopper": "Hopper-v5",
    "walker2d": "Walker2d-v5",
    "walker": "Walker2d-v5",
    "ant": "Ant-v5",
    "invertedpendulum": "InvertedPendulum-v5",
    "inverteddoublependulum": "InvertedDoublePendulum-v5",
    "reacher": "Reacher-v5",
    "pusher": "Pusher-v5",
    "pendulum": "Pendulum-v1",
    "mountaincarcontinuous": "MountainCarContinuous-v0",
    "cartpoleswingup": CARTPOLE_SWINGUP_ID,
}
ALIASES: dict[str, str] = {
    **_SHORT_NAMES,
    "cartpole-swingup": CARTPOLE_SWINGUP_ID,
    "half-cheetah": "HalfCheetah-v5",
    "inverted-pendulum": "InvertedPendulum-v5",
    "inverted-double-pendulum": "InvertedDoublePendulum-v5",
    "mountain-car-continuous": "MountainCarContinuous-v0",
}
"""Short names -> canonical ids. Matching ignores case, '-', '_' and spaces."""

# make_env keyword arguments that do not change what a task reads.
_PRESENTATION_KWARGS = frozenset(
    {"width", "height", "camera_id", "camera_name", "default_camera_config", "max_geom", "visual_options",
     "max_episode_steps", "disable_env_checker"}
)


# Gymnasium envs that render with pygame rather than MuJoCo.
_PYGAME_RENDERED = ("gymnasium.envs.classic_control", "gymnasium.envs.box2d", "gymnasium.envs.toy_text")


def _squash(name: str) -> str:
    return "".join(c for c in name.lower() if c not in "-_ ")


def _import_env_module(env_id: str) -> str:
    """Gymnasium's ``module:Id``: import ``module`` (which registers ``Id``) and return ``Id``.

    Raises ConfigError naming the module, in one line, when it cannot be imported.
    """
    module, _, rest = env_id.partition(":")
    module, rest = module.strip(), rest.strip()
    if not module or not rest:
        raise ConfigError(f"environment id {env_id!r}: expected 'module:Id' (e.g. 'my_envs:MyEnv-v0')")
    try:
        importlib.import_module(module)
    except Exception as e:  # noqa: BLE001  (any error inside the user's module: name it, in one line)
        why = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(f"environment id {env_id!r}: cannot import module {module!r} "
                          f"({type(e).__name__}{': ' + why if why else ''}); is its folder on PYTHONPATH?") from e
    if rest not in gymnasium.registry and all(k.lower() != rest.lower() for k in gymnasium.registry):
        raise ConfigError(f"environment id {env_id!r}: module {module!r} was imported but registers no "
                          f"environment {rest!r} (call gymnasium.register(id={rest!r}, ...) when it is imported)")
    return rest


def resolve_env_id(env_id: str) -> str:
    """Canonical Gymnasium id of ``env_id`` (an id, an alias, an id in the wrong case, or
    Gymnasium's ``module:Id``, which imports ``module`` so that it registers ``Id``).

    Raises ConfigError for an id Gymnasium does not know, listing the closest known ids, and for
    a ``module:Id`` whose module cannot be imported or does not register ``Id``.
    """
    if not isinstance(env_id, str) or not env_id.strip():
        raise ConfigError(f"environment id must be a non-empty string, got {env_id!r}")
    env_id = env_id.strip()
    if ":" in env_id and env_id not in gymnasium.registry:
        env_id = _import_env_module(env_id)
    registry = gymnasium.registry
    if env_id in registry:
        return env_id
    squashed = _squash(env_id)
    aliases = {_squash(a): target for a, target in ALIASES.items()}
    if squashed in aliases:
        return aliases[squashed]
    same_but_case = [k for k in registry if k.lower() == env_id.lower()]
    if len(same_but_case) == 1:
        return same_but_case[0]
    names = {k.lower(): k for k in registry}
    names.update({a.lower(): a for a in ALIASES})
    close = difflib.get_close_matches(env_id.lower(), list(names), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(names[c]) for c in close)}?" if close else ""
    raise ConfigError(
        f"unknown environment id {env_id!r}{hint} (envs with a known task: {', '.join(known_env_ids())})"
    )


def known_env_ids() -> list[str]:
    """Canonical ids of the envs that have a Task (reward and termination in JAX)."""
    return sorted(TASKS)


def get_task(env_id: str) -> Task | None:
    """The Task of ``env_id`` (id or alias), or None if it has none (use a learned reward then).

    The task matches the observation layout of ``make_env(env_id)``.
    Raises ConfigError for an id Gymnasium does not know.
    """
    return TASKS.get(resolve_env_id(env_id))


def action_bounds(env: gymnasium.Env | gymnasium.Space) -> tuple[np.ndarray, np.ndarray]:
    """``(low[A], high[A])`` float32 bounds of a 1-D, bounded Box action space (env or space).

    Raises ConfigError if the space is not a Box, not 1-D, or has a non-finite bound.
    """
    space = env.action_space if hasattr(env, "action_space") else env
    if not isinstance(space, Box):
        raise ConfigError(f"mbrlax needs a continuous (Box) action space, got {space}")
    if len(space.shape) != 1:
        raise ConfigError(f"mbrlax needs a 1-D Box action space, got shape {space.shape}")
    low = np.asarray(space.low, dtype=np.float32).copy()
    high = np.asarray(space.high, dtype=np.float32).copy()
    bad = np.flatnonzero(~(np.isfinite(low) & np.isfinite(high)))
    if bad.size:
        raise ConfigError(
            f"action space {space} is unbounded in dimension(s) {bad.tolist()}; planners and SAC need "
            "finite bounds (wrap the env, e.g. gymnasium.wrappers.ClipAction after setting bounds)"
        )
    return low, high


def _speed_up_rendering(env: gymnasium.Env) -> None:
    """Turn off shadows and reflections of a MuJoCo env (about 7x faster offscreen on CPU)."""
    model = getattr(env.unwrapped, "model", None)
    if model is not None and hasattr(model, "light_castshadow"):
        model.light_castshadow[:] = 0
        model.mat_reflectance[:] = 0


def _may_render(env_id: str, render_mode: str) -> bool:
    """False if ``env_id``'s class declares its render modes (``metadata["render_modes"]``) and
    ``render_mode`` is not among them; True otherwise (then only making the env tells)."""
    try:
        creator = gymnasium.spec(env_id).entry_point
        if isinstance(creator, str):
            creator = gymnasium.envs.registration.load_env_creator(creator)
        modes = getattr(creator, "metadata", {}).get("render_modes")
    except Exception:  # noqa: BLE001  (an odd entry point: let gymnasium.make decide)
        return True
    return not isinstance(modes, (list, tuple, set)) or render_mode in modes


def make_env(
    env_id: str,
    seed: int | None = None,
    render_mode: str | None = None,
    *,
    fast_render: bool = True,
    render_optional: bool = False,
    **kwargs: Any,
) -> gymnasium.Env:
    """Make a Gymnasium env, configured for its mbrlax task if it has one.

    Args:
        env_id: a Gymnasium id (``"HalfCheetah-v5"``), an alias (``"halfcheetah"``,
            ``"cartpole-swingup"``), or an id in another case.
        seed: if given, seeds the env's RNG (one ``reset(seed=seed)``; later ``reset()`` calls
            continue that stream) and its action and observation spaces.
        render_mode: e.g. ``"rgb_array"`` (offscreen; MuJoCo envs use ``MUJOCO_GL``, which
            ``mbrlax.envs`` defaults to ``egl`` on headless Linux).
        fast_render: turn off shadows and reflections of MuJoCo envs when rendering.
        render_optional: if the env's constructor takes no ``render_mode`` (common in users'
            own envs), make it without one rather than fail: the caller checks
            ``env.render_mode`` (None then) and goes on without frames.
        **kwargs: passed to ``gymnasium.make`` (they override mbrlax's settings; ones that
            change a known env's reward or observation trigger a warning).

    Raises ConfigError for an unknown id, bad keyword arguments, a missing optional
    dependency, or a non-Box action space.
    """
    canonical = resolve_env_id(env_id)
    known = KNOWN_ENVS.get(canonical)
    make_kwargs = dict(known.make_kwargs) if known else {}
    if known:
        risky = sorted(k for k in kwargs if k not in _PRESENTATION_KWARGS and make_kwargs.get(k, object()) != kwargs[k])
        if risky:
            warnings.warn(
                f"make_env({canonical!r}): {', '.join(risky)} may change the reward or observation, "
                "so get_task() may no longer match this env",
                stacklevel=2,
            )
    make_kwargs.update(kwargs)
    if render_optional and render_mode is not None and not _may_render(canonical, render_mode):
        render_mode = None
    if render_mode is not None:
        make_kwargs["render_mode"] = render_mode
    try:
        try:
            env = gymnasium.make(canonical, **make_kwargs)
        except TypeError as e:
            if not (render_optional and "render_mode" in make_kwargs and "'render_mode'" in str(e)):
                raise
            del make_kwargs["render_mode"]
            render_mode = None
            env = gymnasium.make(canonical, **make_kwargs)
    except gymnasium.error.DependencyNotInstalled as e:
        raise ConfigError(f"environment {canonical!r} needs a package that is not installed: {e}") from e
    except TypeError as e:
        raise ConfigError(f"bad keyword argument for environment {canonical!r}: {e}") from e
    if not isinstance(env.action_space, Box):
        space = env.action_space
        env.close()
        raise ConfigError(
            f"environment {canonical!r} has a {type(space).__name__} action space ({space}); "
            "mbrlax needs a continuous Box action space"
        )
    if render_mode is not None and render_mode != "human":
        module = type(env.unwrapped).__module__
        if module.startswith(_PYGAME_RENDERED) and importlib.util.find_spec("pygame") is None:
            env.close()
            raise ConfigError(
                f"rendering {canonical!r} needs pygame, which is not installed: "
                'pip install "gymnasium[classic_control]"'
            )
    if known is not None and known.features is not None:
        env = AppendObservation(env, known.features, known.feature_names)
    if render_mode is not None and fast_render:
        _speed_up_rendering(env)
    if seed is not None:
        env.reset(seed=int(seed))
        env.action_space.seed(int(seed))
        env.observation_space.seed(int(seed))
    return env


def make_vector_env(env_id: str, num_envs: int, seed: int | None = None, **kwargs: Any) -> SyncVectorEnv:
    """``num_envs`` copies of ``make_env(env_id, seed + i, **kwargs)`` in a SyncVectorEnv.

    Autoreset mode is ``SAME_STEP``: when sub-env ``i`` terminates or truncates, ``step``
    returns its *reset* observation in ``obs[i]`` and the true final observation in
    ``info["final_obs"][i]``; ``true_next_obs`` assembles the ``s'`` of every transition.
    Rewards, terminations and truncations are those of the final step. Sub-env ``i`` is
    seeded with ``seed + i``; the vector action space with ``seed``.
    """
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}")
    canonical = resolve_env_id(env_id)

    def thunk(i: int) -> Callable[[], gymnasium.Env]:
        return lambda: make_env(canonical, None if seed is None else int(seed) + i, **kwargs)

    venv = SyncVectorEnv([thunk(i) for i in range(int(num_envs))], autoreset_mode=AutoresetMode.SAME_STEP)
    if seed is not None:
        venv.action_space.seed(int(seed))
    return venv


def true_next_obs(next_obs: np.ndarray, terminated: np.ndarray, truncated: np.ndarray, info: dict) -> np.ndarray:
    """``s'[N, D]`` of a SAME_STEP vector step: ``info["final_obs"][i]`` where sub-env i ended, else ``next_obs[i]``."""
    out = np.array(next_obs, copy=True)
    done = np.flatnonzero(np.logical_or(terminated, truncated))
    if done.size:
        finals = info["final_obs"]
        for i in done:
            out[i] = finals[i]
    return out
