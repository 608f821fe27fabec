"""PDDM's Shadow hand tasks: Baoding balls and in-hand cube reorientation.

Nagabandi, Konolige, Levine, Kumar 2020, "Deep Dynamics Models for Learning Dexterous
Manipulation" (PDDM), on a 24-DoF Shadow hand; the numbers below are those of its reference code
(``google-research/pddm``: ``pddm/envs/baoding/baoding_env.py``, ``pddm/envs/cube/cube_env.py``,
``pddm/envs/robot.py``, ``pddm/config/{baoding,cube}.txt``).

Registered when :mod:`mbrlax.envs` is imported, with their tasks (``TASKS``) and aliases:

- ``mbrlax/Baoding-v0`` (alias ``"baoding"``): two balls in the palm; their targets go round an
  ellipse in the palm, at opposite points, once every 60 steps (6 s). 100-step episodes.
- ``mbrlax/HandCube-v0`` (alias ``"hand-cube"``): a cube in the palm to be turned to a goal
  orientation, one of PDDM's four (±1.5 rad about the world x or z axis). 70-step episodes.

**The hand.** Its model files come from the installed ``gymnasium-robotics`` package (its
``envs/assets/hand``: the 24-joint Shadow hand with 20 position actuators, the distal joints J0
coupled to J1 by tendons, and its meshes); ``assets/shadow_hand_{baoding,cube}.xml`` hold our scenes
and include them by path at load time. We do not use gymnasium-robotics' environment code (with
MuJoCo 4 its Shadow hand envs fail at reset, in ``mujoco_utils.get_joint_qpos``), only the files,
so any MuJoCo that loads them works. PDDM's own hand is the same model family (same joints, ranges
and tendons) but drives all 24 joints with position actuators (the J0 actuators fight the coupling
tendons); here the action is gymnasium-robotics' 20 actuators, so ``A = 20`` where PDDM has 24.

**Control, as PDDM's.** One step is 40 substeps of 0.0025 s (0.1 s). The action ``a in [-1, 1]^20``
is a joint-position target around the start pose ``q_mid``: ``q_mid + a * s * (high - q_mid)`` for
``a > 0`` and ``q_mid + a * s * (q_mid - low)`` otherwise, ``s = 0.9`` for Baoding and 1 for the cube;
the target is then held within ``3 rad/s * 0.1 s`` of the joint's current position (PDDM's
``Robot`` velocity bound). The start pose is PDDM's keyframe for that task (clipped to this model's
joint ranges), settled for 2 s with the object(s) in the palm once at construction; every reset
starts there (plus ``reset_noise_scale`` uniform noise on the hand joints, 0 by default as in PDDM).

**Observations.** The hand's 24 joint positions (no joint velocities: PDDM's observation has none),
then the objects, then the goal,
so reward and termination are functions of ``next_obs`` (see ``BAODING_OBS_LAYOUT``,
``CUBE_OBS_LAYOUT``).

**Baoding reward** (``baoding_env.py``, ``get_reward``), from ``next_obs``:
``-5 ||ball1_xy - target1_xy|| - 5 ||ball2_xy - target2_xy|| - 500 * dropped - 10 * [WRJ0 > 0.15]``;
``dropped``: either ball's centre below 0.06 m (the floor is at 0; the balls rest 0.17-0.20 m up,
PDDM's start at 0.19 m), which also terminates the episode. The targets are PDDM's: in the palm frame,
``(x, z) = (0.005 + 0.02 cos th, 0.055 + 0.036 sin th)``, 0.07 m above the palm, with ``th`` the
step count times ``2 pi / 60`` plus 3 pi/4 (ball 1) or -pi/4 (ball 2) (``BAODING_CCW``, "continuous
circle" option); the observation holds their world ``(x, y)`` after the step. Differences: the
target in ``next_obs`` of step ``t`` (from 0) is phase ``t + 1``, PDDM's is phase ``t`` (it sets
the target before simulating), and a reset's observation shows phase 0.

**Cube reward** (``cube_env.py``): ``-7 * angle(q, q_goal) - 1000 * dropped``, ``dropped``: the
cube's centre 0.1 m below its resting height (PDDM: ``OBJTz < -0.1``), which terminates. Variant:
PDDM's cube sits on three slide and three hinge joints and its reward is the Euclidean distance
between the hinge angles and the goal's; ours is on a free joint (as gymnasium-robotics' block),
the orientation is a quaternion and ``angle`` is the geodesic angle ``2 atan2(|v|, |w|)`` of
``conj(q_goal) q``, which equals PDDM's distance along the goal's axis (PDDM's goals are
rotations about one axis) and, unlike Euler angles, is defined for every orientation. The goal is
PDDM's ``goal_options = [left, right, up, down]``, drawn at reset and held for the episode
(PDDM: ``same_goals = True``). Among gymnasium-robotics' block tasks this is a "rotate XYZ" task
restricted to PDDM's goals, with no position goal (PDDM's code can also alternate between two
different goals every 35 steps; its default, kept here, is one goal per episode). PDDM's cube has
rounded edges; ours is a 0.03 m box of PDDM's mass.

**Success** (``baoding_success``, ``cube_success``; each task's ``Task.success_fn``, which the MPC
loop and SAC's evaluation log as ``success``, the fraction of an episode's steps that pass): PDDM's
code reports only a score, so the tolerances are ours. Baoding: both balls' ``xy`` within 0.02 m
of their targets and no drop; cube: within 0.1 rad of the goal orientation (gymnasium-robotics'
block threshold) and no drop.
"""

