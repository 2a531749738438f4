"""The pose-estimator interface (``PoseEstimator`` -> ``Estimate``) and the registry of
estimators by name (``ESTIMATORS``, ``make_estimator``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from ..geometry import Distortion, check_intrinsics

if TYPE_CHECKING:  # the map file module imports the networks; only its type is needed here
    from ..io.mapfile import SceneMap


@dataclass
class Estimate:
    """One camera pose estimate.

    map_from_cam: 4x4 float64, camera-to-map (metres).
    covariance: 6x6 float64 over (x, y, z, rot_x, rot_y, rot_z) in the map frame, metres^2 and
        rad^2, as ``geometry_msgs/PoseWithCovariance`` orders it.
    n_inliers / inlier_ratio: support of the pose among the input correspondences.
    confidence: in [0, 1]; the node publishes only above its threshold.
    timings_ms: per-stage wall times in milliseconds.
    inliers: (map points (N, 3), pixels (N, 2)) the pose was fitted to, where an estimator
        keeps them (``points``, for ``hybrid``), else None.
    """
    map_from_cam: np.ndarray
    covariance: np.ndarray
    n_inliers: int
    inlier_ratio: float
    confidence: float
    timings_ms: dict[str, float] = field(default_factory=dict)
    inliers: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)


class PoseEstimator(Protocol):
    """Camera pose from scene coordinates.

    ``estimate`` takes
        coords_N3: (N, 3) float tensor, predicted scene coordinates in the map frame (metres);
        pixels_N2: (N, 2) float tensor, the image positions (u, v) those coordinates belong to,
            in pixels of the image whose intrinsics are ``K``;
        K: (3, 3) float64 numpy intrinsics;
    and returns an ``Estimate`` (its pose may be poor: check ``confidence``), or None when no
    pose could be computed at all.
    """
    name: str

    def estimate(self, coords_N3: torch.Tensor, pixels_N2: torch.Tensor,
                 K: np.ndarray) -> Estimate | None: ...


def check_correspondences(coords_N3: torch.Tensor, pixels_N2: torch.Tensor, K: np.ndarray) -> int:
    """N, after checking the shapes of an estimator's inputs and K (ValueError saying why not)."""
    n = len(coords_N3)
    if coords_N3.shape != (n, 3) or pixels_N2.shape != (n, 2):
        raise ValueError(f"need coords (N, 3) and pixels (N, 2), got "
                         f"{tuple(coords_N3.shape)} and {tuple(pixels_N2.shape)}")
    if (problem := check_intrinsics(K)) is not None:
        raise ValueError(problem)
    return n


class ImageEstimator(Protocol):
    """Camera pose straight from an image (estimators that need no scene coordinates).

    ``localize`` takes an HxWx3 RGB or HxW grey uint8 image, its (3, 3) float64 K and its lens
    distortion (``geometry.Distortion`` or None) and returns an ``Estimate`` or None.
    """
    name: str

    def localize(self, image: np.ndarray, K: np.ndarray,
                 distortion: Distortion | None = None) -> Estimate | None: ...


MIN_CONFIDENCE = 0.05   # the node publishes estimates from this confidence on (its default)
REGRESSORS = ("marepo", "marepo+refine", "grr", "grr+refine")   # pose regressors (+ refined)
KEYFRAME_REFINED = ("marepo+kf", "grr+kf")     # a regressor's pose refined on nearby keyframes
ESTIMATORS = ("auto", "ransac", *REGRESSORS, *KEYFRAME_REFINED, "points", "hybrid")
NEEDS_HEAD = {"ransac", *REGRESSORS, *KEYFRAME_REFINED, "hybrid"}  # on scene coordinates
NEEDS_KEYFRAMES = {"points", "hybrid", *KEYFRAME_REFINED}


