"""The Localizer: image + K -> Estimate, composing preprocessing, encoder, head and estimator."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..geometry import Distortion, check_intrinsics, undistort_pixels
from ..io.mapfile import MapFileError, SceneMap
from ..models.networks import state_dict_hash
from ..models.preprocess import cell_centres, preprocess
from .estimator import Estimate, ImageEstimator, PoseEstimator


class Localizer:
    """Relocalizes images in one mapped scene.

    ``localize(image, K)`` takes an HxWx3 RGB or HxW grey uint8 image and its 3x3 K and returns
    an Estimate (``timings_ms`` holds the stages, e.g. preprocess, encoder, head and the
    estimator's, and total), or None when no pose could be computed. Estimators on scene
    coordinates get them from encoder and head; image estimators (``points``) get the image;
    estimators that need both (``needs_image``: ``hybrid``) get both.
    Without an estimator it only computes ``scene_coordinates``.
    """

    def __init__(self, scene_map: SceneMap, encoder: torch.nn.Module | None,
                 estimator: PoseEstimator | ImageEstimator | None, *,
                 device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.scene_map = scene_map
        self.estimator = estimator
        self.encoder = self.head = None
        if hasattr(estimator, "localize"):
            return
        if scene_map.head is None:
            raise MapFileError("this map holds keyframes only (no scene-coordinate head): use the "
                               "'points' estimator")
        encoder_id = state_dict_hash(encoder)
        if encoder_id != scene_map.encoder_id:
            raise MapFileError(f"map was built with encoder {scene_map.encoder} {scene_map.encoder_id}, "
                               f"but the loaded encoder is {encoder.name} {encoder_id}: load the "
                               f"encoder the map was built with")
        self.encoder = encoder.to(self.device).eval()
        self.head = scene_map.head.to(self.device).eval()

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

    def localize(self, image: np.ndarray, K: np.ndarray,
                 distortion: Distortion | None = None) -> Estimate | None:
        """``distortion``: the camera's lens distortion (None: a pinhole image); the pixel
        positions of keypoints and scene coordinates are undistorted before the pose is solved
        (the networks see the image as it is)."""
        if hasattr(self.estimator, "localize"):
            if (problem := check_intrinsics(K)) is not None:
                raise ValueError(problem)
            return self.estimator.localize(image, np.asarray(K, np.float64), distortion)
        t0 = time.perf_counter()
        coords, pixels, K_small, timings = self.scene_coordinates(image, K)
        if distortion is not None:
            pixels = torch.from_numpy(undistort_pixels(pixels.cpu().numpy(), K_small, distortion)
                                      ).to(pixels)
        if getattr(self.estimator, "needs_image", False):         # hybrid: coordinates + image
            est = self.estimator.estimate(coords, pixels, K_small, image=image,
                                          K=np.asarray(K, np.float64), distortion=distortion)
        else:
            est = self.estimator.estimate(coords, pixels, K_small)
        if est is None:
            return None
        est.timings_ms = {**timings, **est.timings_ms, "total": 1e3 * (time.perf_counter() - t0)}
        return est