from __future__ import annotations

import importlib.util
import os

import gymnasium
import jax.numpy as jnp
import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box

from mbrlax.envs.registry import ALIASES, KNOWN_ENVS, KnownEnv
from mbrlax.envs.task import Task, unit_bounds
from mbrlax.envs.tasks import TASKS

__all__ = [
    "BAODING_ID", "BAODING_OBS_LAYOUT", "BaodingEnv", "CUBE_GOALS", "CUBE_OBS_LAYOUT", "HAND_CUBE_ID",
    "HandCubeEnv", "baoding_reward", "baoding_success", "baoding_termination", "cube_reward", "cube_success",
    "cube_termination", "hand_assets_dir", "quat_angle",
]

BAODING_ID = "mbrlax/Baoding-v0"
HAND_CUBE_ID = "mbrlax/HandCube-v0"
BAODING_STEPS = 100  # pddm/config/baoding.txt: rollout_length
CUBE_STEPS = 70  # pddm/config/cube.txt: rollout_length

HAND_NQ = 24  # hand joints (qpos[0:24]); all the object joints come after them
FRAME_SKIP = 40  # PDDM: frame_skip=40 at timestep 0.0025 -> 0.1 s a step
MAX_JOINT_SPEED = 3.0  # rad/s; PDDM Robot vel_bounds [-3, 3]
SETTLE_STEPS = 20  # env steps (2 s) of holding the start pose at construction

# --- Baoding (pddm/envs/baoding/baoding_env.py)
BAODING_PERIOD = 60  # steps per revolution of the targets (create_goal_trajectory: period = 60)
BAODING_RADII = (0.02, 0.02 * 1.5 * 1.2)  # x_radius, y_radius (palm x, palm z)
BAODING_CENTER = (0.005, 0.055)  # center_pos (palm x, palm z)
BAODING_TARGET_LIFT = -0.07  # site_pos[..., 1] = -0.07: palm -y is the palm's normal
BAODING_START_ANGLES = (3 * np.pi / 4, -np.pi / 4)  # ball_1_starting_angle, ball_2_starting_angle
BAODING_DIST_WEIGHT = 5.0
BAODING_DROP_HEIGHT = 0.06  # height_threshold
BAODING_DROP_PENALTY = -500.0
BAODING_WRIST_LIMIT = 0.15  # wrist_threshold on obs[1] (WRJ0)
BAODING_WRIST_PENALTY = -10.0
BAODING_SUCCESS_TOL = 0.02  # m; ours (PDDM's code has no success test): see baoding_success
BAODING_ACTION_SCALE = 0.9  # upper_rng = 0.9 * (ctrl_high - act_mid)
# shadowhand_baoding_2.xml keyframe, hand part (WRJ1, WRJ0, FFJ3..0, MFJ3..0, RFJ3..0, LFJ4..0, THJ4..0)
BAODING_KEY = (0.0126, -0.398, 0.379, 0.0564, 1.167, 0.0407, 0.265, -0.136, 1.144, 0.045, 0.074, 0.139, 1.112,
               0.234, -0.022, -0.368, -0.000, 1.25, 0.152, -0.021, 0.374, 0.0939, -0.126, -0.536)
