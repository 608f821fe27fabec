"""The lecture's small environments: a point-mass maze and a cliff, with their tasks.

Importing :mod:`mbrlax.envs` registers both with Gymnasium, adds their tasks to ``TASKS`` and
short aliases (``"pointmaze"``, ``"cliff"``). Both are tiny, pure NumPy and fast; their
dynamics are written once, batched (``maze_step``, ``cliff_step``), so demos can evaluate the
true dynamics on a whole grid of states at once.

``mbrlax/PointMaze-v0`` (alias ``pointmaze``) — coverage and model fidelity
    A point in a ``10 x 7`` box with wall cells (``MAZE_LAYOUT``). A wall at ``x in [4, 5)``
    splits a *start room* (``x < 4``) from the rest; one door cell at ``(4, 3)`` joins them.
    The two parts have different floors: in the start room the point moves where it is
    pushed; beyond the wall the floor is *twisted* and turns every push by 90 degrees to the
    left (the twist grows linearly across the door, ``twist_angle``). The twist is part of the
    dynamics, not of the task: only a model that has data from beyond the wall knows it.

    - Observation ``[x, y, goal_x, goal_y]`` (float32): the goal rides in the observation so
      the task's reward is a function of ``(obs, action, next_obs)``; the task's
      ``obs_features`` hand a model only ``(x, y)``.
    - Action: a velocity command in ``[-1, 1]^2``; the point moves ``STEP_SIZE * R(twist) a``
      per step in ``SUBSTEPS`` sub-moves; in each, x then y advance unless that would bring
      the point within ``WALL_GAP`` of a wall cell or of the outer box (so it slides along
      walls, and float32 rounding never puts it inside one).
    - Reward ``-||p' - goal|| - 0.01 ||a||^2``; never terminates; truncated after 50 steps;
      ``info["success"]`` is ``||p' - goal|| < GOAL_RADIUS``.
    - Reset: start uniform over the free space of the start room (``start_region="all"``: of
      the whole maze) and goal uniform over free space, unless ``options={"start": (x, y),
      "goal": (x, y)}`` fixes them.

``mbrlax/Cliff-v0`` (alias ``cliff``) — distribution mismatch
    A cart on a track ``x >= 0``; the track ends at ``EDGE = 5``. The last 1.5 m before the
    edge, ``[SLOPE_START, EDGE) = [3.5, 5)``, slope down towards the edge; the slope steepens
    over its first ``SLOPE_RAMP = 0.5`` m and is then steeper than the cart can brake against:
    past ``NO_RETURN = 3.7`` the cart slides over the edge whatever it does.

    - Observation ``[x, v]`` (float32); action: force in ``[-1, 1]``.
    - Dynamics (semi-implicit Euler, ``dt = 0.1``): ``v' = v + dt (2 a - v + 5 s(x))`` with
      ``s(x) = clip((x - 3.5) / 0.5, 0, 1)`` on the track (the slope's steepness),
      ``x' = x + dt v'``; at ``x' < 0`` the cart stops at 0.
    - Reward ``x' / EDGE - 0.01 a^2`` (the further right the better) while ``x' < EDGE``;
      going over the edge (``x' >= EDGE``) earns ``FALL_PENALTY = -50`` and terminates.
      Truncated after 60 steps.
    - Reset: ``x ~ U(0, 0.5)``, ``v = 0``; ``options={"x": .., "v": ..}`` fixes them.

    The task knows the fall (a region of ``next_obs``) but not the slope: a model fitted on data
    that never reached the slope extrapolates flat ground and plans to stop right at the edge.
"""

from __future__ import annotations

import gymnasium
import jax.numpy as jnp
import numpy as np
from gymnasium.spaces import Box

from mbrlax.envs.registry import ALIASES
from mbrlax.envs.task import Task, never_terminates, unit_bounds
from mbrlax.envs.tasks import TASKS

__all__ = [
    "CLIFF_ID", "CliffEnv", "EDGE", "FALL_PENALTY", "GOAL_RADIUS", "MAZE_ID", "MAZE_LAYOUT",
    "MAZE_SIZE", "PointMazeEnv", "NO_RETURN", "SLOPE_START", "START_ROOM_X", "cliff_step", "free_mask",
    "in_start_room", "twist_angle", "maze_step", "maze_walls", "random_free_points",
]

