"""The one way to build a localizer: ``Pipeline`` = a map + a typed configuration.

``Pipeline.from_file(map_path, PipelineConfig(...))`` loads the map, the encoder the map names
(or the one the configuration names, checked against the map) and the estimator of the table
(``registry.ESTIMATORS``) together; ``localize(image, camera)`` gives the pose of a query. The
node, ``eval`` (folders and bags), ``replay``, the benchmarks and the demo all build this and
nothing else.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..camera import Camera, undistorted
from ..geometry import check_intrinsics
from ..io.mapfile import MapFileError, SceneMap, load_map
from ..models.identity import state_dict_hash
from ..models.networks import load_encoder
from ..models.preprocess import cell_centres, preprocess
from .calibration import ConfidenceModel, load_model
from .estimate import Estimate
from .registry import AUTO, BuildContext, EstimatorSpec, resolve_estimator


@dataclass(frozen=True)
class PipelineConfig:
    """estimator: a name of ``registry.NAMES`` (``auto``: by what the map holds);
    options: keyword options of that estimator (``backend``, ``regressor``, ``translation``,
    ``min_inliers``, ...); device: torch device name; encoder: ``ace``, ``xfeat`` or a file of
    ACE-format weights, None: the encoder the map names (a custom file must be given again);
    head_fallback: an estimator that needs the head runs ``points`` on a map of keyframes only
    (the node, while a map's head still trains) instead of refusing the map;
    confidence_model: a calibrated-confidence file (``localization.calibration``), None: the
    shipped one; an estimator without a model there keeps its own confidence."""
    estimator: str = AUTO
    options: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    encoder: str | None = None
    head_fallback: bool = False
    confidence_model: str | None = None


@functools.lru_cache(maxsize=4)
def _confidence_model(path: str | None) -> ConfidenceModel | None:
    return load_model(path)


@functools.lru_cache(maxsize=4)
def _cached_encoder(name: str | None, modified: float, device: str) -> torch.nn.Module:
    """One loaded encoder per (name or file, its modification time, device): a map swapped in
    reuses the encoder of the one before it."""
    return load_encoder(name, device)


def shared_encoder(name: str | None, device: str = "cpu") -> torch.nn.Module:
    """The encoder ``name`` (``models.networks.load_encoder``), loaded once per device and file
    version (EncoderError when it cannot be loaded)."""
    path = Path(str(name)) if name not in (None, "", "ace", "xfeat") else None
    modified = path.stat().st_mtime if path is not None and path.is_file() else 0.0
    return _cached_encoder(name or None, modified, str(device))


@dataclass
class SceneCoordinates:
    """The head's view of a query. coords_N3: (N, 3) float scene coordinates (map frame,
    metres); pixels_N2: (N, 2) their cell centres in pixels of the shrunk image whose intrinsics
    are K_small (3x3); timings_ms: preprocess, encoder, head."""
    coords_N3: torch.Tensor
    pixels_N2: torch.Tensor
    K_small: np.ndarray
    timings_ms: dict[str, float]


class SceneCoordinateHead:
    """Encoder + head of a map: image -> ``SceneCoordinates`` at the map's short side.
    MapFileError when the encoder is not the one the head was trained on."""

    def __init__(self, scene_map: SceneMap, encoder: torch.nn.Module,
                 device: str | torch.device = "cpu"):
        if scene_map.head is None:
            raise MapFileError("this map holds keyframes only (no scene-coordinate head): use the "
                               "'points' estimator")
        encoder_id = state_dict_hash(encoder)
        if encoder_id != scene_map.encoder_id:
            raise MapFileError(f"map was built with encoder {scene_map.encoder} {scene_map.encoder_id}, "
                               f"but the loaded encoder is {encoder.name} {encoder_id}: load the "
                               f"encoder the map was built with")
        self.device = torch.device(device)
        self.short_side = scene_map.short_side
        self.encoder = encoder.to(self.device).eval()
        self.head = scene_map.head.to(self.device).eval()

    def __call__(self, image: np.ndarray, K: np.ndarray) -> SceneCoordinates:
        """image: HxWx3 RGB or HxW grey uint8; K: its 3x3 intrinsics."""
        if (problem := check_intrinsics(K)) is not None:
            raise ValueError(problem)
        t0 = time.perf_counter()
        x, K_small = preprocess(image, K, self.short_side)
        t1 = time.perf_counter()
        with torch.inference_mode():
            feats = self.encoder(x.to(self.device))
            t2 = time.perf_counter()
            coords = self.head(feats)[0]  # 3 x h x w
        t3 = time.perf_counter()
        h, w = coords.shape[1:]
        coords_N3 = coords.flatten(1).T.float()
        pixels_N2 = cell_centres(h, w).to(coords_N3.device)
        return SceneCoordinates(coords_N3, pixels_N2, K_small, {
            "preprocess": 1e3 * (t1 - t0), "encoder": 1e3 * (t2 - t1), "head": 1e3 * (t3 - t2)})


class Pipeline:
    """A map, its encoder and head where the estimator reads them, and the estimator.

    scene_map: the loaded map; config: ``PipelineConfig``; encoder: an already loaded encoder
    to use (checked against the map), else the configuration's or the map's, loaded once per
    process. Raises MapFileError (map and encoder disagree), ValueError (the estimator cannot run
    on this map, or a bad option) or EncoderError.

    ``spec``: the estimator's entry of the table (``spec.name`` is what runs: ``auto`` resolved);
    ``estimator``: the built estimator; ``head``: the ``SceneCoordinateHead``, or None for
    estimators on the image alone.
    """

    def __init__(self, scene_map: SceneMap, config: PipelineConfig = PipelineConfig(), *,
                 encoder: torch.nn.Module | None = None):
        self.scene_map, self.config = scene_map, config
        self.device = torch.device(config.device)
        self.spec: EstimatorSpec = resolve_estimator(config.estimator, scene_map,
                                                     head_fallback=config.head_fallback)
        self.head = None
        if self.spec.inputs != "image":
            encoder = encoder or shared_encoder(config.encoder or scene_map.encoder or None,
                                                str(self.device))
            self.head = SceneCoordinateHead(scene_map, encoder, self.device)
        self.estimator = self.spec.make(
            BuildContext(scene_map, scene_map.short_side, str(self.device)), config.options)
        self.confidence_model = _confidence_model(config.confidence_model)

    @classmethod
    def from_file(cls, map_path: str | Path, config: PipelineConfig = PipelineConfig()) -> Pipeline:
        """Load the map file (MapFileError naming it when unusable) and build the pipeline."""
        return cls(load_map(Path(map_path).expanduser(), config.device), config)

    @property
    def calibrated(self) -> bool:
        """Whether ``confidence`` is the calibrated probability (the shipped model has this
        estimator); else it is the estimator's own score (research regressors)."""
        return self.confidence_model is not None and self.spec.name in self.confidence_model.weights

    @property
    def name(self) -> str:
        """The estimator that runs (``auto`` resolved; a head estimator may fall back)."""
        return self.spec.name

    def localize(self, image: np.ndarray, camera: Camera) -> Estimate | None:
        """The pose of one query: an HxWx3 RGB or HxW grey uint8 image and its ``Camera``. A
        distorted image is first undistorted whole (``camera.undistorted``: the pinhole image of
        the same K, maps computed once per camera). Where the confidence model has the
        estimator, ``confidence`` is the calibrated P(within 10 cm/5°) (the estimator's own in
        ``evidence["raw_confidence"]``); a pose its estimator gives confidence 0 (too few
        inliers, an ambiguous place) keeps 0. Returns an Estimate (``timings_ms``: the
        stages, ``undistort`` where it ran, and ``total``) or None when no pose could be
        computed; ValueError for an image that does not fit its camera or unusable
        intrinsics."""
        camera.check_image(image)
        K = np.asarray(camera.K, np.float64)
        if (problem := check_intrinsics(K)) is not None:
            raise ValueError(problem)
        t0 = time.perf_counter()
        timings = {}
        if camera.distortion is not None:
            image, camera = undistorted(image, camera)
            timings["undistort"] = 1e3 * (time.perf_counter() - t0)
        if self.spec.inputs == "image":
            est = self.estimator.localize(image, K)
        elif self.spec.inputs == "image+head":
            def head():
                view = self.head(image, K)
                timings.update(view.timings_ms)
                return view
            est = self.estimator.localize(image, K, head)
        else:
            view = self.head(image, K)
            timings.update(view.timings_ms)
            if self.spec.inputs == "both":
                est = self.estimator.estimate(view.coords_N3, view.pixels_N2, view.K_small,
                                              image=image, K=K)
            else:
                est = self.estimator.estimate(view.coords_N3, view.pixels_N2, view.K_small)
        if est is None:
            return None
        est.timings_ms = {**timings, **est.timings_ms, "total": 1e3 * (time.perf_counter() - t0)}
        calibrated = (self.confidence_model.probability(self.spec.name, est)
                      if self.confidence_model is not None and est.confidence > 0 else None)
        if calibrated is not None:
            est.evidence["raw_confidence"] = est.confidence
            est.confidence = calibrated
        return est
