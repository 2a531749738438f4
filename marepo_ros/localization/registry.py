"""The estimators by name: one table (``ESTIMATORS``: name -> ``EstimatorSpec``), as hloc's named
configurations. A spec says what an estimator needs from the map (head, keyframes), what it is
given per query (``inputs``) and how it is built; compound estimators (``hybrid``, ``grr+kf``)
are entries that build their parts from other entries, never names taken apart.

``resolve_estimator`` says what ``auto`` stands for with a map; ``make_estimator`` builds one.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

import torch

from .calibration import load_model
from .cascade import CascadeEstimator
from .hybrid import HybridEstimator
from .marepo import MarepoEstimator, regressor_for_map
from .pnp import PoselibRansacEstimator
from .points import PointsEstimator
from .ransac import RansacEstimator

if TYPE_CHECKING:  # the map file module imports the networks; only its type is needed here
    from ..io.mapfile import SceneMap

AUTO = "auto"


@dataclass(frozen=True)
class BuildContext:
    """What a builder may use: the map (None for estimators that need none of it), the short
    side (pixels) of the images the head sees, and the torch device."""
    scene_map: SceneMap | None
    short_side: int = 480
    device: str = "cpu"


@dataclass(frozen=True)
class EstimatorSpec:
    """One estimator of the table.

    inputs: what it is given per query: "coords" (the head's scene coordinates: ``estimate(
        coords_N3, pixels_N2, K_small)``), "image" (``localize(image, K)``), "both"
        (``estimate(coords_N3, pixels_N2, K_small, image=, K=)``) or "image+head" (``localize(
        image, K, head)``, ``head()`` computing the scene coordinates when the estimator asks);
        images are pinhole (the ``Pipeline`` undistorts them first).
    needs_head / needs_keyframes: the parts of the map it reads.
    build: (BuildContext, options) -> the estimator; options are the user's keyword options.
    options: the option names it takes (anything else is refused with a ValueError).
    summary: one line for help texts.
    """
    name: str
    inputs: Literal["coords", "image", "both", "image+head"]
    needs_head: bool
    needs_keyframes: bool
    build: Callable[[BuildContext, dict], object]
    options: frozenset[str]
    summary: str

    def make(self, ctx: BuildContext, options: dict):
        """The estimator, with ``options`` checked against ``self.options``."""
        unknown = sorted(set(options) - self.options)
        if unknown:
            raise ValueError(f"estimator '{self.name}' has no option {', '.join(map(repr, unknown))} "
                             f"(its options: {', '.join(sorted(self.options)) or 'none'})")
        return self.build(ctx, dict(options))


def _threshold(ctx: BuildContext, options: dict) -> dict:
    """DSAC*'s 10 px inlier threshold is defined on 480-pixel images: scaled to the short side
    unless ``inlier_threshold_px`` is given."""
    return {"inlier_threshold_px": 10.0 * ctx.short_side / 480, **options}


def _ransac(ctx: BuildContext, options: dict):
    """``backend``: poselib (C++, the default on a CPU) or torch (batched, the default on other
    devices)."""
    options = dict(options)
    backend = options.pop("backend", None) or (
        "poselib" if torch.device(ctx.device).type == "cpu" else "torch")
    if backend not in ("poselib", "torch"):
        raise ValueError(f"ransac backend '{backend}' is not poselib or torch")
    return (PoselibRansacEstimator if backend == "poselib" else RansacEstimator)(
        **_threshold(ctx, options))


def _regressor(kind: str, refine: bool):
    """A builder of the regressor ``kind``: the map's fine-tuned one (marepo_S) when it has one,
    else the shipped one, unless ``regressor`` is given; ``translation``: grr's "rays" or
    "points" form."""
    def build(ctx: BuildContext, options: dict):
        options = dict(options)
        translation = options.pop("translation", None)
        regressor = options.pop("regressor", None)
        if regressor is None:
            regressor = regressor_for_map(ctx.scene_map, ctx.device, kind)
        if regressor.kind != kind:
            raise ValueError(f"the regressor given is a {regressor.kind} regressor; estimator "
                             f"'{kind}{'+refine' if refine else ''}' needs a {kind} one")
        if translation is not None:
            regressor.translation = translation
        return MarepoEstimator(regressor=regressor, refine=refine, **_threshold(ctx, options))
    return build


def _points(ctx: BuildContext, options: dict):
    from ..models.xfeat import XFeatExtractor
    return PointsEstimator(ctx.scene_map.feature_map, XFeatExtractor(device=ctx.device), **options)


def _hybrid(ctx: BuildContext, options: dict):
    """``ransac`` on the head and ``points`` on the keyframes; ``backend`` goes to ransac."""
    options = dict(options)
    backend = options.pop("backend", None)
    scr = _ransac(ctx, {"backend": backend} if backend else {})
    return HybridEstimator(scr, _points(ctx, {}), **options)


def _cascade(ctx: BuildContext, options: dict):
    """``points`` first; ``hybrid``'s check on the head when points is not certain;
    ``certain_probability`` and ``certain_inliers`` go to the cascade, ``backend`` to ransac, the rest to hybrid."""
    options = dict(options)
    certain = {k: options.pop(k) for k in ("certain_inliers", "certain_probability") if k in options}
    return CascadeEstimator(_hybrid(ctx, options), model=load_model(), **certain)


def _keyframe_refined(kind: str):
    """A builder of ``<kind>+kf``: the regressed pose picks the nearest keyframes, whose matches
    give the pose (hybrid's decision, no global retrieval); options go to the regressor."""
    def build(ctx: BuildContext, options: dict):
        regressor = _regressor(kind, refine=False)(ctx, options)
        return HybridEstimator(regressor, _points(ctx, {}), retry_globally=False, name=f"{kind}+kf")
    return build


def _keywords(*classes, extra: tuple[str, ...] = (), without: tuple[str, ...] = ()) -> frozenset[str]:
    """The keyword options of the classes' constructors, plus ``extra``, less ``without``."""
    names = {p.name for c in classes for p in inspect.signature(c.__init__).parameters.values()
             if p.kind == p.KEYWORD_ONLY}
    return frozenset((names | set(extra)) - set(without))


_RANSAC = _keywords(PoselibRansacEstimator, RansacEstimator, extra=("backend",))
_MAREPO = _keywords(MarepoEstimator, without=("refine",))
_GRR = _MAREPO | {"translation"}


def _spec(name, inputs, head, keyframes, build, options, summary) -> tuple[str, EstimatorSpec]:
    return name, EstimatorSpec(name, inputs, head, keyframes, build, frozenset(options), summary)


ESTIMATORS: dict[str, EstimatorSpec] = dict([
    _spec("points", "image", False, True, _points, _keywords(PointsEstimator),
          "keyframes: retrieval, XFeat 2D-3D matches, PnP (no head needed)"),
    _spec("hybrid", "both", True, True, _hybrid,
          _keywords(HybridEstimator, extra=("backend",), without=("retry_globally", "name")),
          "ransac on the head and points on the keyframes, each checking the other"),
    _spec("cascade", "image+head", True, True, _cascade,
          _keywords(HybridEstimator, CascadeEstimator, extra=("backend",),
                    without=("retry_globally", "name", "model")),
          "points first; the head checks (as hybrid) only the frames points is not certain of"),
    _spec("ransac", "coords", True, False, _ransac, _RANSAC,
          "DSAC*-style RANSAC on the head's scene coordinates"),
    _spec("marepo", "coords", True, False, _regressor("marepo", False), _MAREPO,
          "marepo's transformer regresses the pose from the scene coordinates"),
    _spec("marepo+refine", "coords", True, False, _regressor("marepo", True), _MAREPO,
          "marepo, refined on the coordinates that agree with it"),
    _spec("grr", "coords", True, False, _regressor("grr", False), _GRR,
          "GRLoc's rays and points from the transformer, solved in closed form"),
    _spec("grr+refine", "coords", True, False, _regressor("grr", True), _GRR,
          "grr, refined on the coordinates that agree with it"),
    _spec("marepo+kf", "both", True, True, _keyframe_refined("marepo"), _MAREPO,
          "marepo's pose refined on the keyframes near it"),
    _spec("grr+kf", "both", True, True, _keyframe_refined("grr"), _GRR,
          "grr's pose refined on the keyframes near it"),
])
NAMES = (AUTO, *ESTIMATORS)   # what a user may choose (CLI, node parameter)


def auto_estimator(scene_map: SceneMap | None) -> str:
    """What ``auto`` stands for with this map (see ``resolve_estimator``)."""
    keyframes = scene_map is not None and scene_map.feature_map is not None
    head = scene_map is None or scene_map.head is not None
    return ("cascade" if head else "points") if keyframes else "ransac"


def resolve_estimator(name: str, scene_map: SceneMap | None, *, head_fallback: bool = False
                      ) -> EstimatorSpec:
    """The spec of ``name`` with this map. ``auto``: ``cascade`` when the map has a keyframe
    feature map and a scene-coordinate head (the head, an independent network, checks the frames
    the keyframes are not certain of), ``points`` with keyframes only, ``ransac`` with a head
    only (the suite's table in docs/results.md). head_fallback: an estimator that needs the
    head, on a map of keyframes only (one whose head still trains), gives ``points`` instead of
    an error. ValueError for an unknown name or a map without the parts the estimator needs."""
    if name == AUTO:
        name = auto_estimator(scene_map)
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator '{name}' (available: {', '.join(NAMES)})")
    spec = ESTIMATORS[name]
    has_keyframes = scene_map is not None and scene_map.feature_map is not None
    if spec.needs_head and scene_map is not None and scene_map.head is None:
        if head_fallback and has_keyframes:
            return ESTIMATORS["points"]
        raise ValueError(f"estimator '{name}' needs a map with a scene-coordinate head; this map "
                         f"holds keyframes only (use 'points')")
    if spec.needs_keyframes and not has_keyframes:
        raise ValueError(f"estimator '{name}' needs a map with a keyframe feature map (maps of "
                         "format version 1 have none: rebuild the map, or use ransac)")
    return spec


def make_estimator(name: str, *, short_side: int = 480, scene_map: SceneMap | None = None,
                   device: str = "cpu", **options):
    """The estimator ``name`` (see ``ESTIMATORS``; ``auto``: ``resolve_estimator``) for images of
    the given short side (pixels), with keyword ``options`` of its class (e.g. ``backend`` of
    ransac and hybrid, ``regressor`` and ``translation`` of the regressors, ``min_inliers``)."""
    spec = resolve_estimator(name, scene_map)
    return spec.make(BuildContext(scene_map, short_side, str(device)), options)
