"""A BAIR-like tabletop pushing world in MuJoCo with the gymnasium API.

A pusher moves over a tray by bounded planar position deltas; blocks slide and rotate with
friction; a fixed camera looks down at the tray at an angle, as in the BAIR robot pushing data.
The task is to push the target object to a goal position.

Example:
    >>> import gymnasium as gym, envs
    >>> env = gym.make("mbvc/Push-v0", image_size=32)
    >>> obs, info = env.reset(seed=0)
    >>> obs["image"].shape, obs["image"].dtype, sorted(info)[:2]
    ((32, 32, 3), dtype('uint8'), ['distance', 'is_success'])
    >>> env.close()
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs._gl import import_mujoco, make_renderer
from envs.scene import (CLUTTER, FINGER_HEIGHT, LIFT_STEP, SPAWN, TURN_STEP, WORKSPACE, SceneSpec, StateLayout, build_xml,
                        distractor_scene, multi_scene, push_scene)
from mbvc.errors import ConfigError, EnvError, did_you_mean

logger = logging.getLogger(__name__)
mujoco = import_mujoco()  # a missing GL library fails here: say what to install

CAMERAS = ("bair", "top", "side")
#: Joins camera names into one observation of several views side by side, e.g. ``"bair+side"``.
VIEW_SEPARATOR = "+"


@dataclass(frozen=True)
class PushState:
    """Everything that determines the future of an episode, for :meth:`PushEnv.set_state`.

    Attributes:
        physics: MuJoCo integration state (time, qpos, qvel, controls, solver warm start).
        goal: ``(2,)`` goal position of the target.
        target: index of the target object.
        elapsed: steps taken in the episode.
    """

    physics: np.ndarray
    goal: np.ndarray
    target: int
    elapsed: int


def _first(draw: Callable[[], np.ndarray], ok: Callable[[np.ndarray], bool], tries: int = 100
           ) -> np.ndarray | None:
    """First of ``tries`` draws that satisfies ``ok`` (rejection sampling), or ``None``."""
    for _ in range(tries):
        x = draw()
        if ok(x):
            return x
    return None


def _size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if not (isinstance(h, int) and isinstance(w, int) and 8 <= h <= 2048 and 8 <= w <= 2048):
        raise ConfigError(f"image_size must be an int or (height, width) in 8..2048, got {image_size!r}")
    return h, w


def _scene(scene: str | SceneSpec, num_blocks: int | None, num_distractors: int | None) -> SceneSpec:
    # An argument the scene does not use is a mistake (e.g. num_blocks for mbvc/Push-v0), not a no-op.
    for name, value, owner in (("num_blocks", num_blocks, "multi"), ("num_distractors", num_distractors, "distractors")):
        if value is not None and scene != owner:
            ids = {"multi": "mbvc/PushMulti-v0", "distractors": "mbvc/PushDistractors-v0"}
            raise ConfigError(f"{name}={value!r} is only for the {owner!r} scene ({ids[owner]}); this env's scene "
                              f"is {scene if isinstance(scene, str) else type(scene).__name__!r}")
    if isinstance(scene, SceneSpec):
        return scene
    if scene == "push":
        return push_scene()
    if scene == "multi":
        return multi_scene(3 if num_blocks is None else num_blocks)
    if scene == "distractors":
        return distractor_scene(4 if num_distractors is None else num_distractors)
    raise ConfigError(f"unknown scene {scene!r}, expected push | multi | distractors"
                      + did_you_mean(str(scene), ["push", "multi", "distractors"]))


def _refuse_unknown(unknown: dict[str, Any]) -> None:
    import inspect

    names = [n for n in inspect.signature(PushEnv.__init__).parameters if n not in ("self", "unknown")]
    key = sorted(unknown)[0]
    raise ConfigError(f"PushEnv got an unknown argument {key!r}; it takes {', '.join(names)}."
                      + did_you_mean(key, names))


class PushEnv(gym.Env):
    """Push the target object to a goal position on a table.

    Observation: ``{"image": uint8 (H, W, 3), "state": float32 (S,)}``, state laid out as in
    :class:`envs.scene.StateLayout` (pusher pose, object poses, goal, target one-hot).
    Action: ``float32 (2,)`` in ``[-1, 1]``, the pusher's planar displacement in units of
    ``max_step`` metres; with ``action_dim=4`` also lift and wrist rotation (BAIR-like).
    Reward: minus the target's distance to the goal (metres), every step.
    Info: ``distance``, ``is_success`` (distance below ``success_threshold``), ``target``
    (the target's name) and ``pusher_distance`` (pusher to target).

    Args:
        scene: ``"push"`` (one block), ``"multi"`` (2-3 blocks), ``"distractors"`` or a
            :class:`~envs.scene.SceneSpec`.
        image_size: ``H`` (square) or ``(H, W)`` of one camera's view.
        episode_length: steps before ``truncated`` is set.
        action_dim: 2 or 4.
        max_step: metres moved by a unit action.
        success_threshold: metres.
        goal_distance: ``(min, max)`` distance of the goal from the target's start.
        camera: ``"bair"`` (default), ``"top"`` or ``"side"``, or several joined by ``"+"``
            (e.g. ``"bair+side"``): the observation then holds their views side by side, ``H x
            (n W) x 3``. The rod hides the block from the ``bair`` camera when it pushes away
            from it, and from the ``side`` camera when it pushes towards it; one of the two sees
            every push (docs/recipe.md).
        target: name of the object to push; ``None`` draws one per episode.
        num_blocks: blocks of the ``"multi"`` scene (2 or 3).
        num_distractors: distractors of the ``"distractors"`` scene (1-4).
        terminate_on_success: end the episode once the target is at the goal.
        show_goal: draw the goal on the table.
        frame_skip: physics steps (4 ms each) per environment step.
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, scene: str | SceneSpec = "push", *, image_size: int | tuple[int, int] = 64,
                 episode_length: int = 40, action_dim: int = 2, max_step: float = 0.025,
                 success_threshold: float = 0.025, goal_distance: tuple[float, float] = (0.06, 0.16),
                 camera: str = "bair", target: str | None = None, num_blocks: int | None = None,
                 num_distractors: int | None = None, terminate_on_success: bool = False,
                 show_goal: bool = False, frame_skip: int = 25, render_mode: str | None = None,
                 **unknown: Any) -> None:
        if unknown:  # gym.make(..., imagesize=16) would otherwise be a bare TypeError
            _refuse_unknown(unknown)
        self.scene = _scene(scene, num_blocks, num_distractors)
        self.height, self.width = _size(image_size)
        if not (isinstance(episode_length, int) and episode_length >= 1):
            raise ConfigError(f"episode_length must be a positive int, got {episode_length!r}")
        if not 0.0 < max_step <= 0.1:
            raise ConfigError(f"max_step must be in (0, 0.1] metres, got {max_step!r}")
        if not 0.0 < goal_distance[0] <= goal_distance[1]:
            raise ConfigError(f"goal_distance must be (min, max) with 0 < min <= max, got {goal_distance!r}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        if target is not None and target not in [self.scene.names[i] for i in self.scene.targets]:
            names = [self.scene.names[i] for i in self.scene.targets]
            raise ConfigError(f"target must be one of {names}, got {target!r}" + did_you_mean(target, names))
        self.episode_length, self.action_dim, self.max_step = episode_length, action_dim, max_step
        self.success_threshold, self.goal_distance = success_threshold, tuple(goal_distance)
        self.target_name, self.terminate_on_success = target, terminate_on_success
        self.frame_skip, self.render_mode = frame_skip, render_mode
        self.layout = StateLayout(len(self.scene.objects))

        xml = build_xml(self.scene, action_dim, offscreen=(self.width, self.height), show_goal=show_goal)
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        self._scratch = mujoco.MjData(self.model)  # for goal images: never disturbs the episode
        self.views: tuple[str, ...] = ()
        self.camera = camera  # validated by the property setter; sets self.views
        self._goal_site = self.model.site("goal").id
        self._obj_qpos = [self.model.jnt_qposadr[self.model.joint(f"obj{i}").id]
                          for i in range(len(self.scene.objects))]
        self._pusher_qpos = self.model.jnt_qposadr[self.model.joint("pusher_x").id]
        self._ctrl_low, self._ctrl_high = self.model.actuator_ctrlrange.T.copy()
        self._state_spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self._renderer: Any = None
        self._image: np.ndarray | None = None  # cache of the current frame
        self._goal = np.zeros(2)
        self._target = self.scene.targets[0]
        self._elapsed = 0

        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (self.height, self.width * len(self.views), 3), np.uint8),
            "state": spaces.Box(*self._state_bounds(), dtype=np.float32),
        })
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ properties
    @property
    def dt(self) -> float:
        """Seconds of simulated time per step."""
        return self.model.opt.timestep * self.frame_skip

    @property
    def camera(self) -> str:
        """Name of the camera (or ``"+"``-joined cameras) used for observations, ``render()`` and goal images."""
        return self._camera

    @camera.setter
    def camera(self, name: str) -> None:
        views = tuple(str(name).split(VIEW_SEPARATOR))
        for view in views:
            if view not in CAMERAS:
                raise ConfigError(f"camera must be one of {list(CAMERAS)} or several joined by "
                                  f"{VIEW_SEPARATOR!r}, got {name!r}" + did_you_mean(view, CAMERAS))
        if len(set(views)) != len(views):
            raise ConfigError(f"camera {name!r} names a view twice")
        if self.views and len(views) != len(self.views):
            raise ConfigError(f"camera {name!r} has {len(views)} views; this env was built with "
                              f"{len(self.views)} (its observation space is fixed): make a new env")
        self._camera, self.views = name, views
        self._image = None

    @property
    def goal(self) -> np.ndarray:
        """``(2,)`` goal position of the target object (metres)."""
        return self._goal.copy()

    @property
    def target_position(self) -> np.ndarray:
        """``(2,)`` current position of the target object (metres)."""
        adr = self._obj_qpos[self._target]
        return self.data.qpos[adr: adr + 2].copy()

    @property
    def target(self) -> str:
        """Name of the object to push in this episode."""
        return self.scene.names[self._target]

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Start an episode; ``options`` may set ``"target"`` (a name) and ``"goal"`` (x, y)."""
        super().reset(seed=seed)
        options = options or {}
        self._target = self._pick_target(options.get("target", self.target_name))
        mujoco.mj_resetData(self.model, self.data)
        self._place(options.get("goal"))
        self.data.ctrl[:] = self._pusher_pose()[: self.action_dim]
        mujoco.mj_forward(self.model, self.data)
        self._elapsed, self._image = 0, None
        return self.observe(), self._info()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Move the pusher by ``action * max_step`` (clipped to the tray) and simulate 0.1 s."""
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (self.action_dim,):
            raise EnvError(f"PushEnv.step expects an action of shape ({self.action_dim},), "
                           f"got {np.asarray(action).shape}")
        if not np.all(np.isfinite(a)):  # checked before clipping, which would turn inf into 1 silently
            raise EnvError(f"PushEnv.step expects a finite action, got {a.tolist()}")
        a = np.clip(a, -1.0, 1.0)
        # Targets are relative to where the pusher is, not where it was told to be, so a
        # blocked pusher does not wind up and lurch when released.
        pose = self._pusher_pose()[: self.action_dim]
        scale = np.array([self.max_step, self.max_step, LIFT_STEP, TURN_STEP])[: self.action_dim]
        target = pose + a * scale
        self.data.ctrl[:] = np.clip(target, self._ctrl_low, self._ctrl_high)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self._elapsed += 1
        self._image = None
        info = self._info()
        terminated = bool(self.terminate_on_success and info["is_success"])
        truncated = self._elapsed >= self.episode_length
        return self.observe(), -info["distance"], terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """The observation camera's current image, ``uint8 (H, W, 3)`` (``H x (n W) x 3`` for n views)."""
        if self.render_mode is None:
            logger.warning("PushEnv.render() called with render_mode=None; pass render_mode='rgb_array'")
            return None
        return self._frame().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ------------------------------------------------------------------ planner API
    def observe(self) -> dict[str, np.ndarray]:
        """The current observation (as ``reset``/``step`` return it), e.g. after ``set_state``."""
        return {"image": self._frame().copy(), "state": self._state_vector()}

    def get_state(self) -> PushState:
        """Snapshot of the episode; ``set_state`` on it then the same actions give the same frames."""
        physics = np.empty(mujoco.mj_stateSize(self.model, self._state_spec))
        mujoco.mj_getState(self.model, self.data, physics, self._state_spec)
        return PushState(physics, self._goal.copy(), int(self._target), int(self._elapsed))

    def set_state(self, state: PushState) -> None:
        """Restore a snapshot taken by :meth:`get_state` (of this or an identically built env)."""
        if not isinstance(state, PushState):
            raise EnvError(f"set_state expects a PushState from get_state(), got {type(state).__name__}")
        size = mujoco.mj_stateSize(self.model, self._state_spec)
        if state.physics.shape != (size,):
            raise EnvError(f"set_state: physics state has shape {state.physics.shape}, this env "
                           f"needs ({size},); was it taken from an env with another scene?")
        mujoco.mj_setState(self.model, self.data, np.asarray(state.physics, np.float64), self._state_spec)
        self._set_goal(state.goal)
        self._target, self._elapsed, self._image = int(state.target), int(state.elapsed), None
        mujoco.mj_forward(self.model, self.data)

    def goal_image(self, pusher_xy: tuple[float, float] | None = None) -> np.ndarray:
        """Render the scene with the target object at its goal, ``uint8 (H, W, 3)``.

        Other objects and the pusher stay where they are now (``pusher_xy`` moves the
        pusher, e.g. out of the way). The episode is not disturbed.
        """
        self._scratch.qpos[:] = self.data.qpos
        adr = self._obj_qpos[self._target]
        self._scratch.qpos[adr: adr + 2] = self._goal
        if pusher_xy is not None:
            self._scratch.qpos[self._pusher_qpos: self._pusher_qpos + 2] = pusher_xy
        mujoco.mj_forward(self.model, self._scratch)
        return self._render(self._scratch)

    def pixel_of(self, xyz: np.ndarray, size: tuple[int, int]) -> tuple[float, float]:
        """``(row, col)`` of a world point in a ``size`` frame of the observation camera.

        MuJoCo's pinhole model: the camera looks along its frame's -z with +y up, ``fovy`` is the
        vertical field of view and pixels are square, so one focal length serves both axes. With
        several views (``camera="bair+side"``) ``size`` is the whole observation's and the pixel
        is in the first view, the leftmost.
        """
        cam = self.model.camera(self.views[0])
        data = self.data
        rel = np.asarray(xyz, np.float64) - data.cam_xpos[cam.id]
        x, y, z = data.cam_xmat[cam.id].reshape(3, 3).T @ rel
        if z >= 0:
            raise EnvError(f"the point {list(np.round(xyz, 3))} is behind the {self.views[0]!r} camera")
        h, w = size[0], size[1] / len(self.views)
        focal = (h / 2) / np.tan(np.radians(float(cam.fovy[0])) / 2)
        return float(h / 2 - focal * y / -z - 0.5), float(w / 2 + focal * x / -z - 0.5)

    def designate(self, size: tuple[int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
        """The target object's pixel and its goal's pixel in a ``size`` frame (what a user would click).

        Both points are at the height of the object's centre, so that the object standing on its
        goal is drawn where the goal pixel is (no parallax from the tilted camera).
        """
        adr = self._obj_qpos[self._target]
        centre = self.data.qpos[adr: adr + 3].copy()
        return self.pixel_of(centre, size), self.pixel_of(np.array([*self._goal, centre[2]]), size)

    def designate_agent(self, size: tuple[int, int]) -> tuple[float, float]:
        """The pusher's finger pixel in a ``size`` frame (where a user would click on the agent).

        The point is the finger's centre (the geom sits ``FINGER_HEIGHT`` above the pusher's
        body), on the finger as drawn, at about the height of the objects' centres.
        """
        pose = self._pusher_pose()
        return self.pixel_of(np.array([pose[0], pose[1], pose[2] + FINGER_HEIGHT]), size)

    # ------------------------------------------------------------------ internals
    def _pick_target(self, target: str | int | None) -> int:
        allowed = {self.scene.names[i]: i for i in self.scene.targets}
        if target is None:
            return int(self.np_random.choice(self.scene.targets))
        if isinstance(target, (int, np.integer)) and int(target) in allowed.values():
            return int(target)
        if target in allowed:
            return allowed[target]
        raise ConfigError(f"target must be one of {list(allowed)}, got {target!r}"
                          + did_you_mean(str(target), allowed))

    def _place(self, goal: Any) -> None:
        """Draw non-overlapping object poses, a reachable goal and a free pusher position."""
        for _ in range(200):  # a layout can dead-end (no room for the goal): redraw it whole
            layout = self._draw_layout(goal)
            if layout is not None:
                break
        else:
            raise EnvError("could not place the objects, goal and pusher without overlap in 200 "
                           "layouts; the scene is too crowded for the tray or goal_distance too large")
        poses, goal_xy, pusher = layout
        for adr, pose in zip(self._obj_qpos, poses):
            self.data.qpos[adr: adr + 7] = pose
        self._set_goal(goal_xy)
        self.data.qpos[self._pusher_qpos: self._pusher_qpos + 2] = pusher

    def _draw_layout(self, goal: Any) -> tuple[list[np.ndarray], np.ndarray, np.ndarray] | None:
        rng, objs = self.np_random, self.scene.objects
        placed: list[tuple[np.ndarray, float]] = []
        poses = []
        for i, obj in enumerate(objs):
            # The target starts near the middle; the others may also clutter the edges.
            half = SPAWN if i == self._target else CLUTTER
            xy = _first(lambda: rng.uniform(-half, half, 2),
                        lambda p, r=obj.radius: all(np.linalg.norm(p - q) > r + s + 0.01 for q, s in placed))
            if xy is None:
                return None
            placed.append((xy, obj.radius))
            yaw = rng.uniform(-np.pi, np.pi)
            poses.append(np.array([*xy, obj.half_height, np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]))
        start, r_t = placed[self._target]
        lo, hi = self.goal_distance
        others = [p for j, p in enumerate(placed) if j != self._target]
        if goal is None:
            goal = _first(lambda: rng.uniform(-SPAWN, SPAWN, 2),
                          lambda g: lo <= np.linalg.norm(g - start) <= hi
                          and all(np.linalg.norm(g - q) > r_t + s + 0.01 for q, s in others))
        pusher = _first(lambda: rng.uniform(-CLUTTER, CLUTTER, 2),
                        lambda p: all(np.linalg.norm(p - q) > s + 0.03 for q, s in placed))
        if goal is None or pusher is None:
            return None
        return poses, np.asarray(goal, np.float64), pusher

    def _set_goal(self, goal: np.ndarray) -> None:
        if goal.shape != (2,) or np.any(np.abs(goal) > WORKSPACE):
            raise EnvError(f"goal must be (x, y) inside the tray (|x|, |y| <= {WORKSPACE}), got {goal!r}")
        self._goal = goal.astype(np.float64).copy()
        self.model.site_pos[self._goal_site, :2] = self._goal

    def _pusher_pose(self) -> np.ndarray:
        """``(x, y, z, yaw)`` of the pusher (z and yaw are 0 in the 2-D variant)."""
        q = self.data.qpos[self._pusher_qpos: self._pusher_qpos + self.action_dim]
        return np.concatenate([q, np.zeros(4 - self.action_dim)])

    def _state_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Loose physical bounds: positions within 1 m, unit quaternions, yaw, one-hot."""
        lay, high = self.layout, np.ones(self.layout.size, np.float32)
        high[lay.pusher.start + 3] = np.pi
        low = -high
        low[lay.target] = 0.0
        return low, high

    def _state_vector(self) -> np.ndarray:
        parts = [self._pusher_pose()]
        parts += [self.data.qpos[a: a + 7] for a in self._obj_qpos]
        onehot = np.zeros(len(self._obj_qpos))
        onehot[self._target] = 1.0
        return np.concatenate(parts + [self._goal, onehot]).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        obj = self.target_position
        distance = float(np.linalg.norm(obj - self._goal))
        return {"distance": distance, "is_success": distance < self.success_threshold,
                "target": self.target,
                "pusher_distance": float(np.linalg.norm(self._pusher_pose()[:2] - obj))}

    def _frame(self) -> np.ndarray:
        if self._image is None:
            self._image = self._render(self.data)
        return self._image

    def _render(self, data: mujoco.MjData) -> np.ndarray:
        if self._renderer is None:
            self._renderer = make_renderer(self.model, self.height, self.width)
        images = []
        for view in self.views:
            self._renderer.update_scene(data, camera=view)
            images.append(self._renderer.render())
        return images[0] if len(images) == 1 else np.concatenate(images, axis=1)
