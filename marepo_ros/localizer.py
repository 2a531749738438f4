"""The Localizer: image + K -> Estimate, composing preprocessing, encoder, head and estimator."""
from __future__ import annotations

import time

import numpy as np
import torch

from .estimator import Estimate, PoseEstimator
from .geometry import check_intrinsics
from .mapfile import MapFileError, SceneMap
from .networks import Encoder, state_dict_hash
from .preprocess import cell_centres, preprocess


ESTIMATORS = ("ransac", "marepo", "marepo+refine")


def make_estimator(name: str, *, short_side: int = 480, scene_map: SceneMap | None = None,
                   **options) -> PoseEstimator:
    """A pose estimator by name, for images of the given short side (pixels).

    ``ransac``: DSAC*'s 10 px inlier threshold is defined on 480-pixel images; it is scaled to
    ``short_side`` unless ``inlier_threshold_px`` is given (the same for ``marepo+refine``).
    ``marepo``, ``marepo+refine``: the regressor fine-tuned into ``scene_map`` (marepo_S) when
    it has one, else the shipped one, unless ``regressor`` is given.
    """
    options.setdefault("inlier_threshold_px", 10.0 * short_side / 480)
    if name == "ransac":
        from .ransac import RansacEstimator
        return RansacEstimator(**options)
    if name in ("marepo", "marepo+refine"):
        from .marepo_estimator import MarepoEstimator, regressor_for_map
        if "regressor" not in options:
            options["regressor"] = regressor_for_map(scene_map)
        return MarepoEstimator(refine=name == "marepo+refine", **options)
    raise ValueError(f"unknown estimator '{name}' (available: {', '.join(ESTIMATORS)})")


class Localizer:
    """Relocalizes images in one mapped scene.

    ``localize(image, K)`` takes an HxWx3 RGB or HxW grey uint8 image and its 3x3 K and returns
    an Estimate (``timings_ms`` holds preprocess, encoder, head, the estimator's stages and
    total), or None when no pose could be computed. Without an estimator it only computes
    ``scene_coordinates``.
    """

    def __init__(self, scene_map: SceneMap, encoder: Encoder, estimator: PoseEstimator | None, *,
                 device: str | torch.device = "cpu"):
        encoder_id = state_dict_hash(encoder)
        if encoder_id != scene_map.encoder_id:
            raise MapFileError(f"map was built with encoder {scene_map.encoder_id}, but the loaded "
                               f"encoder is {encoder_id}: load the encoder the map was built with")
        self.device = torch.device(device)
        self.encoder = encoder.to(self.device).eval()
        self.head = scene_map.head.to(self.device).eval()
        self.scene_map = scene_map
        self.estimator = estimator

    def scene_coordinates(self, image: np.ndarray, K: np.ndarray
                          ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, dict]:
        """(coords_N3, pixels_N2, K of the resized image, timings_ms) for one image."""
        problem = check_intrinsics(K)
        if problem:
            raise ValueError(problem)
        t0 = time.perf_counter()
        x, K_small = preprocess(image, K, self.scene_map.short_side)
        t1 = time.perf_counter()
        with torch.inference_mode():
            feats = self.encoder(x.to(self.device))
            t2 = time.perf_counter()
            coords = self.head(feats)[0]  # 3 x h x w
        t3 = time.perf_counter()
        h, w = coords.shape[1:]
        coords_N3 = coords.flatten(1).T.float()
        pixels_N2 = cell_centres(h, w).to(coords_N3.device)
        timings = {"preprocess": 1e3 * (t1 - t0), "encoder": 1e3 * (t2 - t1), "head": 1e3 * (t3 - t2)}
        return coords_N3, pixels_N2, K_small, timings

    def localize(self, image: np.ndarray, K: np.ndarray) -> Estimate | None:
        t0 = time.perf_counter()
        coords, pixels, K_small, timings = self.scene_coordinates(image, K)
        est = self.estimator.estimate(coords, pixels, K_small)
        if est is None:
            return None
        est.timings_ms = {**timings, **est.timings_ms, "total": 1e3 * (time.perf_counter() - t0)}
        return est