BAODING_OBS_LAYOUT = ("hand qpos[0:24], ball1 xyz[24:27], ball1 velocity[27:30], ball2 xyz[30:33], "
                      "ball2 velocity[33:36], target1 xy[36:38], target2 xy[38:40]")
_B1, _B2, _T1, _T2 = slice(24, 27), slice(30, 33), slice(36, 38), slice(38, 40)
_WRJ0 = 1

# --- Cube (pddm/envs/cube/cube_env.py)
CUBE_ANGLE_WEIGHT = 7.0  # r_total = -7 * angle_diffs + drop_penalty
CUBE_DROP_DEPTH = 0.1  # is_fall: OBJTz < -0.1 (below the start)
CUBE_DROP_PENALTY = -1000.0
CUBE_REST_HEIGHT = 0.224  # measured: the cube's centre after settling in the start pose
CUBE_DROP_HEIGHT = CUBE_REST_HEIGHT - CUBE_DROP_DEPTH
CUBE_SUCCESS_TOL = 0.1  # rad; gymnasium-robotics' block rotation_threshold (PDDM's code has none)
CUBE_GOAL_ANGLE = 1.5  # left/right = [0, 0, -+1.5], up/down = [+-1.5, 0, 0]
# shadowhand_hand_cube.xml keyframe, hand part
CUBE_KEY = (0, 0, 0.31828, 0.212085, 1.06828, 0.45559, 0.16132, 0.1571, 0.699095, 0.61269, -0.03052, 0.10997,
            0.91118, 0.56556, 0.09074, -0.22236, 0.10997, 0.746225, 0.589125, -0.71196, 0.477785, -0.262,
            -0.524, -0.80121)
CUBE_OBS_LAYOUT = ("hand qpos[0:24], cube xyz[24:27], cube quat wxyz[27:31], cube velocity[31:34], "
                   "cube angular velocity (cube frame)[34:37], goal quat wxyz[37:41]")
_CPOS, _CQUAT, _GQUAT = slice(24, 27), slice(27, 31), slice(37, 41)


def _axis_quat(axis: int, angle: float) -> np.ndarray:
    q = np.zeros(4)
    q[0], q[1 + axis] = np.cos(angle / 2), np.sin(angle / 2)
    return q


# PDDM's goal_options = [left, right, up, down]: Euler (x, y, z) = (0, 0, -1.5), (0, 0, 1.5), (1.5, 0, 0), (-1.5, 0, 0)
CUBE_GOALS = np.stack([_axis_quat(2, -CUBE_GOAL_ANGLE), _axis_quat(2, CUBE_GOAL_ANGLE),
                       _axis_quat(0, CUBE_GOAL_ANGLE), _axis_quat(0, -CUBE_GOAL_ANGLE)])
CUBE_GOALS.flags.writeable = False


# --------------------------------------------------------------------------- the model files


def hand_assets_dir() -> str:
    """``<gymnasium_robotics>/envs/assets``, found without importing the package.

    Raises ``gymnasium.error.DependencyNotInstalled`` (``make_env`` turns it into a ConfigError)
    when gymnasium-robotics or its hand model is missing.
    """
    spec = importlib.util.find_spec("gymnasium_robotics")
    root = os.path.join(os.path.dirname(spec.origin), "envs", "assets") if spec and spec.origin else ""
    if not root or not os.path.isfile(os.path.join(root, "hand", "robot.xml")):
        raise gymnasium.error.DependencyNotInstalled(
            "the Shadow hand envs take the hand's model files from gymnasium-robotics: pip install gymnasium-robotics"
        )
    return root


