"""Rendering cannot segfault in any import order (MUJOCO_GL=egl on Mesa, stable-baselines3 / TensorFlow).

Each case runs the user's own command in a fresh interpreter: what is checked is the exit code
(139 was the segfault), so nothing runs in the pytest process. Without stable-baselines3 or
TensorFlow installed there is nothing to clash and the tests skip.
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("stable_baselines3") is None or importlib.util.find_spec("tensorflow") is None,
    reason="needs stable-baselines3 and tensorflow (test dependencies): the clash is between them and Mesa")

#: The issue's command, verbatim: it died with exit 139 (SIGSEGV).
ISSUE_COMMAND = ("import gymnasium as gym, envs; e = gym.make('mbvc/Push-v0', image_size=16); e.reset(seed=0); "
                 "import stable_baselines3; e.reset(seed=1)")


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": "egl", "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


def _mesa() -> bool:
    """Whether this machine renders EGL with Mesa's CPU rasterizer (the clash exists only there)."""
    from envs._gl import mesa_software_gl

    return mesa_software_gl({"MUJOCO_GL": "egl"})


def test_issue_command_renders_after_stable_baselines3_is_imported():
    out = _python(ISSUE_COMMAND)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("code", [
    # envs first, stable-baselines3 before the first render
    "import gymnasium as gym, envs, stable_baselines3; e = gym.make('mbvc/Push-v0', image_size=16); e.reset(seed=0)",
    # the env imported through gymnasium's "envs:" prefix only, stable-baselines3 after a frame
    "import gymnasium as gym; e = gym.make('envs:mbvc/Push-v0', image_size=16); e.reset(seed=0); "
    "import stable_baselines3; e.reset(seed=1)",
    # gymnasium's own MuJoCo renderer (Reacher), stable-baselines3 after a frame
    "import gymnasium as gym; e = gym.make('envs:mbvc/Reacher-v0', image_size=16); e.reset(seed=0); "
    "import stable_baselines3; e.reset(seed=1)",
], ids=["envs-sb3-render", "gym-prefix-render-sb3", "reacher-render-sb3"])
def test_other_orders_that_load_envs_first_render(code):
    out = _python(code + "; import sys; print('tensorflow' in sys.modules)")
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    if _mesa():
        assert out.stdout.strip() == "False"  # TensorBoard took its TensorFlow-free stub


def test_reverse_order_is_a_clear_error_not_a_segfault():
    """stable-baselines3 first: TensorFlow is in before envs can act; rendering refuses, the process lives."""
    out = _python("import stable_baselines3, gymnasium as gym, envs; e = gym.make('mbvc/Push-v0', image_size=16)\n"
                  "try:\n    e.reset(seed=0)\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n")
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    if _mesa():
        assert out.stdout.startswith("EnvError") and "tensorflow" in out.stdout
        assert "import envs before stable_baselines3" in out.stdout


def test_importing_tensorflow_after_a_frame_is_an_import_error_not_a_segfault():
    out = _python("import gymnasium as gym, envs; gym.make('mbvc/Push-v0', image_size=16).reset(seed=0)\n"
                  "try:\n    import tensorflow\nexcept ImportError as exc:\n    print(type(exc).__name__, exc)\n"
                  "else:\n    print('imported')\n")
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    if _mesa():
        assert out.stdout.startswith("TensorflowAfterMesaError") and "Mesa" in out.stdout
    else:
        assert out.stdout.strip() == "imported"
