"""Headless OpenGL defaults and the errors raised when rendering cannot work."""
from __future__ import annotations

import sys
import types

import mujoco
import pytest

from envs import _gl
from envs.push import PushEnv
from mbvc.errors import EnvError


@pytest.mark.parametrize("environ, expected", [
    ({}, "egl"),
    ({"DISPLAY": ":0"}, None),
    ({"WAYLAND_DISPLAY": "wayland-0"}, None),
    ({"MUJOCO_GL": "osmesa"}, None),
])
def test_default_headless_gl(monkeypatch, environ, expected):
    monkeypatch.setattr(sys, "platform", "linux")
    env = dict(environ)
    assert _gl.default_headless_gl(env) == expected
    assert env.get("MUJOCO_GL") == (expected or environ.get("MUJOCO_GL"))


def test_missing_gl_backend_says_what_to_install(monkeypatch):
    def no_gl(*args, **kwargs):
        raise mujoco.FatalError("an OpenGL platform library has not been loaded")

    monkeypatch.setattr(mujoco, "Renderer", no_gl)
    env = PushEnv(image_size=8, render_mode="rgb_array")
    with pytest.raises(EnvError, match="MUJOCO_GL=egl.*libegl1|libegl1.*MUJOCO_GL=egl"):
        env.reset(seed=0)


def test_tensorflow_clash_is_an_error_not_a_segfault(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setattr(_gl, "_EGL_VENDOR_DIRS", (tmp_path,))
    (tmp_path / "50_mesa.json").write_text("{}")
    with pytest.raises(EnvError, match="tensorflow"):
        _gl.check_llvm_clash()
    (tmp_path / "10_nvidia.json").write_text("{}")  # a GPU driver renders without LLVM
    _gl.check_llvm_clash()


def test_broken_gl_library_at_import_says_what_to_install(monkeypatch):
    """A backend whose system library is missing makes ``import mujoco`` itself fail."""
    monkeypatch.delitem(sys.modules, "mujoco")
    monkeypatch.setitem(sys.modules, "mujoco", None)  # the next `import mujoco` raises ImportError
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    with pytest.raises(EnvError, match="MUJOCO_GL=osmesa.*apt-get install libosmesa6"):
        _gl.import_mujoco()


def test_import_envs_changes_nothing_and_setup_gl_is_explicit():
    import os
    import subprocess

    code = (
        "import os, sys\n"
        "import envs\n"
        "assert 'MUJOCO_GL' not in os.environ, os.environ['MUJOCO_GL']\n"
        "assert 'tensorboard.compat.notf' not in sys.modules\n"
        "assert 'mujoco' not in sys.modules\n"
        "print(envs.setup_gl())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "WAYLAND_DISPLAY")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("egl" if sys.platform == "linux" else "None")