MAZE_ID = "mbrlax/PointMaze-v0"
CLIFF_ID = "mbrlax/Cliff-v0"
CTRL_COST = 0.01

# --------------------------------------------------------------------------- PointMaze
# Rows from top (y = 6) to bottom (y = 0); '#' is a wall cell [i, i+1) x [j, j+1).
MAZE_LAYOUT = (
    "....#.....",
    "....#.....",
    "....#..#..",
    ".......#..",
    "....#..#..",
    "....#.....",
    "....#.....",
)
MAZE_SIZE = (10.0, 7.0)  # (width, height)
START_ROOM_X = 4.0  # the start room is x < 4 (left of the dividing wall)
TWIST = np.pi / 2  # how far the floor beyond the wall turns a push (to the left)
STEP_SIZE = 0.3
SUBSTEPS = 6
WALL_GAP = 1e-3
GOAL_RADIUS = 0.4
MAZE_STEPS = 50


def maze_walls() -> np.ndarray:
    """``walls[ny, nx]`` bool, ``walls[j, i]`` true if cell ``[i, i+1) x [j, j+1)`` is a wall."""
    return np.array([[c == "#" for c in row] for row in reversed(MAZE_LAYOUT)], bool)


_WALLS = maze_walls()


def free_mask(points: np.ndarray) -> np.ndarray:
    """``points[..., 2] -> [...]`` bool: inside the box and not in a wall cell."""
    p = np.asarray(points, np.float64)
    W, H = MAZE_SIZE
    inside = (p[..., 0] >= 0) & (p[..., 0] < W) & (p[..., 1] >= 0) & (p[..., 1] < H)
    i = np.clip(np.floor(p[..., 0]).astype(int), 0, _WALLS.shape[1] - 1)
    j = np.clip(np.floor(p[..., 1]).astype(int), 0, _WALLS.shape[0] - 1)
    return inside & ~_WALLS[j, i]


def twist_angle(points: np.ndarray) -> np.ndarray:
    """``points[..., 2] -> [...]``: how far the floor turns a push (0 in the start room, ``TWIST`` beyond x = 5)."""
    return TWIST * np.clip(np.asarray(points, np.float64)[..., 0] - START_ROOM_X, 0.0, 1.0)


def in_start_room(points: np.ndarray) -> np.ndarray:
    """``points[..., 2] -> [...]`` bool: in the start room (left of the dividing wall)."""
    return np.asarray(points)[..., 0] < START_ROOM_X


def random_free_points(rng: np.random.Generator, n: int, x_range: tuple[float, float] = (0.0, MAZE_SIZE[0]),
                       margin: float = 0.15) -> np.ndarray:
    """``[n, 2]`` points uniform over free space with ``x`` in ``x_range``, at least ``margin`` from walls."""
    out = np.zeros((0, 2))
    W, H = MAZE_SIZE
    while len(out) < n:
        p = np.stack([rng.uniform(*x_range, 4 * n), rng.uniform(margin, H - margin, 4 * n)], axis=1)
        ok = free_mask(p)
        for dx in (-margin, margin):
            for dy in (-margin, margin):
                ok &= free_mask(p + np.array([dx, dy]))
        out = np.concatenate([out, p[ok]])
    return out[:n]