def _load_model(xml_name: str) -> mujoco.MjModel:
    """Our scene ``assets/xml_name`` with the hand's files resolved inside gymnasium-robotics."""
    root = hand_assets_dir()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", xml_name)
    with open(path) as f:
        text = f.read()
    for key, sub in (("__HAND__", "hand"), ("__MESHES__", os.path.join("stls", "hand")), ("__TEXTURES__", "textures")):
        text = text.replace(key, os.path.join(root, sub))
    return mujoco.MjModel.from_xml_string(text)


# --------------------------------------------------------------------------- the environments


def _quat_angle_np(q: np.ndarray, g: np.ndarray) -> float:
    w = float(np.dot(g, q))
    v = g[0] * q[1:] - q[0] * g[1:] - np.cross(g[1:], q[1:])
    return 2.0 * float(np.arctan2(np.linalg.norm(v), abs(w)))


class _ShadowHandEnv(MujocoEnv, utils.EzPickle):
    """The hand, PDDM's action map and velocity bound, and a settled start state; see the module docstring."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 10}
    _xml: str
    _key: tuple
    _action_scale: float
    _obs_dim: int
    _camera: dict

    def __init__(self, reset_noise_scale: float = 0.0, render_mode: str | None = None, width: int = 480,
                 height: int = 480, default_camera_config: dict | None = None, **kwargs):
        utils.EzPickle.__init__(self, reset_noise_scale=reset_noise_scale, render_mode=render_mode, width=width,
                                height=height, default_camera_config=default_camera_config, **kwargs)
        self._reset_noise_scale = float(reset_noise_scale)
        MujocoEnv.__init__(
            self,
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", self._xml),
            FRAME_SKIP,
            observation_space=Box(-np.inf, np.inf, shape=(self._obs_dim,), dtype=np.float64),
            render_mode=render_mode,
            width=width,
            height=height,
            default_camera_config=self._camera if default_camera_config is None else default_camera_config,
            **kwargs,
        )
        m = self.model
        self._act_qpos = m.jnt_qposadr[m.actuator_trnid[:, 0]]  # qpos address of each actuator's joint
        low, high = m.actuator_ctrlrange.T.copy()
        key = np.clip(np.asarray(self._key, dtype=np.float64), *m.jnt_range[:HAND_NQ].T)
        self._act_mid = np.clip(key[self._act_qpos], low, high)
        self._up = self._action_scale * (high - self._act_mid)
        self._down = self._action_scale * (self._act_mid - low)
        self._max_move = MAX_JOINT_SPEED * self.dt
        # Settle once: the start pose held for SETTLE_STEPS with the objects in the palm.
        qpos = self.init_qpos.copy()
        qpos[:HAND_NQ] = key
        self.set_state(qpos, np.zeros(m.nv))
        self._step_mujoco_simulation(self._act_mid, FRAME_SKIP * SETTLE_STEPS)
        self._start_qpos, self._start_qvel = self.data.qpos.copy(), self.data.qvel.copy()
        self._start_warmstart = self.data.qacc_warmstart.copy()  # so a reset's future does not depend on the past

    def _initialize_simulation(self):
        model = _load_model(self._xml)
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
        return model, mujoco.MjData(model)

    def _set_action_space(self):
        self.action_space = Box(-1.0, 1.0, shape=(self.model.nu,), dtype=np.float32)
        return self.action_space

    def _ctrl(self, action) -> np.ndarray:
        """PDDM's map of ``a in [-1, 1]`` to joint-position targets, then its velocity bound."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        target = self._act_mid + np.where(a > 0, a * self._up, a * self._down)
        q = self.data.qpos[self._act_qpos]
        return np.clip(target, q - self._max_move, q + self._max_move)

    def _simulate(self, action) -> None:
        if np.shape(action) != (self.model.nu,):
            raise ValueError(f"Action dimension mismatch. Expected {(self.model.nu,)}, found {np.shape(action)}")
        self._step_mujoco_simulation(self._ctrl(action), self.frame_skip)
        mujoco.mj_kinematics(self.model, self.data)  # poses of the final qpos (mj_step leaves the last stage's)

    def _reset_hand(self) -> None:
        qpos, qvel = self._start_qpos.copy(), self._start_qvel.copy()
        if self._reset_noise_scale > 0:
            s = self._reset_noise_scale
            qpos[:HAND_NQ] += self.np_random.uniform(-s, s, HAND_NQ)
        self.data.qacc_warmstart[:] = self._start_warmstart
        self.set_state(qpos, qvel)


