"""Gymnasium's ``Reacher-v5`` seen from pixels, with a goal, a success test and a data policy.

:class:`ReacherPixelsEnv` is gymnasium's own Reacher-v5 (its class, XML and dynamics: a two-link
arm whose fingertip should reach a random target), registered as ``mbvc/Reacher-v0``, with:

* observations ``{"image": uint8 H x W x 3, "state": the 10 Reacher-v5 numbers}``: a top-down
  view rendered at ``render_scale`` x the size and shrunk (area), so the thin arm stays visible;
* the target drawn as a disc of the success radius (only its rendered size changes: the target
  and the fingertip have no contacts in Reacher's XML), so the frame shows where success is;
* ``info["distance"]``: the env's own fingertip-to-target distance (metres, the norm of the
  ``reward_dist`` vector) and ``info["is_success"]``: ``distance < success_distance`` (2 cm);
* ``get_state`` / ``set_state`` (the oracle's simulator copy), ``goal_image()`` (the arm
  reaching the target, from the inverse kinematics) and ``designate(size)`` (the fingertip's
  and the target's pixels: what a user would click for the designated-object cost).

It subclasses the env rather than wrapping ``gymnasium.make("Reacher-v5")`` in
:class:`envs.wrappers.PixelObservation` because the oracle steps ``env.unwrapped``: the
distance, the state and the pixels must live in the unwrapped env.

Example:
    >>> import gymnasium as gym, envs
    >>> env = gym.make("mbvc/Reacher-v0", image_size=32)
    >>> obs, _ = env.reset(seed=0)
    >>> obs["image"].shape, env.unwrapped.episode_length
    ((32, 32, 3), 50)
    >>> env.close()
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv
from PIL import Image

from mbvc.errors import ConfigError

#: Link lengths of Reacher's XML: shoulder to elbow, elbow to the fingertip body.
LINKS = (0.1, 0.11)
#: Half the side (metres) of the square the top-down camera sees at the table (|target| < 0.2, reach 0.21).
VIEW_HALF_EXTENT = 0.25
#: Default success radius (metres): the fingertip's centre inside the drawn target disc.
SUCCESS_DISTANCE = 0.02


def _wrap(angle: np.ndarray | float) -> np.ndarray | float:
    return (np.asarray(angle) + np.pi) % (2 * np.pi) - np.pi


def inverse_kinematics(xy: np.ndarray, near: np.ndarray | None = None) -> np.ndarray:
    """Joint angles ``(q0, q1)`` that put the fingertip at ``xy`` (the elbow side closest to ``near``).

    Points beyond reach give the stretched arm pointing at them.
    """
    l1, l2 = LINKS
    x, y = float(xy[0]), float(xy[1])
    c2 = np.clip((x * x + y * y - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
    best = None
    for q1 in (math.acos(c2), -math.acos(c2)):
        q0 = math.atan2(y, x) - math.atan2(l2 * math.sin(q1), l1 + l2 * math.cos(q1))
        q = np.array([_wrap(q0), q1])
        score = 0.0 if near is None else float(np.abs(_wrap(q - near)).sum())
        if best is None or score < best[0]:
            best = (score, q)
    return best[1]  # type: ignore[index]


class ReacherPixelsEnv(ReacherEnv):
    """Reacher-v5 with pixel observations, a success test and goal helpers (``mbvc/Reacher-v0``).

    Args:
        image_size: side of the observed frames.
        render_scale: frames are rendered this many times larger, then shrunk (area average).
        success_distance: fingertip-to-target distance (m) that counts as success; also the
            radius the target is drawn with.
        episode_length: steps per episode (Reacher-v5's 50); the env truncates itself, so
            that ``set_state`` also restores the step count.
        terminate_on_success: end the episode at the first success (else it runs all its steps
            and success is judged at the last one).
        control: ``"torque"`` (Reacher-v5's own actions: the two motor torques) or
            ``"velocity"``: an action in [-1, 1] asks each joint for ``action * max_joint_velocity``
            (rad/s) and a proportional velocity loop turns it into Reacher-v5's torques,
            ``clip(velocity_gain * (wanted - qvel), -1, 1)``, once per step (the low-level
            controller of a velocity-controlled arm, as the pushing robots of Visual Foresight
            are commanded). Dynamics, torque limits, reward and success stay Reacher-v5's.
        max_joint_velocity: joint speed (rad/s) of a full velocity action.
        velocity_gain: gain of the velocity loop (torque per rad/s; 0.2 reaches the wanted
            speed in about two steps without overshoot).
        fingertip_rgb: draw the fingertip in this colour (three numbers in [0, 1]) instead of
            Reacher's teal, close to the arm's own; only its look changes. A colour of its own
            is what a designated-pixel tracker and a small world model keep apart from the arm.
        fingertip_radius: radius (m) the fingertip is drawn with (1.8 cm by default, Reacher's
            1 cm made visible at 32x32); only its look changes (no contacts).
        **kwargs: passed to gymnasium's ``ReacherEnv`` (e.g. ``reward_control_weight``).
    """

    def __init__(self, image_size: int = 32, render_scale: int = 4, success_distance: float = SUCCESS_DISTANCE,
                 episode_length: int = 50, terminate_on_success: bool = False, control: str = "torque",
                 max_joint_velocity: float = 5.0, velocity_gain: float = 0.2,
                 fingertip_rgb: tuple[float, float, float] | list[float] | None = None,
                 fingertip_radius: float = 0.018, **kwargs: Any) -> None:
        if (not isinstance(image_size, int) or image_size < 8 or render_scale < 1 or not success_distance > 0
                or not isinstance(episode_length, int) or episode_length < 1):
            raise ConfigError(f"mbvc/Reacher-v0 needs image_size >= 8, render_scale >= 1, success_distance > 0 and "
                              f"episode_length >= 1, got {image_size=}, {render_scale=}, {success_distance=}, "
                              f"{episode_length=}")
        if not 0 < fingertip_radius <= 0.05:
            raise ConfigError(f"mbvc/Reacher-v0 fingertip_radius must be in (0, 0.05] m, got {fingertip_radius!r}")
        if control not in ("torque", "velocity") or not max_joint_velocity > 0 or not velocity_gain > 0:
            raise ConfigError(f"mbvc/Reacher-v0 needs control 'torque' or 'velocity', max_joint_velocity > 0 and "
                              f"velocity_gain > 0, got {control=}, {max_joint_velocity=}, {velocity_gain=}")
        if fingertip_rgb is not None and (np.shape(fingertip_rgb) != (3,) or not np.all(np.isfinite(fingertip_rgb))
                                          or np.min(fingertip_rgb) < 0 or np.max(fingertip_rgb) > 1):
            raise ConfigError(f"mbvc/Reacher-v0 fingertip_rgb must be three numbers in [0, 1], got {fingertip_rgb!r}")
        self.control, self.max_joint_velocity, self.velocity_gain = control, float(max_joint_velocity), float(velocity_gain)
        side = image_size * render_scale
        camera = {"distance": VIEW_HALF_EXTENT / math.tan(math.radians(22.5)), "elevation": -90.0,
                  "azimuth": 90.0, "lookat": np.zeros(3)}
        kwargs.pop("render_mode", None)
        super().__init__(default_camera_config=camera, render_mode="rgb_array", width=side, height=side, **kwargs)
        self.image_size, self.success_distance = image_size, float(success_distance)
        self.terminate_on_success, self.episode_length, self.steps = terminate_on_success, episode_length, 0
        self._camera_distance = camera["distance"]
        self.state_space = self.observation_space
        self.observation_space = spaces.Dict({"image": spaces.Box(0, 255, (image_size, image_size, 3), np.uint8),
                                              "state": self.state_space})
        # Only how they are drawn changes (Reacher's geoms have no contacts; inertia was set at
        # compile): the target becomes a flat disc on the table, under the fingertip, so the
        # fingertip stays visible when it reaches the target.
        import mujoco

        target, tip = self.model.geom("target").id, self.model.geom("fingertip").id
        self.model.geom_type[target] = mujoco.mjtGeom.mjGEOM_CYLINDER
        self.model.geom_size[target, :2] = (self.success_distance, 0.001)
        self.model.geom_pos[target, 2] = -0.009  # the target body sits 1 cm above the table
        self.model.geom_size[tip, 0] = fingertip_radius
        if fingertip_rgb is not None:
            self.model.geom_rgba[tip, :3] = fingertip_rgb
        self.model.vis.global_.fovy = 45.0

    # -- observations -------------------------------------------------------------------------

    def render(self) -> Any:
        """Gymnasium's render, after :func:`envs._gl.prepare_render` (no TensorFlow next to Mesa)."""
        from envs._gl import prepare_render

        prepare_render()
        return super().render()

    def frame(self) -> np.ndarray:
        """The current view, ``uint8 image_size x image_size x 3``."""
        img = Image.fromarray(np.ascontiguousarray(self.render()[..., :3]))
        return np.asarray(img.reduce(img.width // self.image_size)) if img.width != self.image_size else np.asarray(img)

    def observe(self) -> dict[str, np.ndarray]:
        """``{"image", "state"}`` (the oracle's copy replaces this to skip rendering)."""
        return {"image": self.frame(), "state": self._get_obs()}

    def distance(self) -> float:
        """Fingertip-to-target distance in metres (Reacher-v5's ``reward_dist`` is minus this)."""
        return float(np.linalg.norm(self.get_body_com("fingertip") - self.get_body_com("target")))

    def torque(self, action: np.ndarray) -> np.ndarray:
        """Reacher-v5's motor torques for an action of this env's ``control``."""
        action = np.asarray(action, dtype=np.float64)
        if self.control == "torque":
            return action
        wanted = np.clip(action, -1.0, 1.0) * self.max_joint_velocity
        return np.clip(self.velocity_gain * (wanted - self.data.qvel[:2]), -1.0, 1.0)

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        _, reward, terminated, truncated, info = super().step(self.torque(action).astype(np.float32))
        self.steps += 1
        dist = self.distance()
        info.update(distance=dist, is_success=dist < self.success_distance)
        terminated = terminated or (self.terminate_on_success and dist < self.success_distance)
        return self.observe(), reward, terminated, truncated or self.steps >= self.episode_length, info

    def reset_model(self) -> dict[str, np.ndarray]:
        super().reset_model()
        self.steps = 0
        return self.observe()

    def _get_reset_info(self) -> dict[str, Any]:
        dist = self.distance()
        return {"distance": dist, "is_success": dist < self.success_distance}

    # -- state ----------------------------------------------------------------------------------

    def get_state(self) -> tuple[np.ndarray, np.ndarray, int]:
        """``(qpos, qvel, steps)`` (the target's position is part of ``qpos``)."""
        return self.data.qpos.copy(), self.data.qvel.copy(), self.steps

    def set_state(self, qpos: Any, qvel: np.ndarray | None = None) -> None:
        """Restore :meth:`get_state`'s tuple, or (as MuJoCo envs do) ``set_state(qpos, qvel)``."""
        if qvel is None:
            qpos, qvel, self.steps = qpos
        super().set_state(np.asarray(qpos), np.asarray(qvel))

    # -- goals ----------------------------------------------------------------------------------

    def target_xy(self) -> np.ndarray:
        """The target's position on the table (m)."""
        return self.get_body_com("target")[:2].copy()

    def goal_image(self) -> np.ndarray:
        """The frame with the arm at rest reaching the target (inverse kinematics, elbow as now)."""
        qpos, qvel, _ = self.get_state()
        goal = qpos.copy()
        goal[:2] = inverse_kinematics(self.target_xy(), near=qpos[:2])
        super().set_state(goal, np.zeros_like(qvel))
        try:
            return self.frame()
        finally:
            super().set_state(qpos, qvel)

    def pixel_of(self, xyz: np.ndarray, size: tuple[int, int]) -> tuple[float, float]:
        """``(row, col)`` of a world point in a ``size`` frame (the top-down pinhole camera)."""
        half = (self._camera_distance - float(xyz[2])) * math.tan(math.radians(self.model.vis.global_.fovy / 2))
        h, w = size
        return (0.5 - float(xyz[1]) / (2 * half)) * h - 0.5, (0.5 + float(xyz[0]) / (2 * half)) * w - 0.5

    def designate(self, size: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
        """The fingertip's pixel (the object) and the target's (where it should go) in a ``size`` frame."""
        return self.pixel_of(self.get_body_com("fingertip"), size), self.pixel_of(self.get_body_com("target"), size)

    def designate_state(self, state: np.ndarray, size: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
        """:meth:`designate` for a recorded observation ``state`` (Reacher-v5's 10 numbers: the
        target's position at 4:6, fingertip minus target at 8:10); the arm moves in a plane."""
        state = np.asarray(state, dtype=np.float64)
        target = np.array([state[4], state[5], self.get_body_com("target")[2]])
        tip = np.array([state[4] + state[8], state[5] + state[9], self.get_body_com("fingertip")[2]])
        return self.pixel_of(tip, size), self.pixel_of(target, size)


class ReacherDataPolicy:
    """Data for a Reacher world model: control towards waypoints, with noise.

    Per episode (from its seed), with probability ``reach_prob`` the waypoints are the target
    (the arm reaches it, as a planner will ask) and otherwise random points of the workspace,
    changed every ``hold`` steps; Gaussian noise of ``noise_std`` is added to every action, and
    with probability ``random_prob`` an action is uniform. Torques come from PD control (``kp``,
    ``kd``); with ``control="velocity"`` the joint speeds asked for are ``velocity_kp`` times
    the angles left.

    Args:
        env: a ``mbvc/Reacher-v0`` env (its action space and control; the state comes in the obs).
        seed: seed when :meth:`reset` gets none.
    """

    def __init__(self, env: Any, reach_prob: float = 0.5, hold: int = 10, noise_std: float = 0.3,
                 random_prob: float = 0.2, kp: float = 2.0, kd: float = 0.2, velocity_kp: float = 4.0,
                 seed: int | None = None) -> None:
        self.space = env.action_space
        base = getattr(env, "unwrapped", env)
        self.max_speed = base.max_joint_velocity if getattr(base, "control", "torque") == "velocity" else None
        self.velocity_kp = velocity_kp
        self.reach_prob, self.hold, self.noise_std, self.random_prob = reach_prob, hold, noise_std, random_prob
        self.kp, self.kd = kp, kd
        self.rng = np.random.default_rng(seed)
        self.reach, self.t, self.waypoint = False, 0, np.zeros(2)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng([seed, 23])
        self.reach, self.t = bool(self.rng.random() < self.reach_prob), 0

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        state = np.asarray(obs["state"], dtype=np.float64)
        q, qdot, target = np.arctan2(state[2:4], state[0:2]), state[6:8], state[4:6]
        if self.t % self.hold == 0:
            radius, angle = 0.2 * math.sqrt(self.rng.random()), self.rng.uniform(-np.pi, np.pi)
            self.waypoint = target if self.reach else np.array([radius * math.cos(angle), radius * math.sin(angle)])
        self.t += 1
        q_des = inverse_kinematics(self.waypoint, near=q)
        if self.max_speed is None:  # torques: PD control
            action = self.kp * _wrap(q_des - q) - self.kd * qdot
        else:  # joint velocities: proportional to the angle left, reaching it in about 1/velocity_kp s
            action = self.velocity_kp * _wrap(q_des - q) / self.max_speed
        action = action + self.rng.normal(0.0, self.noise_std, 2)
        if self.rng.random() < self.random_prob:
            action = self.rng.uniform(self.space.low, self.space.high)
        return np.clip(action, self.space.low, self.space.high).astype(np.float32)


def data_policy(env: Any, **kwargs: Any) -> ReacherDataPolicy:
    """``module:factory`` form for ``mbvc collect`` (``collect.policy: envs.reacher:data_policy``)."""
    return ReacherDataPolicy(env, **kwargs)


__all__ = ["LINKS", "ReacherDataPolicy", "ReacherPixelsEnv", "SUCCESS_DISTANCE", "data_policy", "inverse_kinematics"]
