"""SE(3) poses and pinhole cameras (numpy, float64).

A pose is a 4x4 matrix named ``<to>_from_<from>``: ``map_from_cam`` maps points in the camera
frame to the map frame. Camera axes are OpenCV's (x right, y down, z forward), which is the ROS
optical frame (REP-103). Units: metres and radians.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


def make_pose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """4x4 pose from rotation ``R`` (3x3) and translation ``t`` (3,)."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, dtype=np.float64).reshape(3)
    return T


def invert_pose(a_from_b: np.ndarray) -> np.ndarray:
    """``b_from_a`` for a rigid 4x4 ``a_from_b`` (exact, no general matrix inverse)."""
    R, t = a_from_b[:3, :3], a_from_b[:3, 3]
    return make_pose(R.T, -R.T @ t)


def transform_points(a_from_b: np.ndarray, points_b: np.ndarray) -> np.ndarray:
    """Apply a 4x4 pose to points (..., 3)."""
    return points_b @ a_from_b[:3, :3].T + a_from_b[:3, 3]


def is_valid_pose(T: np.ndarray, tol: float = 1e-3) -> bool:
    """True when ``T`` is a finite 4x4 rigid transform (orthonormal R, det +1, last row 0001)."""
    T = np.asarray(T)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[:3, :3]
    return (np.allclose(R.T @ R, np.eye(3), atol=tol) and abs(np.linalg.det(R) - 1) < tol
            and np.allclose(T[3], [0, 0, 0, 1], atol=tol))


def pose_from_quat(t_xyz: np.ndarray, q_xyzw: np.ndarray) -> np.ndarray:
    """4x4 pose from translation (3,) and quaternion (x, y, z, w) as ROS orders it."""
    return make_pose(Rotation.from_quat(np.asarray(q_xyzw, float)).as_matrix(), t_xyz)


def quat_from_pose(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(translation (3,), quaternion (x, y, z, w)) of a 4x4 pose."""
    return T[:3, 3].copy(), Rotation.from_matrix(T[:3, :3]).as_quat()


def nearest_rotation(M: np.ndarray) -> np.ndarray:
    """The rotation matrix closest to a 3x3 ``M`` in the Frobenius norm (SVD projection)."""
    U, _, Vt = np.linalg.svd(M)
    return U @ np.diag([1.0, 1.0, np.linalg.det(U @ Vt)]) @ Vt


def rotation_angle(R: np.ndarray) -> float:
    """Angle (radians) of a 3x3 rotation, accurate for small angles: atan2(sin, cos) with
    sin = |vee(R - R^T)| / 2 and cos = (trace R - 1) / 2 (arccos of the trace alone loses
    precision near 0 and turns a slightly non-orthonormal R into a false angle)."""
    sin = 0.5 * np.linalg.norm([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    cos = 0.5 * (np.trace(R) - 1.0)
    return float(np.arctan2(sin, cos))


def pose_error(map_from_cam_est: np.ndarray, map_from_cam_gt: np.ndarray) -> tuple[float, float]:
    """(translation error in metres between camera centres, rotation error in degrees)."""
    dt = float(np.linalg.norm(map_from_cam_est[:3, 3] - map_from_cam_gt[:3, 3]))
    R_rel = map_from_cam_est[:3, :3].T @ map_from_cam_gt[:3, :3]
    return dt, float(np.degrees(rotation_angle(R_rel)))


def scale_intrinsics(K: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """K of an image resized by (sx, sy), with pixel centres kept consistent.

    OpenCV convention (pixel centres at integer coordinates): c' = (c + 0.5) * s - 0.5.
    """
    sy = sx if sy is None else sy
    K2 = np.array(K, dtype=np.float64, copy=True)
    K2[0, 0] *= sx
    K2[1, 1] *= sy
    K2[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K2[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K2


def check_intrinsics(K: np.ndarray, width: int | None = None, height: int | None = None) -> str | None:
    """Why ``K`` is unusable as a pinhole matrix, or None when it is fine."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        return f"K must be 3x3, got shape {K.shape}"
    if not np.all(np.isfinite(K)):
        return "K contains NaN or inf"
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        return f"K has non-positive focal length (fx={K[0, 0]:g}, fy={K[1, 1]:g})"
    if not np.allclose(K[2], [0, 0, 1]) or K[1, 0] != 0:
        return "K must have the form [[fx, s, cx], [0, fy, cy], [0, 0, 1]]"
    if width is not None and height is not None:
        if not (0 <= K[0, 2] <= width and 0 <= K[1, 2] <= height):
            return (f"principal point ({K[0, 2]:g}, {K[1, 2]:g}) lies outside the "
                    f"{width}x{height} image")
    return None


def project(K: np.ndarray, points_cam: np.ndarray) -> np.ndarray:
    """Pixel coordinates (..., 2) of camera-frame points (..., 3); z must be > 0."""
    uvw = points_cam @ K.T
    return uvw[..., :2] / uvw[..., 2:3]


def pixel_rays(K: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Camera-frame rays (..., 3) with z = 1 of pixels (..., 2): inv(K) [u, v, 1], skew included."""
    pixels = np.asarray(pixels, dtype=np.float64)
    uv1 = np.concatenate([pixels, np.ones_like(pixels[..., :1])], axis=-1)
    return uv1 @ np.linalg.inv(np.asarray(K, dtype=np.float64)).T


def backproject(K: np.ndarray, pixels: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) of pixels (..., 2) at z-depth (...,) metres."""
    return pixel_rays(K, pixels) * np.asarray(depth, dtype=np.float64)[..., None]


DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")  # ROS CameraInfo names


@dataclass(frozen=True)
class Distortion:
    """Lens distortion of a camera as ROS's CameraInfo gives it: ``model`` (one of
    ``DISTORTION_MODELS``: OpenCV's radial-tangential with 5 or 8 coefficients, or its fisheye
    model with 4) and ``coefficients`` (its D)."""
    model: str
    coefficients: tuple[float, ...]


def undistort_pixels(pixels_N2: np.ndarray, K: np.ndarray, distortion: Distortion | None) -> np.ndarray:
    """Pixels (N, 2) of a distorted image as the pixels of the ideal pinhole camera K would see
    them (OpenCV's iterative undistortion); unchanged without distortion. ``K`` may be the
    intrinsics of a resized image: the coefficients act on normalised coordinates."""
    if distortion is None or not any(distortion.coefficients):
        return np.asarray(pixels_N2, np.float64)
    import cv2
    pts = np.asarray(pixels_N2, np.float64).reshape(-1, 1, 2)
    D = np.asarray(distortion.coefficients, np.float64)
    K = np.asarray(K, np.float64)
    if distortion.model == "equidistant":
        out = cv2.fisheye.undistortPoints(pts, K, D, P=K)
    else:
        out = cv2.undistortPoints(pts, K, D, P=K)
    return out.reshape(-1, 2)