def maze_step(pos: np.ndarray, action: np.ndarray) -> np.ndarray:
    """True maze dynamics, batched: ``pos[..., 2]``, ``action[..., 2]`` -> next position ``[..., 2]``.

    The move ``STEP_SIZE * R(twist_angle(p)) clip(a, -1, 1)`` is made in ``SUBSTEPS`` equal
    sub-moves (the twist taken where each starts); in each, x then y advance unless that would
    bring the point within ``WALL_GAP`` of a wall cell or the box (so the point slides).
    """
    pos = np.array(pos, np.float64, copy=True)
    a = np.broadcast_to(np.clip(np.asarray(action, np.float64), -1.0, 1.0), pos.shape)
    for _ in range(SUBSTEPS):
        th = twist_angle(pos)
        c, s = np.cos(th), np.sin(th)
        delta = (STEP_SIZE / SUBSTEPS) * np.stack([c * a[..., 0] - s * a[..., 1], s * a[..., 0] + c * a[..., 1]], -1)
        for axis in (0, 1):
            trial = pos.copy()
            trial[..., axis] += delta[..., axis]
            probe = trial.copy()
            probe[..., axis] += np.sign(delta[..., axis]) * WALL_GAP
            ok = free_mask(trial) & free_mask(probe)
            pos[..., axis] = np.where(ok, trial[..., axis], pos[..., axis])
    return pos


class PointMazeEnv(gymnasium.Env):
    """Point-mass maze; see the module docstring for spaces, dynamics, reward and reset."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, start_region: str = "room"):
        if start_region not in ("room", "all"):
            raise ValueError(f"start_region must be 'room' or 'all', got {start_region!r}")
        self.start_region = start_region
        W, H = MAZE_SIZE
        self.observation_space = Box(np.zeros(4, np.float32), np.array([W, H, W, H], np.float32), dtype=np.float32)
        self.action_space = Box(-1.0, 1.0, (2,), np.float32)
        self.render_mode = render_mode
        self._pos = np.zeros(2)
        self._goal = np.zeros(2)

    def _obs(self) -> np.ndarray:
        return np.concatenate([self._pos, self._goal]).astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        options = options or {}
        if "start" in options:
            self._pos = np.asarray(options["start"], np.float64)
        else:
            x_range = (0.0, START_ROOM_X) if self.start_region == "room" else (0.0, MAZE_SIZE[0])
            self._pos = random_free_points(self.np_random, 1, x_range)[0]
        if "goal" in options:
            self._goal = np.asarray(options["goal"], np.float64)
        else:
            self._goal = random_free_points(self.np_random, 1)[0]
        if not free_mask(self._pos):
            raise ValueError(f"start {self._pos} is not in free space")
        # keep the state exactly what the float32 observation says, so the task matches env.step
        self._pos, self._goal = (self._obs()[:2].astype(np.float64), self._obs()[2:].astype(np.float64))
        return self._obs(), {}

    def step(self, action):
        action = np.asarray(action, np.float32)
        self._pos = maze_step(self._pos, action).astype(np.float32).astype(np.float64)
        dist = float(np.linalg.norm(self._pos - self._goal))
        reward = -dist - CTRL_COST * float(np.sum(np.square(action, dtype=np.float64)))
        return self._obs(), reward, False, False, {"distance": dist, "success": dist < GOAL_RADIUS}

    def render(self):
        px = 20
        H = MAZE_SIZE[1]
        img = np.full((*_WALLS.shape, 3), 235, np.uint8)
        img[:, int(START_ROOM_X) + 1:] = (215, 225, 245)  # the twisted floor
        img[_WALLS] = 60
        img = np.repeat(np.repeat(img[::-1], px, 0), px, 1)
        for p, color in ((self._goal, (40, 170, 40)), (self._pos, (200, 40, 40))):
            c, r = int(p[0] * px), int((H - p[1]) * px)
            img[max(r - 4, 0):r + 4, max(c - 4, 0):c + 4] = color
        return img


def _safe_norm(x: jnp.ndarray) -> jnp.ndarray:
    sq = jnp.sum(jnp.square(x), axis=-1)
    pos = sq > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, sq, 1.0)), 0.0)


def maze_reward(obs, action, next_obs):
    """``-||next_obs[:2] - next_obs[2:4]|| - 0.01 ||a||^2`` (distance to the goal after the step)."""
    return -_safe_norm(next_obs[..., :2] - next_obs[..., 2:4]) - CTRL_COST * jnp.sum(jnp.square(action), axis=-1)


def maze_features(obs):
    """Model input: the position only (the goal does not change the dynamics)."""
    return obs[..., :2]


# --------------------------------------------------------------------------- Cliff
EDGE = 5.0
SLOPE_START = 3.5
SLOPE_RAMP = 0.5
SLOPE_ACCEL = 5.0
FORCE = 2.0
NO_RETURN = SLOPE_START + SLOPE_RAMP * FORCE / SLOPE_ACCEL  # 3.7: here the slope outpulls full braking
FRICTION = 1.0
CLIFF_DT = 0.1
FALL_PENALTY = -50.0
CLIFF_STEPS = 60


def cliff_step(x: np.ndarray, v: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True cliff dynamics, batched over any shape: ``(x, v, a) -> (x', v')``."""
    x, v = np.asarray(x, np.float64), np.asarray(v, np.float64)
    a = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    slope = SLOPE_ACCEL * np.clip((x - SLOPE_START) / SLOPE_RAMP, 0.0, 1.0) * (x < EDGE)
    v2 = v + CLIFF_DT * (FORCE * a - FRICTION * v + slope)
    x2 = x + CLIFF_DT * v2
    stopped = x2 < 0.0
    return np.where(stopped, 0.0, x2), np.where(stopped, 0.0, v2)


