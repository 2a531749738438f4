"""Classical baseline: SIFT features lifted to 3D with depth, matched 2D-3D, solved by PnP.

Mapping (``build``): SIFT on every mapping image, depth registered to the RGB camera, each
keypoint with a smooth valid depth lifted to a map-frame 3D point; all RootSIFT descriptors go
into one FLANN kd-tree. Localization (``localize``): SIFT on the query, k nearest map
descriptors per query keypoint, a Lowe ratio test whose second neighbour is the nearest one
belonging to a *different* 3D location (adjacent mapping frames see the same point, so the
plain first/second ratio would reject exactly the best-supported points), AP3P RANSAC and
Levenberg-Marquardt refinement on the inliers.

OpenCV threads are left to the caller (``cv2.setNumThreads``).
"""
from __future__ import annotations

import time
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..geometry import invert_pose, make_pose
from ..io.dataset import Frame
from ..io.depth import register_depth
from ..localization.estimate import Estimate
from ..localization.matching import distinct_ratio_test
from ..localization.points import inlier_confidence
from ..localization.ransac import map_frame_covariance
from ..mapping.feature_map import lift_with_depth
from ..models.preprocess import to_grey


def root_sift(desc_ND: np.ndarray) -> np.ndarray:
    """RootSIFT (Arandjelovic & Zisserman 2012): L1-normalise, then square-root.

    desc_ND: (N, 128) SIFT descriptors. Returns (N, 128) float32.
    """
    d = np.asarray(desc_ND, dtype=np.float32)
    return np.sqrt(d / (d.sum(axis=1, keepdims=True) + 1e-7))


