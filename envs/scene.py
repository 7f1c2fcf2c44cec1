"""Scene description of the pushing world: objects, variants, MJCF text and the state layout.

The MJCF lives in ``envs/assets/tabletop.xml`` as a template; :func:`build_xml` fills in the
pusher's joints (2-D or the 4-D BAIR-like variant) and the objects of a :class:`SceneSpec`.
Keeping the scene a plain frozen description means the environment, the scripted policy and
the collector agree on one layout without importing MuJoCo.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

from mbvc.errors import ConfigError, did_you_mean

# Pusher workspace (metres): the tray's inner walls are at +-0.22 and the finger is 16 mm wide.
WORKSPACE = 0.195
# Target objects and goals are drawn from this square so that they stay well inside the tray and in view.
SPAWN = 0.11
# Non-target objects and the pusher's start may also be nearer the walls.
CLUTTER = 0.15
# What a unit action moves in the 4-D variant: lift (metres) and wrist rotation (radians).
LIFT_STEP, TURN_STEP = 0.02, 0.25
# Height of the finger's centre above the pusher's body (the geoms' pos below).
FINGER_HEIGHT = 0.035
PUSHER_GEOMS = {
    # A round finger: pushes the same way from every side, which keeps the 2-D task simple.
    2: '<geom name="finger" type="cylinder" pos="0 0 0.035" size="0.016 0.028" '
       'rgba="0.15 0.15 0.17 1" friction="0.3 0.005 0.0001" contype="2" conaffinity="2"/>',
    # A spatula: with the wrist rotation of the 4-D variant its orientation matters.
    4: '<geom name="finger" type="box" pos="0 0 0.035" size="0.032 0.009 0.028" '
       'rgba="0.15 0.15 0.17 1" friction="0.3 0.005 0.0001" contype="2" conaffinity="2"/>',
}


@dataclass(frozen=True)
class ObjectSpec:
    """One movable object.

    Attributes:
        name: colour name used to name the target (``"red"``...).
        shape: ``"box"`` or ``"cylinder"``.
        size: MuJoCo half-sizes: ``(x, y, z)`` for a box, ``(radius, half_height)`` for a
            cylinder.
        rgba: colour.
        mass: kilograms.
    """

    name: str
    shape: str = "box"
    size: tuple[float, ...] = (0.03, 0.03, 0.03)
    rgba: tuple[float, float, float, float] = (0.85, 0.15, 0.12, 1.0)
    mass: float = 0.1

    def __post_init__(self) -> None:
        expected = {"box": 3, "cylinder": 2}
        if self.shape not in expected:
            raise ConfigError(f"ObjectSpec.shape must be one of {sorted(expected)}, got {self.shape!r}"
                              + did_you_mean(self.shape, expected))
        if len(self.size) != expected[self.shape]:
            raise ConfigError(f"ObjectSpec {self.name!r}: a {self.shape} needs {expected[self.shape]} "
                              f"half-sizes, got {self.size}")

    @property
    def radius(self) -> float:
        """Radius of the object's footprint on the table (its bounding circle)."""
        if self.shape == "box":
            return math.hypot(self.size[0], self.size[1])
        return self.size[0]

    @property
    def half_height(self) -> float:
        """Height of the centre above the table when the object rests on it."""
        return self.size[2] if self.shape == "box" else self.size[1]


