"""Headless OpenGL backend selection for MuJoCo / dm_control rendering.

dm_control fixes its rendering backend when ``dm_control._render`` is first imported (any
``from dm_control import suite`` does that), reading ``MUJOCO_GL``; PyOpenGL likewise fixes
its platform from ``PYOPENGL_PLATFORM`` on first import. So the backend must be chosen
*before* dm_control is imported:

* :func:`ensure_gl_env` (no imports, called when :mod:`envs` is imported and before every
  dm_control import) sets ``MUJOCO_GL=egl`` on Linux when the user left it unset. Without it
  dm_control would pick GLFW, which needs an X display. Environment variables reach the
  subprocesses of an async vector env.
* :func:`import_dm_suite` imports ``dm_control.suite``; if the automatically chosen EGL
  backend cannot even be imported it switches to OSMesa and imports again, and as a last resort
  imports dm_control with rendering disabled (with a warning) so state tasks still work.
* :func:`select_gl_backend` (called lazily, only when pixels are requested) renders one tiny
  frame as a self-test; if an automatically chosen EGL backend fails, it falls back to
  OSMesa (``MUJOCO_GL=PYOPENGL_PLATFORM=osmesa``). A backend the user set explicitly is
  respected: a failure then raises a RuntimeError saying what to try.
"""

from __future__ import annotations

import os
import sys
import types
import warnings

_AUTO_FLAG = "RLAUX_GL_AUTO"  # "1" when rlaux (not the user) chose MUJOCO_GL; inherited by workers
_SELF_TEST_OK: str | None = None  # backend that passed the self-test in this process
_IMPORT_FAILURES: list[str] = []  # why automatically chosen backends failed to import
_ADVICE = (
    "On a headless machine use MUJOCO_GL=egl (needs EGL / a GPU driver) or MUJOCO_GL=osmesa "
    "with PYOPENGL_PLATFORM=osmesa (needs libosmesa6)."
)

_TEST_XML = """
<mujoco>
  <worldbody>
    <light pos="0 0 1"/>
    <geom type="sphere" size="0.1" rgba="1 0 0 1"/>
    <camera name="c" pos="0 -1 0" xyaxes="1 0 0 0 0 1"/>
  </worldbody>
</mujoco>
"""


def ensure_gl_env() -> None:
    """Default ``MUJOCO_GL`` to ``egl`` on Linux if unset and dm_control is not yet imported.

    Only touches ``os.environ``; imports nothing.
    """
    if "MUJOCO_GL" in os.environ or "dm_control._render" in sys.modules:
        return
    if sys.platform.startswith("linux"):
        os.environ["MUJOCO_GL"] = "egl"
        os.environ[_AUTO_FLAG] = "1"


def _auto_chosen() -> bool:
    return os.environ.get(_AUTO_FLAG) == "1"


def _purge_gl_modules() -> types.ModuleType | None:
    """Forget dm_control's renderer and PyOpenGL so they can be imported with another backend.

    Returns the previously imported ``dm_control._render`` module (if any) so references to it
    held by already-imported dm_control modules can be redirected.
    """
    old = sys.modules.get("dm_control._render")
    for name in list(sys.modules):
        if (
            name == "OpenGL"
            or name.startswith("OpenGL.")
            or name.startswith("dm_control._render")
            or name.startswith("mujoco.egl")
            or name.startswith("mujoco.osmesa")
        ):
            del sys.modules[name]
    return old


def _switch_backend(backend: str) -> None:
    """Re-import dm_control's renderer with ``backend`` ("osmesa" or "disable"), patching the
    references that already-imported dm_control modules hold to the old renderer module."""
    old = _purge_gl_modules()
    os.environ["MUJOCO_GL"] = backend
    if backend == "osmesa":
        os.environ["PYOPENGL_PLATFORM"] = "osmesa"
    else:
        os.environ.pop("PYOPENGL_PLATFORM", None)
    import dm_control._render as new_render

    if old is not None:
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").startswith("dm_control") and getattr(mod, "_render", None) is old:
                mod._render = new_render