class SiftPnPBaseline:
    """SIFT + depth + PnP relocalizer (the classical reference the benchmark compares against).

    Keyword options:
        max_keypoints: SIFT keypoints per image (mapping and query).
        max_depth_jump: a keypoint is lifted only when its 3x3 depth neighbourhood is valid and
            spans less than this fraction of its depth (rejects depth discontinuities).
        knn, ratio, distinct_radius_m: ratio test of the best map descriptor against the best
            one among the ``knn`` nearest whose 3D point lies more than ``distinct_radius_m``
            away (accepted outright when there is none).
        flann_trees, flann_checks: kd-tree forest size and search effort.
        reprojection_px, ransac_iterations: AP3P RANSAC inlier threshold and iteration cap.
        min_inliers: fewer inliers give confidence 0.
    """
    name = "sift_pnp"

    def __init__(self, *, max_keypoints: int = 1500, max_depth_jump: float = 0.05,
                 knn: int = 8, ratio: float = 0.8, distinct_radius_m: float = 0.1,
                 flann_trees: int = 4, flann_checks: int = 16, reprojection_px: float = 6.0,
                 ransac_iterations: int = 2000, min_inliers: int = 12):
        self.max_keypoints = max_keypoints
        self.max_depth_jump = max_depth_jump
        self.knn = knn
        self.ratio = ratio
        self.distinct_radius_m = distinct_radius_m
        self.flann_trees = flann_trees
        self.flann_checks = flann_checks
        self.reprojection_px = reprojection_px
        self.ransac_iterations = ransac_iterations
        self.min_inliers = min_inliers
        self._sift = cv2.SIFT_create(nfeatures=max_keypoints)
        self.points_N3: np.ndarray | None = None       # map-frame points, float64 metres
        self.descriptors_ND: np.ndarray | None = None  # RootSIFT, float32
        self._index = None

    @property
    def n_points(self) -> int:
        """Number of 3D points in the map (0 before ``build``)."""
        return 0 if self.points_N3 is None else len(self.points_N3)

    def _detect(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(keypoints (N, 2) float64 pixels, RootSIFT descriptors (N, 128) float32)."""
        kps, desc = self._sift.detectAndCompute(to_grey(image_rgb), None)
        if desc is None or len(kps) == 0:
            return np.zeros((0, 2)), np.zeros((0, 128), np.float32)
        return np.array([k.pt for k in kps], np.float64), root_sift(desc)

    def build(self, frames: Sequence[Frame], K: np.ndarray, depth_K: np.ndarray,
              *, progress: bool = True) -> None:
        """Build the map from mapping frames with depth.

        frames: ``Frame``s with images, depth and ``map_from_cam``; frames without depth are
            skipped. K: (3, 3) RGB intrinsics; depth_K: (3, 3) depth-camera intrinsics (the
            two cameras are taken to share one pose).
        Raises ValueError when no keypoint could be lifted to 3D.
        """
        points, descs = [], []
        for frame in tqdm(frames, desc="SIFT map", unit="frame", disable=not progress):
            depth = frame.load_depth()
            if depth is None:
                continue
            image = frame.load_image()
            H, W = image.shape[:2]
            pixels, desc = self._detect(image)
            depth_rgb = register_depth(depth, depth_K, K, (W, H))
            pts = lift_with_depth(pixels, depth_rgb, K, frame.map_from_cam, self.max_depth_jump)
            ok = ~np.isnan(pts[:, 0])
            points.append(pts[ok])
            descs.append(desc[ok])
        n = sum(len(p) for p in points)
        if n == 0:
            raise ValueError("SIFT map is empty: no mapping frame has keypoints with valid depth")
        self.points_N3 = np.concatenate(points)
        self.descriptors_ND = np.ascontiguousarray(np.concatenate(descs), dtype=np.float32)
        self._index = cv2.flann_Index(self.descriptors_ND,
                                      dict(algorithm=1, trees=self.flann_trees))  # kd-tree

    def match(self, descriptors_ND: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices into the query descriptors, indices of their map points) passing the
        3D-aware ratio test."""
        if self._index is None:
            raise RuntimeError("SiftPnPBaseline.build() must run before matching")
        knn = min(self.knn, self.n_points)
        idx, dist2 = self._index.knnSearch(descriptors_ND, knn,
                                           params=dict(checks=self.flann_checks))
        idx = idx.reshape(len(descriptors_ND), knn)
        dist = np.sqrt(np.maximum(dist2.reshape(idx.shape), 0))
        return distinct_ratio_test(idx, dist, self.points_N3, self.ratio, self.distinct_radius_m)

    def localize(self, image_rgb: np.ndarray, K: np.ndarray) -> Estimate | None:
        """Pose of a query image, or None when fewer than 4 matches or PnP fails.

        image_rgb: (H, W, 3) uint8 RGB (or (H, W) grey); K: (3, 3) its intrinsics (OpenCV's
            PnP ignores the skew K[0, 1]).
        Returns an ``Estimate`` with camera-to-map pose, the Gauss-Newton covariance of
        ``localization.ransac.map_frame_covariance`` (map points taken as exact, so optimistic
        where the depth is noisy), inliers among the ratio-test matches, confidence
        ``1 - exp(-(n_inliers - min_inliers) / 30)`` (0 below ``min_inliers``) and timings
        (``sift``, ``match``, ``pnp``, ``total``, milliseconds).
        """
        K = np.asarray(K, dtype=np.float64)
        t0 = time.perf_counter()
        pixels, desc = self._detect(image_rgb)
        t1 = time.perf_counter()
        if len(desc) < 4:
            return None
        qi, mi = self.match(desc)
        t2 = time.perf_counter()
        if len(qi) < 4:
            return None
        obj, img = self.points_N3[mi], pixels[qi]
        ok, rvec, tvec, inl = cv2.solvePnPRansac(
            obj, img, K, None, iterationsCount=self.ransac_iterations,
            reprojectionError=self.reprojection_px, confidence=0.9999, flags=cv2.SOLVEPNP_AP3P)
        if not ok or inl is None or len(inl) < 4:
            return None
        inl = inl.ravel()
        rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K, None, rvec, tvec)
        R, t = cv2.Rodrigues(rvec)[0], tvec.ravel()
        map_from_cam = invert_pose(make_pose(R, t))
        cov = map_frame_covariance(*(torch.from_numpy(np.asarray(a, np.float64))
                                     for a in (R, t, obj[inl], img[inl], K)))
        t3 = time.perf_counter()
        n = len(inl)
        conf = inlier_confidence(n, self.min_inliers)
        timings = {"sift": t1 - t0, "match": t2 - t1, "pnp": t3 - t2, "total": t3 - t0}
        return Estimate(map_from_cam=map_from_cam, covariance=cov, n_inliers=n,
                        inlier_ratio=n / len(qi), confidence=conf,
                        timings_ms={k: 1000.0 * v for k, v in timings.items()})