class BaodingEnv(_ShadowHandEnv):
    """PDDM's Baoding balls (counter-clockwise, "continuous circle"); see the module docstring."""

    _xml = "shadow_hand_baoding.xml"
    _key = BAODING_KEY
    _action_scale = BAODING_ACTION_SCALE
    _obs_dim = 40
    _camera = {"distance": 0.4, "azimuth": 90.0, "elevation": -55.0, "lookat": np.array([0.99, 0.88, 0.19])}

    def __init__(self, **kwargs):
        self._phase = 0
        super().__init__(**kwargs)
        m = self.model
        body, joint = mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_JOINT
        self._palm = mujoco.mj_name2id(m, body, "robot0:palm")
        self._balls = [m.jnt_qposadr[mujoco.mj_name2id(m, joint, n)] for n in ("ball1", "ball2")]
        self._ball_dofs = [m.jnt_dofadr[mujoco.mj_name2id(m, joint, n)] for n in ("ball1", "ball2")]
        self._mocap = [m.body_mocapid[mujoco.mj_name2id(m, body, n)] for n in ("target1", "target2")]

    def targets(self) -> np.ndarray:
        """World positions ``[2, 3]`` of the two targets at the current phase and palm pose."""
        angle = 2 * np.pi * self._phase / BAODING_PERIOD + np.array(BAODING_START_ANGLES)
        (rx, rz), (cx, cz) = BAODING_RADII, BAODING_CENTER
        local = np.stack([cx + rx * np.cos(angle), np.full(2, BAODING_TARGET_LIFT), cz + rz * np.sin(angle)], axis=1)
        rot = self.data.xmat[self._palm].reshape(3, 3)
        return self.data.xpos[self._palm] + local @ rot.T

    def _get_obs(self) -> np.ndarray:
        targets = self.targets()
        for i, mocap in enumerate(self._mocap):
            self.data.mocap_pos[mocap] = targets[i]
        q, v = self.data.qpos, self.data.qvel
        parts = [q[:HAND_NQ]]
        for adr, dof in zip(self._balls, self._ball_dofs):
            parts += [q[adr : adr + 3], v[dof : dof + 3]]
        return np.concatenate(parts + [targets[0, :2], targets[1, :2]]).astype(np.float64)

    def step(self, action):
        self._simulate(action)
        self._phase += 1
        obs = self._get_obs()
        mujoco.mj_kinematics(self.model, self.data)  # show the moved targets
        dist1 = float(np.linalg.norm(obs[_B1][:2] - obs[_T1]))
        dist2 = float(np.linalg.norm(obs[_B2][:2] - obs[_T2]))
        dropped = bool(obs[_B1][2] < BAODING_DROP_HEIGHT or obs[_B2][2] < BAODING_DROP_HEIGHT)
        wrist = obs[_WRJ0] > BAODING_WRIST_LIMIT
        reward = (-BAODING_DIST_WEIGHT * (dist1 + dist2) + BAODING_DROP_PENALTY * dropped
                  + BAODING_WRIST_PENALTY * wrist)
        info = {"ball1_distance": dist1, "ball2_distance": dist2, "dropped": dropped, "score": -(dist1 + dist2)}
        if self.render_mode == "human":
            self.render()
        return obs, float(reward), dropped, False, info

    def reset_model(self) -> np.ndarray:
        self._phase = 0
        self._reset_hand()
        mujoco.mj_kinematics(self.model, self.data)
        obs = self._get_obs()
        mujoco.mj_kinematics(self.model, self.data)
        return obs