def resolve_estimator(name: str, scene_map: SceneMap | None) -> str:
    """The estimator ``auto`` stands for with this map: ``points`` when it has a keyframe
    feature map, else ``ransac``. Other names are returned unchanged. On redkitchen ``hybrid``
    was as accurate as ``points`` (99.6 against 99.2 % within 5 cm/5°, no wrong pose published
    by either) at about twice the time on a CPU (two networks), so ``auto`` stays ``points``;
    see docs/results.md."""
    if name != "auto":
        return name
    return "points" if scene_map is not None and scene_map.feature_map is not None else "ransac"


def make_estimator(name: str, *, short_side: int = 480, scene_map: SceneMap | None = None,
                   device: str = "cpu", **options) -> PoseEstimator | ImageEstimator:
    """A pose estimator by name, for images of the given short side (pixels).

    ``ransac``: DSAC*'s 10 px inlier threshold is defined on 480-pixel images; it is scaled to
    ``short_side`` unless ``inlier_threshold_px`` is given (the same for ``marepo+refine``).
    ``backend``: ``poselib`` (C++, the default on a CPU) or ``torch`` (batched, the default on
    other devices).
    ``marepo``, ``marepo+refine``: the regressor fine-tuned into ``scene_map`` (marepo_S) when
    it has one, else the shipped one, unless ``regressor`` is given; ``grr``, ``grr+refine``:
    the shipped GRLoc regressor (``translation``: its "rays" or "points" form).
    ``marepo+kf``, ``grr+kf``: the regressed pose picks the nearest keyframes of the map's
    feature map, whose matches give the pose (``hybrid``'s decision, no global retrieval).
    ``points``: the map's keyframe feature map (ValueError when the map has none).
    ``hybrid``: ``ransac`` on the head and ``points`` on the feature map, checking each other
    (needs both).
    ``auto``: see ``resolve_estimator``.
    """
    name = resolve_estimator(name, scene_map)
    backend = options.pop("backend", None)       # of ransac (alone or in hybrid); others: ignored
    if name in NEEDS_KEYFRAMES and (scene_map is None or scene_map.feature_map is None):
        raise ValueError(f"estimator '{name}' needs a map with a keyframe feature map (maps of "
                         "format version 1 have none: rebuild the map, or use ransac)")
    if name in NEEDS_HEAD and scene_map is not None and scene_map.head is None:
        raise ValueError(f"estimator '{name}' needs a map with a scene-coordinate head; this map "
                         f"holds keyframes only (use 'points')")
    if name == "points":
        from ..models.xfeat import XFeatExtractor
        from .points import PointsEstimator
        return PointsEstimator(scene_map.feature_map, XFeatExtractor(device=device), **options)
    if name == "hybrid":
        from .hybrid import HybridEstimator
        scr = make_estimator("ransac", short_side=short_side, scene_map=scene_map, device=device,
                             backend=backend)
        points = make_estimator("points", scene_map=scene_map, device=device)
        return HybridEstimator(scr, points, **options)
    if name in KEYFRAME_REFINED:
        from .hybrid import HybridEstimator
        regressor = make_estimator(name[:-len("+kf")], short_side=short_side,
                                   scene_map=scene_map, device=device, **options)
        points = make_estimator("points", scene_map=scene_map, device=device)
        return HybridEstimator(regressor, points, retry_globally=False, name=name)
    options.setdefault("inlier_threshold_px", 10.0 * short_side / 480)
    if name == "ransac":
        if (backend or ("poselib" if torch.device(device).type == "cpu" else "torch")) == "poselib":
            from .pnp import PoselibRansacEstimator
            return PoselibRansacEstimator(**options)
        from .ransac import RansacEstimator
        return RansacEstimator(**options)
    if name in REGRESSORS:
        from .marepo import MarepoEstimator, regressor_for_map
        kind = name.split("+")[0]
        translation = options.pop("translation", None)
        if "regressor" not in options:                                # on the configured device
            options["regressor"] = regressor_for_map(scene_map, device, kind)
        if translation is not None:
            options["regressor"].translation = translation
        return MarepoEstimator(refine=name.endswith("+refine"), **options)
    raise ValueError(f"unknown estimator '{name}' (available: {', '.join(ESTIMATORS)})")