def _forget_dm_control() -> None:
    for name in list(sys.modules):
        if name.startswith("dm_control"):
            del sys.modules[name]


def import_dm_suite() -> types.ModuleType:
    """Import and return ``dm_control.suite`` with a headless-safe GL backend.

    If the automatically chosen EGL backend cannot be imported, tries OSMesa, and then imports
    dm_control with rendering disabled (state observations and names still work; a later
    :func:`select_gl_backend` reports why pixels cannot be rendered).
    """
    ensure_gl_env()
    try:
        from dm_control import suite

        return suite
    except Exception as exc:  # ImportError, RuntimeError, or PyOpenGL's AttributeError
        if not (_auto_chosen() and os.environ.get("MUJOCO_GL") == "egl"):
            raise RuntimeError(
                f"dm_control could not be imported with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r}: "
                f"{exc!r}. {_ADVICE}"
            ) from exc
        _IMPORT_FAILURES.append(f"egl: {exc!r}")
    for backend in ("osmesa", "disable"):
        _forget_dm_control()
        try:
            _switch_backend(backend)
            from dm_control import suite
        except Exception as exc:  # pragma: no cover - depends on the machine's GL stack
            _IMPORT_FAILURES.append(f"{backend}: {exc!r}")
            continue
        if backend == "disable":
            warnings.warn(
                f"No headless OpenGL backend could be loaded ({'; '.join(_IMPORT_FAILURES)}); "
                "dm_control rendering is disabled (state observations still work).",
                RuntimeWarning,
                stacklevel=2,
            )
        return suite
    raise RuntimeError(f"dm_control could not be imported ({'; '.join(_IMPORT_FAILURES)}). {_ADVICE}")


def _self_test() -> None:
    """Render one 8x8 frame of a one-sphere scene; raises on any rendering failure."""
    import numpy as np
    from dm_control import mujoco as dm_mujoco

    physics = dm_mujoco.Physics.from_xml_string(_TEST_XML)
    try:
        frame = physics.render(height=8, width=8, camera_id=0)
        if frame.shape != (8, 8, 3) or frame.dtype != np.uint8:
            raise RuntimeError(f"self-test frame has shape {frame.shape} dtype {frame.dtype}")
    finally:
        physics.free()


def select_gl_backend() -> str:
    """Make sure MuJoCo can render headless here; return the backend name ("egl", "osmesa", ...).

    Runs a one-frame self-test once per process. If EGL was chosen automatically and fails,
    switches to OSMesa (``MUJOCO_GL`` and ``PYOPENGL_PLATFORM`` = ``osmesa``) and tests again.
    Raises RuntimeError with instructions when no backend works.
    """
    global _SELF_TEST_OK
    if _SELF_TEST_OK is not None:
        return _SELF_TEST_OK
    import_dm_suite()
    import dm_control._render as render_mod

    try:
        _self_test()
    except Exception as exc:
        backend = render_mod.BACKEND
        earlier = f" (earlier: {'; '.join(_IMPORT_FAILURES)})" if _IMPORT_FAILURES else ""
        if not (_auto_chosen() and backend == "egl"):
            raise RuntimeError(
                f"MuJoCo rendering failed with MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} "
                f"(dm_control backend {backend!r}): {exc!r}{earlier}. {_ADVICE}"
            ) from exc
        try:
            _switch_backend("osmesa")
            _self_test()
        except Exception as exc2:
            raise RuntimeError(
                f"MuJoCo rendering failed with EGL ({exc!r}) and with OSMesa ({exc2!r}). {_ADVICE}"
            ) from exc2
    import dm_control._render as render_mod

    _SELF_TEST_OK = str(render_mod.BACKEND)
    return _SELF_TEST_OK