class HandCubeEnv(_ShadowHandEnv):
    """PDDM's in-hand cube reorientation, geodesic-angle variant; see the module docstring."""

    _xml = "shadow_hand_cube.xml"
    _key = CUBE_KEY
    _action_scale = 1.0
    _obs_dim = 41
    _camera = {"distance": 0.5, "azimuth": 90.0, "elevation": -50.0, "lookat": np.array([0.95, 0.88, 0.2])}

    def __init__(self, **kwargs):
        self._goal = CUBE_GOALS[0].copy()
        super().__init__(**kwargs)
        m = self.model
        joint = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "cube")
        self._cube, self._cube_dof = m.jnt_qposadr[joint], m.jnt_dofadr[joint]
        self._mocap = m.body_mocapid[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "goal")]

    def _get_obs(self) -> np.ndarray:
        q, v, c, d = self.data.qpos, self.data.qvel, self._cube, self._cube_dof
        return np.concatenate([q[:HAND_NQ], q[c : c + 7], v[d : d + 6], self._goal]).astype(np.float64)

    def step(self, action):
        self._simulate(action)
        obs = self._get_obs()
        angle = _quat_angle_np(obs[_CQUAT], obs[_GQUAT])
        dropped = bool(obs[_CPOS][2] < CUBE_DROP_HEIGHT)
        reward = -CUBE_ANGLE_WEIGHT * angle + CUBE_DROP_PENALTY * dropped
        info = {"angle": angle, "dropped": dropped, "score": -angle}
        if self.render_mode == "human":
            self.render()
        return obs, float(reward), dropped, False, info

    def reset_model(self) -> np.ndarray:
        self._reset_hand()
        self._goal = CUBE_GOALS[int(self.np_random.integers(len(CUBE_GOALS)))].copy()
        self.data.mocap_quat[self._mocap] = self._goal
        mujoco.mj_kinematics(self.model, self.data)
        return self._get_obs()


# --------------------------------------------------------------------------- the tasks (JAX)


def _safe_norm(x: jnp.ndarray) -> jnp.ndarray:
    """``||x||`` over the last axis, with a finite gradient at 0."""
    sq = jnp.sum(jnp.square(x), axis=-1)
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def baoding_termination(obs, action, next_obs):
    """A ball's centre below ``BAODING_DROP_HEIGHT`` (0.06 m) after the step."""
    return (next_obs[..., _B1.start + 2] < BAODING_DROP_HEIGHT) | (next_obs[..., _B2.start + 2] < BAODING_DROP_HEIGHT)


def baoding_reward(obs, action, next_obs):
    """PDDM Baoding: ``-5 (d1 + d2) - 500 * dropped - 10 * [WRJ0 > 0.15]``, all from ``next_obs``.

    ``d_i = ||ball_i xy - target_i xy||``; no action term (PDDM's reward has none).
    """
    d1 = _safe_norm(next_obs[..., _B1][..., :2] - next_obs[..., _T1])
    d2 = _safe_norm(next_obs[..., _B2][..., :2] - next_obs[..., _T2])
    dropped = jnp.where(baoding_termination(obs, action, next_obs), 1.0, 0.0)
    wrist = jnp.where(next_obs[..., _WRJ0] > BAODING_WRIST_LIMIT, 1.0, 0.0)
    return -BAODING_DIST_WEIGHT * (d1 + d2) + BAODING_DROP_PENALTY * dropped + BAODING_WRIST_PENALTY * wrist


