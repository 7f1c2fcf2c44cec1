"""OpenGL backend choice for headless rendering, and a renderer factory with a clear error.

MuJoCo picks its OpenGL backend once, when ``mujoco`` is first imported, from ``MUJOCO_GL``.
Its default (GLFW) needs a display, so on a server the first render fails with an obscure
error. :func:`default_headless_gl` therefore sets ``MUJOCO_GL=egl`` when the variable is unset
and no display is present; it is called once, at the edge (:func:`setup_gl`, which the ``mbvc``
commands and scripts call before any MuJoCo import, never on ``import envs``), and never
overrides a user's choice.

Without a GPU, EGL renders with Mesa's llvmpipe, which cannot share a process with
TensorFlow (see :func:`keep_tensorflow_out` and :func:`check_llvm_clash`). Every env of this
package calls :func:`prepare_render` before its first frame, so plain gymnasium use is safe in
any import order: TensorFlow loaded first is a clear :class:`~mbvc.errors.EnvError`; once Mesa is
loaded, TensorBoard (e.g. through stable-baselines3) skips TensorFlow and a direct
``import tensorflow`` raises :class:`TensorflowAfterMesaError` (an ``ImportError``) instead of
crashing the process.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
import types
from pathlib import Path
from typing import Any

from mbvc.errors import EnvError, MbvcError

logger = logging.getLogger(__name__)

# Where glvnd looks for EGL vendor libraries (10_nvidia.json, 50_mesa.json...).
_EGL_VENDOR_DIRS = (Path("/usr/share/glvnd/egl_vendor.d"), Path("/etc/glvnd/egl_vendor.d"))

INSTALL_HINT = (
    "For headless rendering install EGL (Debian/Ubuntu: `apt-get install libegl1`, with an "
    "NVIDIA or Mesa driver) and set MUJOCO_GL=egl, or install OSMesa (`apt-get install "
    "libosmesa6`, plus `pip install pyopengl`) and set MUJOCO_GL=osmesa; with a display, "
    "MUJOCO_GL=glfw needs `pip install glfw`. Set MUJOCO_GL before mujoco is first imported."
)


def default_headless_gl(environ: dict[str, str] | None = None) -> str | None:
    """Set ``MUJOCO_GL=egl`` if it is unset and there is no display.

    Args:
        environ: mapping to read and update; ``os.environ`` by default (a parameter for tests).

    Returns:
        The backend that was set, or ``None`` when nothing was changed.
    """
    env = os.environ if environ is None else environ
    if env.get("MUJOCO_GL") or sys.platform != "linux":
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    if "mujoco" in sys.modules and environ is None:
        # Too late to matter for this process; say so instead of silently doing nothing.
        logger.warning("mujoco was imported before envs with MUJOCO_GL unset and no display; "
                       "rendering may fail. %s", INSTALL_HINT)
    env["MUJOCO_GL"] = "egl"
    return "egl"


def setup_gl() -> str | None:
    """The process-wide rendering settings; call once, before MuJoCo is first imported.

    Sets ``MUJOCO_GL=egl`` when it is unset and there is no display (:func:`default_headless_gl`)
    and, when rendering will then be on Mesa's CPU rasterizer, keeps TensorBoard (pulled in by
    stable-baselines3) from loading TensorFlow in this process (:func:`keep_tensorflow_out`).
    Worker processes started later inherit ``MUJOCO_GL``.

    Returns:
        ``MUJOCO_GL`` as it now is (None when unset: MuJoCo's default, GLFW).
    """
    default_headless_gl()
    keep_tensorflow_out()
    return os.environ.get("MUJOCO_GL")


def mesa_software_gl(environ: dict[str, str] | None = None) -> bool:
    """Whether MuJoCo will render with Mesa's CPU rasterizer (EGL without a GPU vendor, or OSMesa)."""
    env = os.environ if environ is None else environ
    backend = env.get("MUJOCO_GL", "").lower()
    if backend == "osmesa":
        return True
    if backend != "egl":
        return False
    vendors = [p.name for d in _EGL_VENDOR_DIRS if d.is_dir() for p in d.glob("*.json")]
    return not any("mesa" not in name.lower() for name in vendors)


def keep_tensorflow_out() -> bool:
    """Make TensorBoard use its TensorFlow-free stub when rendering will be on Mesa's CPU rasterizer.

    TensorFlow exports the symbols of its own LLVM copy; in a process that also loads Mesa's
    llvmpipe (which links another LLVM) rendering segfaults, or the process aborts at exit.
    ``torch.utils.tensorboard`` (hence stable-baselines3) imports TensorFlow only because
    TensorBoard looks for it; TensorBoard's documented ``tensorboard.compat.notf`` marker
    module tells it not to. Writing summaries works the same with the stub. Importing
    ``tensorflow`` directly is not prevented.

    Returns:
        Whether the marker was installed.
    """
    if "tensorflow" in sys.modules or not mesa_software_gl():
        return False
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    return True


class TensorflowAfterMesaError(MbvcError, ImportError):
    """``import tensorflow`` in a process that has rendered with Mesa's CPU rasterizer (it would segfault)."""


class _NoTensorflowAfterMesa(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import tensorflow`` a clear ImportError: loading it now would crash the process.

    ``importlib.util.find_spec("tensorflow")`` still answers (tensorflow is installed), so code
    that only probes for it keeps working; the import itself raises.
    """

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        raise TensorflowAfterMesaError(
            "tensorflow cannot be imported in this process: MuJoCo has rendered here with Mesa's CPU "
            "rasterizer (MUJOCO_GL=" + os.environ.get("MUJOCO_GL", "") + ", no GPU EGL vendor), and loading "
            "tensorflow's LLVM copy next to it segfaults. Import tensorflow before the first render "
            "(rendering then raises a clear error), or run the tensorflow code in another process.",
            name="tensorflow")

    def exec_module(self, module: types.ModuleType) -> None:  # pragma: no cover - create_module raised
        self.create_module(module.__spec__)


def prepare_render() -> None:
    """What every env of this package does before it renders (idempotent, cheap).

    * TensorFlow already loaded and Mesa's CPU rasterizer about to render: :class:`EnvError`
      (:func:`check_llvm_clash`) instead of a segfault;
    * on Mesa: TensorBoard's TensorFlow-free marker (:func:`keep_tensorflow_out`), so that
      stable-baselines3 / ``torch.utils.tensorboard`` imported later do not load TensorFlow, and a
      guard that turns a later direct ``import tensorflow`` into :class:`TensorflowAfterMesaError`.

    Raises:
        EnvError: tensorflow is loaded and rendering would be on Mesa's CPU rasterizer.
    """
    backend = os.environ.get("MUJOCO_GL", "")
    if backend in _PREPARED and "tensorflow" not in sys.modules:
        return  # every frame of PixelObservation / Reacher comes here: skip the vendor look-up
    check_llvm_clash()
    if mesa_software_gl():
        keep_tensorflow_out()
        if not any(isinstance(finder, _NoTensorflowAfterMesa) for finder in sys.meta_path):
            sys.meta_path.insert(0, _NoTensorflowAfterMesa())
    _PREPARED.add(backend)


#: MUJOCO_GL values :func:`prepare_render` has run for in this process.
_PREPARED: set[str] = set()


def check_llvm_clash() -> None:
    """Refuse to render on Mesa's CPU rasterizer in a process that has loaded TensorFlow.

    Raises:
        EnvError: rendering would crash the process; the message says how to avoid it.
    """
    if "tensorflow" in sys.modules and mesa_software_gl():
        raise EnvError(
            "tensorflow is loaded in this process and MuJoCo would render with Mesa's CPU "
            "rasterizer (MUJOCO_GL=" + os.environ.get("MUJOCO_GL", "") + ", no GPU EGL vendor): their two "
            "LLVM copies clash and the process would segfault. Render in a process without "
            "tensorflow: import envs before stable_baselines3 / torch.utils.tensorboard (which "
            "then skip tensorflow), run tensorflow code in a subprocess, or collect with "
            "envs.collect (its workers are fresh processes); or use a GPU EGL driver."
        )


def import_mujoco() -> types.ModuleType:
    """Import ``mujoco``, turning a broken OpenGL backend into :class:`EnvError`.

    ``import mujoco`` loads the backend named by ``MUJOCO_GL``; when that backend's system
    library is missing, PyOpenGL fails inside the import with an unrelated-looking
    ``AttributeError`` (``'NoneType' object has no attribute 'glGetError'``) or ``ImportError``.

    Raises:
        EnvError: the import failed; the message names the backend and what to install.
    """
    try:
        import mujoco
    except (ImportError, OSError, AttributeError, RuntimeError) as exc:
        raise EnvError(
            f"importing mujoco failed with MUJOCO_GL={os.environ.get('MUJOCO_GL', '<unset: glfw>')}: "
            f"{type(exc).__name__}: {exc}. " + INSTALL_HINT
        ) from exc
    return mujoco


def make_renderer(model: Any, height: int, width: int) -> Any:
    """Create a ``mujoco.Renderer``, turning OpenGL failures into :class:`EnvError`.

    Raises:
        EnvError: no OpenGL backend could create a context; the message says what to install.
    """
    mujoco = import_mujoco()

    prepare_render()
    backend = os.environ.get("MUJOCO_GL", "<unset: glfw>")
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except (ImportError, OSError, RuntimeError, AttributeError, mujoco.FatalError) as exc:
        unset = ("MUJOCO_GL is unset: call envs.setup_gl() at the start of the program (the mbvc "
                 "commands do) or export MUJOCO_GL=egl. ") if "MUJOCO_GL" not in os.environ else ""
        raise EnvError(
            f"MuJoCo could not open an OpenGL context for a {width}x{height} image "
            f"(MUJOCO_GL={backend}, DISPLAY={os.environ.get('DISPLAY', '<unset>')}): {exc}. "
            + unset + INSTALL_HINT
        ) from exc
