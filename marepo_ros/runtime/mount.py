"""The camera's mount on the robot, base_from_camera (4x4 float64, metres: the camera optical
frame in the base frame), and where it comes from (``mount_source``):

    tf         the transform base_frame -> camera optical frame in TF (a URDF's fixed joints,
               published on /tf_static by robot_state_publisher); unknown until TF has it
    parameter  the ``base_from_camera`` parameter
    auto       TF's when TF has it, else the parameter

``CameraMount`` holds the choice; the ROS shell gives it the lookup (tf2_ros' buffer, or a
/tf_static listener) and asks it for the mount of each image's camera frame.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from ..geometry import quat_from_pose

MOUNT_SOURCES = ("auto", "tf", "parameter")


class CameraMount:
    """``resolve(base_frame, camera_frame)`` for each image looks the mount up (sources tf and
    auto); ``current()`` is the mount in use: TF's, the parameter's, or None (source tf while TF
    does not have it: no base pose can be computed). ``use_tf(lookup, via)``: how TF is read,
    ``lookup(base_frame, camera_frame)`` -> base_from_camera (4x4), raising when TF does not have
    it, None where TF cannot be read; ``via`` says which way (for ~/status). Thread-safe."""

    def __init__(self, source: str, base_from_camera: np.ndarray):
        self.source = source
        self._parameter = np.asarray(base_from_camera, np.float64)
        self._lookup: Callable[[str, str], np.ndarray] | None = None
        self._via = "not configured"
        self._lock = threading.Lock()
        self._in_use = "none" if source == "tf" else "parameter"
        self._from_tf: np.ndarray | None = None
        self._frames = ("", "")
        self._error = ""
        self._said: tuple[str, str] | None = None  # (source in use, camera frame) last announced

    def use_tf(self, lookup: Callable[[str, str], np.ndarray] | None, via: str) -> None:
        with self._lock:
            self._lookup, self._via = lookup, via

    def set_parameter(self, base_from_camera: np.ndarray) -> None:
        with self._lock:
            self._parameter = np.asarray(base_from_camera, np.float64)

    def resolve(self, base_frame: str, camera_frame: str) -> tuple[str, str] | None:
        """Look up the mount for an image of ``camera_frame``; (level, line) to log when the
        source in use or the camera frame changed, else None."""
        lookup = self._lookup if self.source != "parameter" else None
        mount, error = None, ""
        if lookup is None and self.source != "parameter":
            error = f"TF cannot be read here ({self._via})"
        elif lookup is not None:
            try:
                mount = np.asarray(lookup(base_frame, camera_frame), np.float64)
            except Exception as exc:  # noqa: BLE001 - tf2 raises several lookup errors
                error = f"no {base_frame} -> {camera_frame} transform in TF ({exc})"
        in_use = "tf" if mount is not None else "none" if self.source == "tf" else "parameter"
        with self._lock:
            self._frames, self._error, self._from_tf = (base_frame, camera_frame), error, mount
            self._in_use, parameter = in_use, self._parameter
            if (in_use, camera_frame) == self._said:
                return None
            self._said = (in_use, camera_frame)
        if in_use == "tf":
            return "info", f"camera mount from TF ({self._via}): {base_frame} -> {camera_frame} {_pose7(mount)}"
        if in_use == "parameter":
            why = f"mount_source auto: {error}" if error else "mount_source parameter"
            return ("warning" if error else "info",
                    f"camera mount from the base_from_camera parameter ({why}) {_pose7(parameter)}")
        return "warning", f"camera mount unknown (mount_source tf): {error}; frames are not localized until TF has it"

    def current(self) -> np.ndarray | None:
        """base_from_camera (4x4) in use, or None (source tf, TF does not have it)."""
        with self._lock:
            return {"tf": self._from_tf, "parameter": self._parameter}.get(self._in_use)

    def status(self) -> dict:
        """~/status ``mount``: the source asked for and the one in use, how TF is read, the
        frames of the last lookup, the mount as x y z qx qy qz qw (m), the last lookup error."""
        mount = self.current()
        with self._lock:
            via = self._via if self.source != "parameter" else "not read (mount_source parameter)"
            return {"mount_source": self.source, "source": self._in_use, "tf": via,
                    "base_frame": self._frames[0], "camera_frame": self._frames[1],
                    "base_from_camera": None if mount is None else _pose7(mount),
                    "error": self._error}


def _pose7(pose: np.ndarray) -> list[float]:
    """A 4x4 pose as [x, y, z, qx, qy, qz, qw], rounded to 1e-6."""
    t, q = quat_from_pose(pose)
    return [round(float(v), 6) for v in (*t, *q)]
