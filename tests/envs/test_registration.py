"""Registration and the headless GL setting, each in a fresh interpreter (as a user would start)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_fresh(code: str, **extra_env: str) -> dict:
    """Run ``code`` in a new interpreter without MUJOCO_GL (unless given) or a display; return its JSON line."""
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(extra_env)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_module_prefix_registers_and_renders_headless():
    """``gymnasium.make("envs:mbvc/Push-v0")`` with no prior import, MUJOCO_GL exported by the user."""
    out = run_fresh(
        "import json, os, sys, gymnasium as gym\n"
        "assert 'envs' not in sys.modules\n"
        "env = gym.make('envs:mbvc/Push-v0', image_size=16, render_mode='rgb_array')\n"
        "obs, info = env.reset(seed=0)\n"
        "print(json.dumps({'gl': os.environ.get('MUJOCO_GL'), 'shape': obs['image'].shape,\n"
        "                  'std': float(obs['image'].std()), 'render': env.render().shape,\n"
        "                  'ids': sorted(i for i in gym.registry if i.startswith('mbvc/'))}))\n",
        MUJOCO_GL="egl",
    )
    assert out["gl"] == "egl"
    assert out["shape"] == out["render"] == [16, 16, 3] and out["std"] > 1.0  # a real picture
    assert out["ids"] == ["mbvc/Push-v0", "mbvc/PushDistractors-v0", "mbvc/PushMulti-v0", "mbvc/Reacher-v0"]


def test_setup_gl_is_the_explicit_headless_default():
    """``import envs`` leaves MUJOCO_GL alone; ``envs.setup_gl()`` picks egl without a display."""
    out = run_fresh(
        "import json, os, gymnasium as gym, envs\n"
        "before = os.environ.get('MUJOCO_GL')\n"
        "envs.setup_gl()\n"
        "obs, info = gym.make('mbvc/Push-v0', image_size=16).reset(seed=0)\n"
        "print(json.dumps({'before': before, 'gl': os.environ.get('MUJOCO_GL'), 'std': float(obs['image'].std())}))\n"
    )
    assert out["before"] is None and out["gl"] == "egl" and out["std"] > 1.0


def test_import_then_make_every_id():
    out = run_fresh(
        "import json, gymnasium as gym, envs\n"
        "envs.setup_gl()\n"
        "res = {}\n"
        "for env_id in envs.ENV_IDS:\n"
        "    env = gym.make(env_id, image_size=8)\n"
        "    obs, info = env.reset(seed=0)\n"
        "    res[env_id] = [list(obs['image'].shape), type(env.unwrapped).__name__, info['is_success']]\n"
        "print(json.dumps(res))\n"
    )
    assert out == {env_id: [[8, 8, 3], "PushEnv", False]
                   for env_id in ("mbvc/Push-v0", "mbvc/PushMulti-v0", "mbvc/PushDistractors-v0")}
