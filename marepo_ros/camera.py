"""The query camera: intrinsics, image size and lens distortion, from a ``sensor_msgs/CameraInfo``
(live, or read from a bag) or a scene folder. One model for the node and ``eval`` alike.

A CameraInfo describes the raw image: K and D (its distortion). Rectified images
(``image_rect``) are described by P instead (its 3x3 left part), with no distortion. Raw images
with a non-zero D keep it: the pixels of keypoints and scene coordinates are undistorted before
the pose is solved (the networks see the image as it is).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import DISTORTION_MODELS, Distortion, check_intrinsics


class CameraError(ValueError):
    """A camera description that cannot be used; ``str()`` says why in one line."""


@dataclass(frozen=True)
class Camera:
    """K: 3x3 float64 intrinsics (pixels); width, height: the image size in pixels (0: not
    given, no size check); distortion: the lens distortion of the image, or None (pinhole)."""
    K: np.ndarray
    width: int = 0
    height: int = 0
    distortion: Distortion | None = None

    def check_image(self, image: np.ndarray) -> None:
        """CameraError when an image's size is not the camera's (a size of 0 is not checked)."""
        h, w = image.shape[:2]
        if self.width and self.height and (w, h) != (self.width, self.height):
            raise CameraError(f"image is {w}x{h} but its CameraInfo is {self.width}x{self.height}")


def has_distortion(d) -> bool:
    """True when any coefficient of a CameraInfo's D is not zero."""
    return any(abs(float(v)) > 1e-9 for v in d)


def camera_from_info(msg, *, rectified: bool = False) -> Camera:
    """The Camera of a ``sensor_msgs/CameraInfo`` (rclpy's, or rosbags' of ROS 2 or ROS 1:
    fields ``k d p`` or ``K D P``); CameraError when it is unusable.

    rectified: the images are rectified (image_rect): the camera is P's 3x3 left part, not K
    (which describes the raw, distorted image), and has no distortion. Raw images with a
    non-zero D get it (``DISTORTION_MODELS``; other models are refused)."""
    k, d, p = ((msg.k, msg.d, msg.p) if hasattr(msg, "k") else (msg.K, msg.D, msg.P))
    K = (np.array(p, np.float64).reshape(3, 4)[:, :3].copy() if rectified
         else np.array(k, np.float64).reshape(3, 3))
    name = "P" if rectified else "K"
    if not np.any(K):
        raise CameraError(f"CameraInfo has {name} all zeros (uncalibrated camera)")
    problem = check_intrinsics(K, msg.width or None, msg.height or None)
    if problem:
        raise CameraError(f"CameraInfo: {problem.replace('K ', name + ' ', 1)}")
    distortion = None
    if not rectified and has_distortion(d):
        model, coefficients = msg.distortion_model or "plumb_bob", [float(v) for v in d]  # "": unset
        if model not in DISTORTION_MODELS:
            raise CameraError(f"CameraInfo distortion model '{model}' is not supported (use "
                              f"{', '.join(DISTORTION_MODELS)}, or rectified images with "
                              f"rectified_images:=true)")
        if (not np.all(np.isfinite(coefficients))
                or len(coefficients) < (4 if model == "equidistant" else 5)):
            raise CameraError(f"CameraInfo D has {len(coefficients)} values, not finite or too "
                              f"few for {model}")
        distortion = Distortion(model, tuple(coefficients))
    return Camera(K, int(msg.width), int(msg.height), distortion)