@dataclass(frozen=True)
class SceneSpec:
    """The objects of a variant and which of them may be named as the target."""

    objects: tuple[ObjectSpec, ...]
    targets: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.objects:
            raise ConfigError("SceneSpec needs at least one object, got none")
        bad = [i for i in self.targets if not 0 <= i < len(self.objects)]
        if bad or not self.targets:
            raise ConfigError(f"SceneSpec.targets must index objects 0..{len(self.objects) - 1}, "
                              f"got {self.targets}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objects)


RED = ObjectSpec("red", rgba=(0.85, 0.15, 0.12, 1.0))
GREEN = ObjectSpec("green", rgba=(0.15, 0.65, 0.2, 1.0))
BLUE = ObjectSpec("blue", rgba=(0.15, 0.3, 0.85, 1.0))
DISTRACTORS = (
    ObjectSpec("yellow_cylinder", "cylinder", (0.022, 0.03), (0.9, 0.8, 0.15, 1.0), 0.08),
    ObjectSpec("purple_bar", "box", (0.015, 0.04, 0.02), (0.55, 0.25, 0.7, 1.0), 0.08),
    ObjectSpec("orange_disc", "cylinder", (0.03, 0.012), (0.95, 0.5, 0.1, 1.0), 0.06),
    ObjectSpec("cyan_cube", "box", (0.02, 0.02, 0.02), (0.2, 0.75, 0.8, 1.0), 0.05),
)


def push_scene() -> SceneSpec:
    """One red block (``mbvc/Push-v0``)."""
    return SceneSpec((RED,))


def multi_scene(num_blocks: int = 3) -> SceneSpec:
    """2 or 3 coloured blocks, any of which may be named (``mbvc/PushMulti-v0``)."""
    if num_blocks not in (2, 3):
        raise ConfigError(f"num_blocks must be 2 or 3, got {num_blocks!r}")
    blocks = (RED, GREEN, BLUE)[:num_blocks]
    return SceneSpec(blocks, targets=tuple(range(num_blocks)))


def distractor_scene(num_distractors: int = 4) -> SceneSpec:
    """The red block among light objects of other shapes (``mbvc/PushDistractors-v0``)."""
    if not 1 <= num_distractors <= len(DISTRACTORS):
        raise ConfigError(f"num_distractors must be in 1..{len(DISTRACTORS)}, got {num_distractors!r}")
    return SceneSpec((RED,) + DISTRACTORS[:num_distractors])


@dataclass(frozen=True)
class StateLayout:
    """Where each quantity sits in the flat ``obs["state"]`` vector.

    ``[pusher x, y, z, yaw | per object x, y, z, qw, qx, qy, qz | goal x, y | target one-hot]``
    """

    num_objects: int

    POSE = 7

    @property
    def pusher(self) -> slice:
        return slice(0, 4)

    def object(self, i: int) -> slice:
        """Slice of object ``i``'s pose (position then quaternion)."""
        start = 4 + self.POSE * i
        return slice(start, start + self.POSE)

    @property
    def goal(self) -> slice:
        start = 4 + self.POSE * self.num_objects
        return slice(start, start + 2)

    @property
    def target(self) -> slice:
        start = self.goal.stop
        return slice(start, start + self.num_objects)

    @property
    def size(self) -> int:
        return self.target.stop


def _pusher_joints(action_dim: int) -> tuple[str, str]:
    """MJCF of the pusher's joints and position actuators for a 2-D or 4-D action."""
    w, r = WORKSPACE + 0.01, WORKSPACE
    joints = [f'<joint name="pusher_x" type="slide" axis="1 0 0" range="{-w} {w}"/>',
              f'<joint name="pusher_y" type="slide" axis="0 1 0" range="{-w} {w}"/>']
    # Critically damped position servos (kv = 2 sqrt(kp m)) settle well within one 0.1 s step.
    acts = [f'<position name="pusher_x" joint="pusher_x" kp="1000" kv="45" ctrlrange="{-r} {r}"/>',
            f'<position name="pusher_y" joint="pusher_y" kp="1000" kv="45" ctrlrange="{-r} {r}"/>']
    if action_dim == 4:
        joints += ['<joint name="pusher_z" type="slide" axis="0 0 1" range="0 0.08"/>',
                   '<joint name="pusher_yaw" type="hinge" axis="0 0 1" range="-3.1416 3.1416"/>']
        acts += ['<position name="pusher_z" joint="pusher_z" kp="1000" kv="45" ctrlrange="0 0.08"/>',
                 '<position name="pusher_yaw" joint="pusher_yaw" kp="2" kv="0.09" '
                 'ctrlrange="-3.1416 3.1416"/>']
    pad = " " * 6
    return "\n".join(pad + j for j in joints), "\n".join(pad[2:] + a for a in acts)


def _object_xml(i: int, obj: ObjectSpec) -> str:
    size = " ".join(f"{s:g}" for s in obj.size)
    rgba = " ".join(f"{c:g}" for c in obj.rgba)
    return (f'    <body name="obj{i}" pos="0 0 {obj.half_height:g}">\n'
            f'      <freejoint name="obj{i}"/>\n'
            f'      <geom name="obj{i}" type="{obj.shape}" size="{size}" rgba="{rgba}" '
            f'mass="{obj.mass:g}" contype="3" conaffinity="3"/>\n'
            f'    </body>')


def build_xml(scene: SceneSpec, action_dim: int = 2, timestep: float = 0.004,
              offscreen: tuple[int, int] = (64, 64), show_goal: bool = False) -> str:
    """Return the MJCF text of a scene.

    Args:
        scene: objects to place in the tray.
        action_dim: 2 (planar finger) or 4 (adds lift and wrist rotation, spatula pusher).
        timestep: physics time step in seconds.
        offscreen: ``(width, height)`` of the largest image that will be rendered.
        show_goal: draw the goal as a translucent disc on the table (off by default so
            that goal images and observations contain only the scene, as in BAIR).
    """
    if action_dim not in PUSHER_GEOMS:
        raise ConfigError(f"action_dim must be 2 or 4, got {action_dim!r}")
    template = resources.files("envs").joinpath("assets/tabletop.xml").read_text()
    joints, actuators = _pusher_joints(action_dim)
    joints += "\n      " + PUSHER_GEOMS[action_dim]
    objects = "\n".join(_object_xml(i, o) for i, o in enumerate(scene.objects))
    return template.format(
        timestep=timestep, offwidth=max(offscreen[0], 64), offheight=max(offscreen[1], 64),
        goal_rgba="0.9 0.2 0.2 0.35" if show_goal else "0 0 0 0",
        pusher_joints=joints, objects=objects, actuators=actuators,
    )