class CliffEnv(gymnasium.Env):
    """A cart that earns reward for being far right, before a slope and an edge; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None):
        self.observation_space = Box(np.array([0.0, -np.inf], np.float32), np.array([np.inf, np.inf], np.float32),
                                     dtype=np.float32)
        self.action_space = Box(-1.0, 1.0, (1,), np.float32)
        self.render_mode = render_mode
        self._state = np.zeros(2, np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        options = options or {}
        x = float(options["x"]) if "x" in options else float(self.np_random.uniform(0.0, 0.5))
        v = float(options.get("v", 0.0))
        self._state = np.array([x, v], np.float32)
        return self._state.copy(), {}

    def step(self, action):
        a = np.asarray(action, np.float32).reshape(1)
        x2, v2 = cliff_step(self._state[0], self._state[1], a[0])
        self._state = np.array([x2, v2], np.float32)
        fell = bool(self._state[0] >= EDGE)
        ctrl = CTRL_COST * float(np.square(a[0], dtype=np.float64))
        reward = FALL_PENALTY if fell else float(self._state[0]) / EDGE - ctrl
        return self._state.copy(), reward, fell, False, {"fell": fell}

    def render(self):
        px, h = 40, 60
        img = np.full((h, int((EDGE + 1) * px), 3), 235, np.uint8)
        img[h // 2:, : int(SLOPE_START * px)] = 90
        img[h // 2:, int(SLOPE_START * px): int(EDGE * px)] = (150, 110, 60)
        c = int(min(self._state[0], EDGE + 0.9) * px)
        img[h // 2 - 10:h // 2, max(c - 6, 0):c + 6] = (200, 40, 40)
        return img


def cliff_termination(obs, action, next_obs):
    """Over the edge: ``next_obs[0] >= EDGE``."""
    return next_obs[..., 0] >= EDGE


def cliff_reward(obs, action, next_obs):
    """``x' / EDGE - 0.01 a^2`` on the track; ``FALL_PENALTY`` once over the edge."""
    on_track = next_obs[..., 0] / EDGE - CTRL_COST * jnp.sum(jnp.square(action), axis=-1)
    return jnp.where(cliff_termination(obs, action, next_obs), FALL_PENALTY, on_track)


# --------------------------------------------------------------------------- registration


def _register() -> None:
    for env_id, entry, steps in ((MAZE_ID, "PointMazeEnv", MAZE_STEPS), (CLIFF_ID, "CliffEnv", CLIFF_STEPS)):
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=f"mbrlax.envs.lessons:{entry}", max_episode_steps=steps)
    TASKS.update({
        MAZE_ID: Task(MAZE_ID, 4, 2, *unit_bounds(2), maze_reward, never_terminates, MAZE_STEPS,
                      obs_features=maze_features, feature_dim=2),
        CLIFF_ID: Task(CLIFF_ID, 2, 1, *unit_bounds(1), cliff_reward, cliff_termination, CLIFF_STEPS),
    })
    ALIASES.update({"pointmaze": MAZE_ID, "point-maze": MAZE_ID, "maze": MAZE_ID, "cliff": CLIFF_ID})


_register()
