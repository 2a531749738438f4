"""The query camera: intrinsics, image size and lens distortion, from a ``sensor_msgs/CameraInfo``
(live, or read from a bag) or a scene folder. One model for the node and ``eval`` alike.

A CameraInfo describes the raw image: K and D (its distortion). Rectified images
(``image_rect``) are described by P instead (its 3x3 left part), with no distortion. Raw images
with a non-zero D are undistorted whole before localization (``undistorted``: the pinhole image
of the same K, as image_proc's rectification), so that features and networks see the geometry
the map was built from. Undistorting only the keypoints' pixels was measured worse: redkitchen
queries through a wide-angle webcam's lens (plumb_bob k1 -0.34) scored 96.0 % within 5 cm/5°
with undistorted keypoints and 99.2 % with undistorted images, as the pinhole frames
(docs/results.md, bag parity): XFeat's descriptors of a stretched periphery do not match.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
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


@functools.lru_cache(maxsize=8)
def _undistortion_maps(K_bytes: bytes, width: int, height: int, model: str,
                       coefficients: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (H x W, fixed point) from the distorted image to the pinhole one of the
    same K; computed once per camera."""
    K = np.frombuffer(K_bytes, np.float64).reshape(3, 3)
    D = np.asarray(coefficients, np.float64)
    if model == "equidistant":
        return cv2.fisheye.initUndistortRectifyMap(K, D, np.eye(3), K, (width, height), cv2.CV_16SC2)
    return cv2.initUndistortRectifyMap(K, D, np.eye(3), K, (width, height), cv2.CV_16SC2)


def undistorted(image: np.ndarray, camera: Camera, *, nearest: bool = False
                ) -> tuple[np.ndarray, Camera]:
    """(image, camera) as a pinhole camera of the same K sees it: the image resampled through the
    lens model when the camera has a distortion (bilinear, or ``nearest`` for depth; what lies
    outside the distorted image is 0), else both unchanged. image: HxW[x3] uint8 or a depth map
    registered to it (HxW float32 metres)."""
    if camera.distortion is None or not any(camera.distortion.coefficients):
        return image, camera
    h, w = image.shape[:2]
    K = np.ascontiguousarray(camera.K, np.float64)
    maps = _undistortion_maps(K.tobytes(), w, h, camera.distortion.model,
                              tuple(camera.distortion.coefficients))
    return (cv2.remap(image, *maps, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT),
            Camera(camera.K, w, h, None))