def baoding_success(next_obs, tol: float = BAODING_SUCCESS_TOL):
    """Both balls' ``xy`` within ``tol`` of their targets and neither dropped, per step: ``[...]`` bool.

    PDDM's code reports only a score (minus the two distances), no success test, so the tolerance is
    ours: 0.02 m, the smaller radius of the targets' ellipse, so that a ball resting at the ellipse's
    centre is never within it and a ball must follow its target. Measured over 3 episodes of holding
    the start pose (zero action), 13% of steps pass at 0.02 m (25% at the ball's radius, 0.028 m).
    """
    d1 = jnp.linalg.norm(next_obs[..., _B1][..., :2] - next_obs[..., _T1], axis=-1)
    d2 = jnp.linalg.norm(next_obs[..., _B2][..., :2] - next_obs[..., _T2], axis=-1)
    return (d1 < tol) & (d2 < tol) & ~baoding_termination(None, None, next_obs)


def cube_success(next_obs, tol: float = CUBE_SUCCESS_TOL):
    """The cube's orientation within ``tol`` rad of the goal and the cube not dropped, per step: ``[...]`` bool.

    PDDM's code has no success test; 0.1 rad is gymnasium-robotics' ``rotation_threshold`` for the
    same hand's block tasks. Every goal starts 1.5 rad away, so holding still never passes.
    """
    close = quat_angle(next_obs[..., _CQUAT], next_obs[..., _GQUAT]) < tol
    return close & ~cube_termination(None, None, next_obs)


def quat_angle(q: jnp.ndarray, g: jnp.ndarray) -> jnp.ndarray:
    """Geodesic angle ``[...]`` in ``[0, pi]`` between quaternions ``q[..., 4]`` and ``g[..., 4]`` (wxyz).

    ``2 atan2(|v|, |w|)`` of ``conj(g) q``: insensitive to the sign and to the norm of either (a
    model's predicted quaternion need not be unit), with a finite gradient everywhere.
    """
    w = jnp.sum(q * g, axis=-1)
    v = g[..., :1] * q[..., 1:] - q[..., :1] * g[..., 1:] - jnp.cross(g[..., 1:], q[..., 1:])
    return 2.0 * jnp.arctan2(_safe_norm(v), jnp.abs(w))


def cube_termination(obs, action, next_obs):
    """The cube's centre below ``CUBE_DROP_HEIGHT`` (0.1 m under its resting height) after the step."""
    return next_obs[..., _CPOS.start + 2] < CUBE_DROP_HEIGHT


def cube_reward(obs, action, next_obs):
    """PDDM cube: ``-7 * angle(cube quat, goal quat) - 1000 * dropped`` from ``next_obs``; no action term."""
    angle = quat_angle(next_obs[..., _CQUAT], next_obs[..., _GQUAT])
    dropped = jnp.where(cube_termination(obs, action, next_obs), 1.0, 0.0)
    return -CUBE_ANGLE_WEIGHT * angle + CUBE_DROP_PENALTY * dropped


# --------------------------------------------------------------------------- registration


def _register() -> None:
    for env_id, entry, steps in ((BAODING_ID, "BaodingEnv", BAODING_STEPS), (HAND_CUBE_ID, "HandCubeEnv", CUBE_STEPS)):
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=f"mbrlax.envs.hand:{entry}", max_episode_steps=steps)
    TASKS.update({
        BAODING_ID: Task(BAODING_ID, 40, 20, *unit_bounds(20), baoding_reward, baoding_termination, BAODING_STEPS,
                         success_fn=baoding_success),
        HAND_CUBE_ID: Task(HAND_CUBE_ID, 41, 20, *unit_bounds(20), cube_reward, cube_termination, CUBE_STEPS,
                           success_fn=cube_success),
    })
    KNOWN_ENVS.update({BAODING_ID: KnownEnv(BAODING_ID, BAODING_OBS_LAYOUT),
                       HAND_CUBE_ID: KnownEnv(HAND_CUBE_ID, CUBE_OBS_LAYOUT)})
    ALIASES.update({"baoding": BAODING_ID, "baoding-balls": BAODING_ID, "hand-cube": HAND_CUBE_ID})


_register()
