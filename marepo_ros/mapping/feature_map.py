"""Build the keyframe feature map of a scene from posed images.

Keyframes are the mapping images (optionally thinned by pose: ``min_translation_m`` /
``min_rotation_deg``). Each gets XFeat keypoints and descriptors, and each keypoint a 3D point:
- from depth where the image has it (the 3x3 depth neighbourhood must be valid and smooth);
- else by triangulation across overlapping keyframes of known pose: mutual nearest-neighbour
  descriptor matches with a ratio test, the least-squares intersection of all rays of a
  keypoint, kept when it reprojects within ``max_reprojection_px`` into at least two views, in
  front of them, with rays at ``min_angle_deg`` or more (see ``triangulate_keyframes``).
Keypoints without a 3D point are dropped. A VLAD vocabulary learnt from the map's descriptors
gives every keyframe its global descriptor for retrieval.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..geometry import backproject, invert_pose, pixel_rays, transform_points
from ..io.feature_map import POINT_SOURCES, FeatureMap, quantize
from ..localization.retrieval import learn_vocabulary, vlad
from ..models.preprocess import to_grey
from ..models.xfeat import ImageFeatures, XFeatExtractor
from .frames import MappingCancelled, PosedImage, Progress
from .keyframes import moved_enough
from .refine import RefineConfig, refine_keyframes
from .views import mutual_matches, triangulate_rays


@dataclass(frozen=True)
class FeatureMapConfig:
    """top_k: keypoints per keyframe; min_translation_m / min_rotation_deg: keyframe spacing
    (0: every image; on redkitchen 3 cm / 3° keep 160 of 750 images: 100 % within 5 cm/5° with
    depth as with all 750, at an eighth of the size, see docs/results.md); depth: use depth where images have it; pairs: overlapping keyframes
    triangulated against; ratio: descriptor ratio test; min_angle_deg, max_reprojection_px:
    triangulation checks; max_depth_jump: relative depth spread allowed around a lifted keypoint;
    vocabulary_words: VLAD vocabulary size; short_side / short_side_triangulated: images are
    shrunk to this short side (pixels) for extraction, 0 = full size, the first when the
    keyframes have depth, the second when points must be triangulated (queries are extracted
    at the map's size). On redkitchen (480 px), 360 px: 99.2 % within 5 cm/5° with depth and
    ~25 % less query time; without depth, keypoints located at 360 px triangulate worse
    (90.8 % vs 94.4 % at full size).
    refine: bundle-adjust the keyframe poses over their feature tracks, the given poses as
    priors (``refine.refine_keyframes``), and use the refined poses when they explain the
    images clearly better: at least ``refine_min_gain`` times (``RefineConfig.min_gain``; 0: always,
    for poses known to drift, `map build --refine-poses always`); the report lands in the
    statistics.
    max_covered: 0 keeps every image the spacing passes; above 0, an image with depth is also
    dropped when at least this share of its view is already covered by kept keyframes
    (``KeptViews.covered_share``: its surface seen by a kept keyframe from rays within
    ``overlap_angle_deg`` and a camera turned less than ``overlap_turn_deg``), so a camera going
    back and forth over the same view adds no keyframes (images without depth: the spacing
    alone; 0 turns the rule off). On redkitchen the default 0.9 / 2° / 6° keeps 132 instead of
    160 keyframes at the same 99.2 % within 5 cm/5° (0.8 / 3° / 10°: 81, but 1.6 points lost);
    on the rendered 16x site 1551 instead of 2056, so map MB grows with the floor area
    (docs/results.md, Scale). The rule loads the depth of every image the spacing passes
    (redkitchen: 261 images, about 2 s)."""
    top_k: int = 2048
    short_side: int = 360
    short_side_triangulated: int = 0
    min_translation_m: float = 0.03
    min_rotation_deg: float = 3.0
    depth: bool = True
    pairs: int = 8
    ratio: float = 0.9
    min_angle_deg: float = 2.0
    max_reprojection_px: float = 1.5
    max_depth_jump: float = 0.05
    vocabulary_words: int = 32
    refine: bool = False
    refine_min_gain: float = RefineConfig.min_gain
    max_covered: float = 0.9
    overlap_angle_deg: float = 2.0
    overlap_turn_deg: float = 6.0


REFINE_MODES = ("auto", "always", "never")   # map build --refine-poses, mapping_refine_poses


def with_pose_refinement(cfg: FeatureMapConfig, mode: str) -> FeatureMapConfig:
    """``cfg`` with the pose refinement of ``mode`` (``REFINE_MODES``): auto refines and uses the
    refined poses above ``refine_min_gain``, always uses them whatever the gain, never keeps the
    given poses."""
    if mode not in REFINE_MODES:
        raise ValueError(f"pose refinement mode {mode!r}: one of {', '.join(REFINE_MODES)}")
    if mode == "never":
        return replace(cfg, refine=False)
    return replace(cfg, refine=True, refine_min_gain=0.0 if mode == "always" else cfg.refine_min_gain)


def select_keyframes(poses_N44: list[np.ndarray], min_translation_m: float,
                     min_rotation_deg: float, *, view_of: Callable[[int], tuple | None] | None = None,
                     max_covered: float = 0.0, angle_deg: float = 2.0,
                     turn_deg: float = 6.0) -> list[int]:
    """Indices of images whose pose moved or turned enough since the last kept one
    (``keyframes.moved_enough``, the node's keyframe spacing). With ``max_covered`` > 0, such
    an image is also dropped when ``covered_share`` of it by the keyframes kept so far reaches
    ``max_covered``; ``view_of(i)``: image i's ``coarse_view`` (None: no depth)."""
    keep = [0]
    kept = KeptViews(angle_deg, turn_deg)
    if max_covered > 0:
        kept.add(poses_N44[0], view_of(0) if view_of else None)
    for i in range(1, len(poses_N44)):
        if not moved_enough(poses_N44[i], poses_N44[keep[-1]], min_translation_m, min_rotation_deg):
            continue
        if max_covered > 0:
            view = view_of(i) if view_of else None
            if kept.covered_share(poses_N44[i], view) >= max_covered:
                continue
            kept.add(poses_N44[i], view)
        keep.append(i)
    return keep


def coarse_view(depth_HW: np.ndarray, K: np.ndarray, stride: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(depth h x w, its 3x3 K): every ``stride``-th pixel of a depth image (metres, 0 =
    invalid), starting at stride // 2, and the intrinsics of that grid."""
    o = stride // 2
    K_small = np.asarray(K, np.float64).copy()
    K_small[:2] /= stride
    K_small[:2, 2] -= o / stride
    return np.ascontiguousarray(depth_HW[o::stride, o::stride], np.float32), K_small


class KeptViews:
    """The keyframes kept so far, for ``covered_share``: poses (4x4) and coarse depth views."""

    def __init__(self, angle_deg: float, turn_deg: float, *, max_points: int = 300):
        self.cos_angle, self.cos_turn = math.cos(math.radians(angle_deg)), math.cos(math.radians(turn_deg))
        self.max_points = max_points
        self.poses = np.zeros((0, 4, 4))
        self.views: list[tuple | None] = []

    def add(self, map_from_cam: np.ndarray, view: tuple | None) -> None:
        self.poses = np.concatenate([self.poses, np.asarray(map_from_cam, np.float64)[None]])
        self.views.append(view)

    def covered_share(self, map_from_cam: np.ndarray, view: tuple | None) -> float:
        """Share (0-1) of a view already covered. With a coarse depth view: of its surface
        points (up to ``max_points``), those some kept keyframe with depth sees (in its image,
        within 2 cm + 3 % of its depth there) from a ray within ``angle_deg`` of this view's,
        at a distance within 10 %, turned less than ``turn_deg`` from it. Without depth: 0
        (the spacing alone decides, as without the rule)."""
        if view is None:
            return 0.0
        depth, K = view
        v, u = np.nonzero(depth > 0)
        if len(u) == 0:
            return 0.0
        pick = np.linspace(0, len(u) - 1, min(self.max_points, len(u))).astype(int)
        u, v = u[pick], v[pick]
        points = transform_points(map_from_cam, backproject(K, np.stack([u, v], 1).astype(np.float64),
                                                            depth[v, u].astype(np.float64)))
        centre = map_from_cam[:3, 3]
        ray = points - centre
        dist = np.linalg.norm(ray, axis=1)
        ray /= dist[:, None]
        trace = np.einsum("kij,ij->k", self.poses[:, :3, :3], map_from_cam[:3, :3])
        near = [k for k in np.flatnonzero(trace >= 1 + 2 * self.cos_turn)   # turned < turn_deg
                if self.views[k] is not None]
        covered = np.zeros(len(points), bool)
        by_shape: dict[tuple, list[int]] = {}
        for k in near:
            by_shape.setdefault(self.views[k][0].shape, []).append(k)
        for (h, w), ks in by_shape.items():        # all kept views of one size at once
            T = self.poses[ks]                                                  # (C, 4, 4)
            kd = np.stack([self.views[k][0] for k in ks])                      # (C, h, w)
            kK = np.stack([self.views[k][1] for k in ks])                      # (C, 3, 3)
            kray = points[None] - T[:, None, :3, 3]                            # (C, M, 3)
            cam = np.einsum("cmi,cij->cmj", kray, T[:, :3, :3])
            z = cam[..., 2]
            zs = np.where(z > 0.05, z, np.nan)
            with np.errstate(invalid="ignore"):
                pu = np.rint(kK[:, None, 0, 0] * cam[..., 0] / zs + kK[:, None, 0, 2])
                pv = np.rint(kK[:, None, 1, 1] * cam[..., 1] / zs + kK[:, None, 1, 2])
                inside = (pu >= 0) & (pu < w) & (pv >= 0) & (pv < h)
            c, m = np.nonzero(inside)
            d = np.zeros(z.shape)
            d[c, m] = kd[c, pv[c, m].astype(int), pu[c, m].astype(int)]
            kdist = np.linalg.norm(kray, axis=2)
            covered |= np.any(inside & (d > 0) & (np.abs(d - z) < 0.02 + 0.03 * z)
                              & (np.einsum("cmi,mi->cm", kray, ray) >= self.cos_angle * kdist)
                              & (np.abs(kdist / dist - 1) < 0.1), axis=0)
        return float(covered.mean())


def keyframe_views(images: list[PosedImage], cfg: FeatureMapConfig) -> dict:
    """Keyword options of ``select_keyframes`` for ``cfg``'s overlap rule: none when it is off
    (``max_covered`` 0, or a spacing of 0 / 0: every image), else ``coarse_view`` of each
    image's depth (when ``cfg.depth``) and the thresholds."""
    if cfg.max_covered <= 0 or (cfg.min_translation_m <= 0 and cfg.min_rotation_deg <= 0):
        return {}

    def view_of(i: int):
        depth = images[i].load_depth() if cfg.depth else None
        return None if depth is None else coarse_view(depth, images[i].K)

    return {"view_of": view_of, "max_covered": cfg.max_covered, "angle_deg": cfg.overlap_angle_deg,
            "turn_deg": cfg.overlap_turn_deg}


def lift_with_depth(uv_N2: np.ndarray, depth_HW: np.ndarray, K: np.ndarray, map_from_cam: np.ndarray,
                    max_depth_jump: float) -> np.ndarray:
    """(N, 3) map-frame points of keypoints from a depth image (metres), NaN where the depth
    around the keypoint is missing or not smooth."""
    H, W = depth_HW.shape
    u, v = np.rint(uv_N2[:, 0]).astype(np.int64), np.rint(uv_N2[:, 1]).astype(np.int64)
    inside = (u >= 1) & (u < W - 1) & (v >= 1) & (v < H - 1)
    u, v = np.where(inside, u, 1), np.where(inside, v, 1)
    patch = np.stack([depth_HW[v + dv, u + du] for dv in (-1, 0, 1) for du in (-1, 0, 1)], 1)
    z = patch[:, 4].astype(np.float64)
    ok = inside & (patch.min(1) > 0) & (patch.max(1) - patch.min(1) < max_depth_jump * z)
    out = np.full((len(uv_N2), 3), np.nan)
    out[ok] = transform_points(map_from_cam, backproject(K, uv_N2[ok], z[ok]))
    return out


def overlapping_keyframes(poses_K44: np.ndarray, n: int, max_view_angle_deg: float = 30.0
                          ) -> list[list[int]]:
    """For each keyframe, up to ``n`` others that look the same way (optical axes within
    ``max_view_angle_deg``), spread over baselines: taken at ranks 1, 2, 4, 8, ... of the
    nearest such keyframes, so that both short and wide baselines are tried."""
    centres = poses_K44[:, :3, 3]
    axes = poses_K44[:, :3, 2]
    cos_max = math.cos(math.radians(max_view_angle_deg))
    ranks = [2 ** i - 1 for i in range(n)]
    out = []
    for k in range(len(poses_K44)):
        dist = np.linalg.norm(centres - centres[k], axis=1)
        ok = (axes @ axes[k] >= cos_max) & (dist > 1e-6)
        cand = np.nonzero(ok)[0]
        cand = cand[np.argsort(dist[cand])]
        out.append([int(cand[r]) for r in ranks if r < len(cand)])
    return out


def _reprojection_px(points_N3, map_from_cam, K, uv_N2) -> np.ndarray:
    cam = transform_points(invert_pose(map_from_cam), points_N3)
    z = np.where(cam[:, 2] > 1e-6, cam[:, 2], np.nan)
    uv = (cam @ K.T)[:, :2] / z[:, None]
    return np.nan_to_num(np.linalg.norm(uv - uv_N2, axis=1), nan=np.inf)


def triangulate_keyframes(feats: list[ImageFeatures], poses_K44: np.ndarray, Ks_K33: np.ndarray,
                          targets: list[int], cfg: FeatureMapConfig) -> dict[int, np.ndarray]:
    """3D points (N_k, 3), NaN where none passed the checks, for each keyframe in ``targets``.

    Every keypoint is matched into the overlapping keyframes; its point is the least-squares
    intersection of all its rays, then of those that reproject within ``max_reprojection_px``.
    It is kept when at least 2 rays remain, the widest angle between keyframe k's ray and
    another is ``min_angle_deg`` or more (with only 2 rays, twice that), and it lies in front
    of every camera that sees it."""
    neighbours = overlapping_keyframes(poses_K44, cfg.pairs)
    out = {}
    for k in targets:
        f = feats[k]
        n, views = len(f.keypoints_N2), [k] + neighbours[k]
        if len(views) == 1 or n == 0:                     # nothing overlaps: no points
            out[k] = np.full((n, 3), np.nan)
            continue
        centres = np.zeros((n, len(views), 3))
        rays = np.zeros((n, len(views), 3))
        uv = np.zeros((n, len(views), 2))
        used = np.zeros((n, len(views)), bool)
        centres[:, 0], rays[:, 0] = poses_K44[k][:3, 3], _unit_map_rays(poses_K44[k], Ks_K33[k], f.keypoints_N2)
        uv[:, 0], used[:, 0] = f.keypoints_N2, True
        for v, j in enumerate(views[1:], start=1):
            ia, ib = mutual_matches(f.descriptors_ND, feats[j].descriptors_ND, cfg.ratio)
            centres[ia, v] = poses_K44[j][:3, 3]
            rays[ia, v] = _unit_map_rays(poses_K44[j], Ks_K33[j], feats[j].keypoints_N2[ib])
            uv[ia, v], used[ia, v] = feats[j].keypoints_N2[ib], True
        points = triangulate_rays(centres, rays, used)
        for _ in range(2):                    # drop the rays the point does not reproject into
            err = np.full(used.shape, np.inf)
            for v, j in enumerate(views):
                rows = used[:, v] & ~np.isnan(points[:, 0])
                err[rows, v] = _reprojection_px(points[rows], poses_K44[j], Ks_K33[j], uv[rows, v])
            used &= err <= cfg.max_reprojection_px
            used[:, 0] &= used[:, 1:].any(1)
            points = triangulate_rays(centres, rays, used)
        cos = np.where(used[:, 1:], np.einsum("ni,nvi->nv", rays[:, 0], rays[:, 1:]), 1.0)
        angle = np.degrees(np.arccos(np.clip(cos.min(1), -1, 1)))
        n_rays = used.sum(1)
        ok = (n_rays >= 2) & used[:, 0] & (angle >= cfg.min_angle_deg * np.where(n_rays == 2, 2, 1))
        in_front = (np.einsum("nvi,nvi->nv", points[:, None] - centres, rays) > 0) | ~used
        points[~(ok & in_front.all(1))] = np.nan
        out[k] = points
    return out


def _unit_map_rays(map_from_cam: np.ndarray, K: np.ndarray, uv_N2: np.ndarray) -> np.ndarray:
    rays = pixel_rays(K, uv_N2) @ map_from_cam[:3, :3].T
    return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def build_feature_map(images: list[PosedImage], extractor: XFeatExtractor,
                      cfg: FeatureMapConfig = FeatureMapConfig(), *,
                      progress: Progress | None = None,
                      cancel: Callable[[], bool] | None = None) -> tuple[FeatureMap, dict]:
    """The feature map of posed images and its statistics (keyframes, points per source,
    seconds, MB). Raises ValueError when no keypoint gets a 3D point (e.g. one image without
    depth, or a camera that only rotated)."""
    t0 = time.time()
    keep = select_keyframes([im.map_from_cam for im in images], cfg.min_translation_m,
                            cfg.min_rotation_deg, **keyframe_views(images, cfg))
    feats, depth_points, sizes = [], [], []
    with_depth = cfg.depth and images[keep[0]].load_depth() is not None
    short_side = cfg.short_side if with_depth else cfg.short_side_triangulated
    extracted_at = []                     # the short side each keyframe was extracted at
    for n, i in enumerate(keep):
        if cancel is not None and cancel():
            raise MappingCancelled("feature map cancelled")
        im = images[i]
        grey = to_grey(im.load_image())
        f = extractor.extract(grey, top_k=cfg.top_k, short_side=short_side)
        extracted_at.append(min(short_side or min(grey.shape), min(grey.shape)))
        depth = im.load_depth() if cfg.depth else None
        pts = (lift_with_depth(f.keypoints_N2.astype(np.float64), depth, im.K, np.eye(4),
                               cfg.max_depth_jump) if depth is not None
               else np.full((len(f.keypoints_N2), 3), np.nan))     # camera frame for now
        feats.append(f)
        depth_points.append(pts)
        sizes.append(grey.shape[::-1])
        if progress:
            progress("features", n + 1, len(keep), {"keyframes": n + 1})
    t1 = time.time()
    poses = np.stack([images[i].map_from_cam for i in keep]).astype(np.float64)
    Ks = np.stack([images[i].K for i in keep]).astype(np.float64)
    refinement = None
    if cfg.refine and len(keep) >= 3:
        try:
            refined = refine_keyframes(feats, poses, Ks, [p[:, 2] for p in depth_points],
                                       cfg=RefineConfig(min_gain=cfg.refine_min_gain), progress=progress)
            refinement = refined.report
            if refinement["applied"]:
                poses = refined.map_from_cam_K44
        except (ValueError, np.linalg.LinAlgError) as exc:     # too few tracks: poses as given
            refinement = {"skipped": str(exc)}
    depth_points = [transform_points(T, p) for T, p in zip(poses, depth_points)]
    t_refined = time.time()
    need = [k for k, p in enumerate(depth_points) if np.isnan(p[:, 0]).mean() > 0.5]
    triangulated = {}
    for start in range(0, len(need), 25):   # in chunks, so that progress shows and cancel works
        if cancel is not None and cancel():
            raise MappingCancelled("feature map cancelled")
        triangulated.update(triangulate_keyframes(feats, poses, Ks, need[start:start + 25], cfg))
        if progress:
            progress("triangulation", min(start + 25, len(need)), len(need), {})
    t2 = time.time()
    kp, desc, pts, src, offsets = [], [], [], [], [0]
    for k, f in enumerate(feats):
        p, s = depth_points[k], np.zeros(len(f.keypoints_N2), np.uint8)
        if k in triangulated:
            fill = np.isnan(p[:, 0]) & ~np.isnan(triangulated[k][:, 0])
            p = p.copy()
            p[fill] = triangulated[k][fill]
            s[fill] = POINT_SOURCES.index("triangulated")
        ok = ~np.isnan(p[:, 0])
        kp.append(f.keypoints_N2[ok])
        desc.append(f.descriptors_ND[ok])
        pts.append(p[ok])
        src.append(s[ok])
        offsets.append(offsets[-1] + int(ok.sum()))
    if offsets[-1] == 0:
        raise ValueError("no keypoint of the mapping images got a 3D point: without depth the "
                         "keyframes must overlap and the camera must move, not only rotate")
    all_desc = np.concatenate([f.descriptors_ND for f in feats])
    vocabulary = learn_vocabulary(all_desc, min(cfg.vocabulary_words, len(all_desc)))
    fmap = FeatureMap(
        map_from_cam_K44=poses, K_K33=Ks, image_size_K2=np.array(sizes, np.int32),
        global_KG=np.stack([vlad(f.descriptors_ND, vocabulary) for f in feats]),
        vocabulary_CD=vocabulary, offsets_K1=np.array(offsets, np.int64),
        keypoints_P2=np.concatenate(kp).astype(np.float32),
        descriptors_PD=quantize(np.concatenate(desc)),
        points_P3=np.concatenate(pts).astype(np.float32), source_P=np.concatenate(src),
        extractor=extractor.name, extractor_id=extractor.identity,
        short_side=int(np.median(extracted_at)))
    stats = {"keyframes": fmap.n_keyframes, "points": fmap.n_points, **fmap.source_counts(),
             "keyframe_indices": [int(i) for i in keep],
             "extraction_seconds": round(t1 - t0, 1),
             "refinement": refinement,
             "triangulation_seconds": round(t2 - t_refined, 1),
             "total_seconds": round(time.time() - t0, 1), "megabytes": round(fmap.nbytes() / 1e6, 2)}
    return fmap, stats
