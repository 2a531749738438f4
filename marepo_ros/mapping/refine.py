"""Refine drifting mapping poses: bundle adjustment over the keyframes' feature tracks.

A robot's SLAM/VIO poses drift: a place seen twice is placed twice, and the map then holds two
copies of one wall. ``refine_keyframe_poses`` adjusts the keyframe poses (cam_from_map, the first
keyframe fixed: the map stays in the robot's frame) and the tracked points (``tracks``) to
minimise, jointly:
- the reprojection error of every track observation (pixels / ``sigma_px``, Cauchy loss);
- where a keyframe has depth, the depth of its observations (metres / (``sigma_depth_m`` +
  ``sigma_depth_rel`` x depth));
- the input poses as priors on each step between consecutive keyframes (capture order): a VIO's
  motion over a few centimetres is accurate while its error accumulates over the path, so the
  relative motion is kept within ``sigma_step_m`` + ``sigma_step_rel`` x the step (and
  ``sigma_turn_deg`` + ``sigma_turn_deg_per_m`` x the step) and loops close through the tracks.

Solved by Levenberg-Marquardt with the points eliminated (Schur complement; the reduced pose
system is sparse and solved by sparse LU; 163 keyframes, 21 000 tracks: about 1.5 s per
iteration on 2 cores, mostly the finite-difference Jacobian on its known sparsity; 1000 frames,
28 000 tracks: about 4 s). Written here rather than with pycolmap/pyceres: pycolmap 4's Python API
does not expose its bundle adjuster's problem to add relative-pose priors or depth, pyceres
cannot give COLMAP's 7-parameter pose blocks their manifold from Python, and scipy's
``least_squares`` (trf + lsmr) made no progress on this problem (its inexact steps were
rejected) while a direct sparse solve took a minute per iteration.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize._numdiff import approx_derivative, group_columns
from scipy.sparse import bsr_matrix, coo_matrix, diags
from scipy.sparse.linalg import spsolve
from scipy.spatial.transform import Rotation

from ..geometry import make_pose, pose_error
from .views import triangulate_rays
from ..models.xfeat import ImageFeatures
from .tracks import Tracks, build_tracks, candidate_pairs


@dataclass(frozen=True)
class RefineConfig:
    """Noise model of the bundle adjustment (see the module docstring) and its iterations.

    max_keyframes, part_overlap: more keyframes than max_keyframes are refined by parts
    (``refine_keyframes``): consecutive runs of at most max_keyframes in capture order, each
    sharing its first part_overlap keyframes with the part before, which hold them at the
    poses it refined (matching the tracks grows with the keyframes, and the adjustment faster:
    1000 keyframes, 6900 pairs, take about 2 min to match on 2 cores and 1 min to adjust).
    min_gain: the refined poses replace the given ones only when they explain the images this
    many times better (median reprojection error of the tracks, given poses with their best
    points against the joint solution; ``map build --refine-poses auto``, the default; 0 with
    ``always``). Below it the given poses may be as good as the images allow, and what is left
    is the images' own error (unmodelled lens distortion, depth not synchronised or not
    registered to the colour camera), which a refinement would fold into the poses. Fitted on
    `benchmarks/drift.py`'s rows: a rendered room's drifting poses gained 3.4-3.7x (and were
    corrected: 85 -> 100 % within 5 cm/5° at 3 % drift), its exact poses 1.0x. On redkitchen the
    gain does not tell drift apart: its KinectFusion poses (the depth camera's) gain 2.0x, more
    than a 3 % drift of poses that agree with the colour images (1.5x; 1.2x without drift),
    and refining them moves the map away from the poses it is scored against; there a drifting
    map is corrected only with ``always`` (36.8 -> 97.6 % within 5 cm/5° at 3 % drift, scored
    against the image-consistent poses; docs/results.md, Drift)."""
    sigma_px: float = 1.0
    sigma_depth_m: float = 0.01
    sigma_depth_rel: float = 0.01
    sigma_step_m: float = 0.002
    sigma_step_rel: float = 0.02
    sigma_turn_deg: float = 0.1
    sigma_turn_deg_per_m: float = 1.0
    max_iterations: int = 15
    min_gain: float = 2.5
    max_keyframes: int = 1000
    part_overlap: int = 100


@dataclass
class Refinement:
    """map_from_cam_K44: refined keyframe poses; points_T3: the tracks' points (map frame);
    report: disagreement before / after (median and 90th-percentile reprojection px, median
    depth cm), how far the poses moved (median / max cm and deg), sizes and seconds."""
    map_from_cam_K44: np.ndarray
    points_T3: np.ndarray
    report: dict


def _depth_at(depth_HW: np.ndarray | None, uv_N2: np.ndarray) -> np.ndarray:
    """(N,) depth (metres) at the nearest pixel of each keypoint; 0 outside or without depth."""
    if depth_HW is None:
        return np.zeros(len(uv_N2))
    H, W = depth_HW.shape
    u, v = np.rint(uv_N2[:, 0]).astype(int), np.rint(uv_N2[:, 1]).astype(int)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    out = np.zeros(len(uv_N2))
    out[inside] = depth_HW[v[inside], u[inside]]
    return out


def initial_points(tracks: Tracks, uv_M2: np.ndarray, depth_M: np.ndarray,
                   map_from_cam_K44: np.ndarray, Ks_K33: np.ndarray) -> np.ndarray:
    """(T, 3) first guess of each track's point: lifted from the depth of its first observation
    that has depth, else the rays' least-squares intersection under the given poses."""
    kf, pt = tracks.keyframe_M, tracks.point_M
    X = np.full((tracks.n_points, 3), np.nan)
    has = depth_M > 0
    order = np.nonzero(has)[0][::-1]                      # the first observation wins
    cam = backproject_each(uv_M2[order], depth_M[order], Ks_K33[kf[order]])
    X[pt[order]] = np.einsum("mij,mj->mi", map_from_cam_K44[kf[order], :3, :3], cam) \
        + map_from_cam_K44[kf[order], :3, 3]
    todo = np.isnan(X[:, 0])
    if todo.any():
        rays = np.einsum("mij,mj->mi", map_from_cam_K44[kf, :3, :3],
                         backproject_each(uv_M2, np.ones(len(kf)), Ks_K33[kf]))
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        length = np.bincount(pt, minlength=tracks.n_points)
        V = int(length.max())
        slot = np.zeros(len(pt), int)
        order = np.argsort(pt, kind="stable")
        starts = np.concatenate([[0], np.cumsum(length)[:-1]])
        slot[order] = np.arange(len(pt)) - starts[pt[order]]
        centres, rays_tv, used = (np.zeros((tracks.n_points, V, 3)), np.zeros((tracks.n_points, V, 3)),
                                  np.zeros((tracks.n_points, V), bool))
        centres[pt, slot], rays_tv[pt, slot], used[pt, slot] = map_from_cam_K44[kf, :3, 3], rays, True
        X[todo] = triangulate_rays(centres[todo], rays_tv[todo], used[todo])
    return X


def backproject_each(uv_N2: np.ndarray, depth_N: np.ndarray, Ks_N33: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points of pixels with their own intrinsics and depth (metres)."""
    x = (uv_N2[:, 0] - Ks_N33[:, 0, 2]) / Ks_N33[:, 0, 0]
    y = (uv_N2[:, 1] - Ks_N33[:, 1, 2]) / Ks_N33[:, 1, 1]
    return np.stack([x * depth_N, y * depth_N, depth_N], 1)


class _Problem:
    """Residuals of the bundle adjustment over parameters [rotation-vector updates and
    translations of keyframes 1..K-1 (6 each), points (3 each)]."""

    def __init__(self, tracks: Tracks, uv_M2, depth_M, cam_from_map_K44, Ks_K33, cfg: RefineConfig):
        self.kf, self.pt, self.uv, self.depth = tracks.keyframe_M, tracks.point_M, uv_M2, depth_M
        self.R0, self.t0 = cam_from_map_K44[:, :3, :3], cam_from_map_K44[:, :3, 3]
        self.Ks, self.cfg = Ks_K33, cfg
        self.K, self.T = len(cam_from_map_K44), tracks.n_points
        self.has_depth = depth_M > 0
        self.sigma_depth = cfg.sigma_depth_m + cfg.sigma_depth_rel * depth_M[self.has_depth]
        # relative-motion priors: cam_{k+1} from cam_k of the input poses
        R_rel = self.R0[1:] @ np.transpose(self.R0[:-1], (0, 2, 1))
        self.R_rel0, self.t_rel0 = R_rel, self.t0[1:] - np.einsum("kij,kj->ki", R_rel, self.t0[:-1])
        centres = invert_pose_batch(cam_from_map_K44)[:, :3, 3]
        step = np.linalg.norm(np.diff(centres, axis=0), axis=1)
        self.sigma_step = cfg.sigma_step_m + cfg.sigma_step_rel * step
        self.sigma_turn = np.radians(cfg.sigma_turn_deg + cfg.sigma_turn_deg_per_m * step)

    def unpack(self, x):
        poses = np.concatenate([np.zeros((1, 6)), x[:6 * (self.K - 1)].reshape(-1, 6)])
        R = Rotation.from_rotvec(poses[:, :3]).as_matrix() @ self.R0
        t = self.t0 + poses[:, 3:]
        return R, t, x[6 * (self.K - 1):].reshape(-1, 3)

    def pack(self, R, t, X):
        dr = Rotation.from_matrix(R @ np.transpose(self.R0, (0, 2, 1))).as_rotvec()
        return np.concatenate([np.hstack([dr, t - self.t0])[1:].ravel(), X.ravel()])

    def reprojection(self, R, t, X):
        """(M, 2) reprojection error in pixels; (M,) depth of each observation in its camera."""
        c = np.einsum("mij,mj->mi", R[self.kf], X[self.pt]) + t[self.kf]
        z = np.where(np.abs(c[:, 2]) > 1e-6, c[:, 2], 1e-6)
        K = self.Ks[self.kf]
        u = K[:, 0, 0] * c[:, 0] / z + K[:, 0, 2]
        v = K[:, 1, 1] * c[:, 1] / z + K[:, 1, 2]
        return np.stack([u, v], 1) - self.uv, c[:, 2]

    def residuals(self, x):
        R, t, X = self.unpack(x)
        err, z = self.reprojection(R, t, X)
        R_rel = R[1:] @ np.transpose(R[:-1], (0, 2, 1))
        t_rel = t[1:] - np.einsum("kij,kj->ki", R_rel, t[:-1])
        turn = Rotation.from_matrix(R_rel @ np.transpose(self.R_rel0, (0, 2, 1))).as_rotvec()
        return np.concatenate([
            (err / self.cfg.sigma_px).ravel(),
            (z[self.has_depth] - self.depth[self.has_depth]) / self.sigma_depth,
            (turn / self.sigma_turn[:, None]).ravel(),
            ((t_rel - self.t_rel0) / self.sigma_step[:, None]).ravel()])

    def sparsity(self):
        """The Jacobian's non-zero pattern (residuals x parameters)."""
        M, K, P = len(self.kf), self.K, 6 * (self.K - 1)
        rows, cols = [], []

        def add(r, c):
            rows.append(np.repeat(r[:, None], c.shape[1], 1).ravel())
            cols.append(c.ravel())
        pose_cols = lambda k: np.where((k > 0)[:, None], 6 * (k - 1)[:, None] + np.arange(6), -1)
        point_cols = lambda p: P + 3 * p[:, None] + np.arange(3)
        for axis in range(2):
            r = 2 * np.arange(M) + axis
            add(r, pose_cols(self.kf))
            add(r, point_cols(self.pt))
        r = 2 * M + np.arange(int(self.has_depth.sum()))
        add(r, pose_cols(self.kf[self.has_depth]))
        add(r, point_cols(self.pt[self.has_depth]))
        base = 2 * M + int(self.has_depth.sum())
        k = np.arange(K - 1)
        for block in range(2):
            for axis in range(3):
                r = base + block * 3 * (K - 1) + 3 * k + axis
                add(r, pose_cols(k))
                add(r, pose_cols(k + 1))
        rows, cols = np.concatenate(rows), np.concatenate(cols)
        keep = cols >= 0
        n_res = base + 6 * (K - 1)
        return coo_matrix((np.ones(keep.sum()), (rows[keep], cols[keep])),
                          shape=(n_res, P + 3 * self.T)).tocsr()


def invert_pose_batch(a_from_b_N44: np.ndarray) -> np.ndarray:
    """(N, 4, 4) inverses of rigid transforms."""
    out = np.zeros_like(a_from_b_N44)
    Rt = np.transpose(a_from_b_N44[:, :3, :3], (0, 2, 1))
    out[:, :3, :3], out[:, 3, 3] = Rt, 1.0
    out[:, :3, 3] = -np.einsum("nij,nj->ni", Rt, a_from_b_N44[:, :3, 3])
    return out


def _disagreement(problem: _Problem, x) -> dict:
    R, t, X = problem.unpack(x)
    err, z = problem.reprojection(R, t, X)
    px = np.linalg.norm(err, axis=1)
    d = np.abs(z - problem.depth)[problem.has_depth]
    return {"median_px": round(float(np.median(px)), 2), "p90_px": round(float(np.percentile(px, 90)), 2),
            "median_depth_cm": round(100 * float(np.median(d)), 2) if len(d) else None}


def _schur_step(H, b, n_pose: int, n_points: int, damping: float) -> np.ndarray:
    """The Levenberg-Marquardt step of normal equations H dx = b (H sparse, parameters: n_pose
    pose parameters, then 3 per point): the points' 3x3 blocks are eliminated (Schur
    complement), the reduced pose system (sparse: keyframes couple only through shared tracks and
    consecutive priors) solved by sparse LU, the points back-substituted."""
    H = H.tocsr()
    P = n_pose
    A = H[:P, :P]
    B = H[:P, P:]
    C = H[P:, P:].tocoo()
    blocks = np.zeros((n_points, 3, 3))
    blocks[C.row // 3, C.row % 3, C.col % 3] = C.data
    blocks += damping * blocks * np.eye(3) + 1e-9 * np.eye(3)
    A = A + diags(damping * A.diagonal() + 1e-9)
    C_inv = bsr_matrix((np.linalg.inv(blocks), np.arange(n_points), np.arange(n_points + 1)),
                       shape=(3 * n_points, 3 * n_points)).tocsr()
    BC = B @ C_inv
    d_pose = spsolve((A - BC @ B.T).tocsc(), b[:P] - BC @ b[P:])
    return np.concatenate([d_pose, C_inv @ (b[P:] - B.T @ d_pose)])


def _cauchy_cost(r: np.ndarray, scale: float) -> float:
    return float(np.sum(scale ** 2 * np.log1p((r / scale) ** 2)))


def _solve(problem: _Problem, x: np.ndarray, n_fixed_pose: int, iterations: int,
           scale: float = 3.0) -> tuple[np.ndarray, int]:
    """Levenberg-Marquardt with Cauchy weights (scale in sigmas) from x; the pose parameters are
    held when n_fixed_pose is their count (points alone). Returns (x, iterations run)."""
    sparsity = problem.sparsity()
    P = 6 * (problem.K - 1)
    free = slice(n_fixed_pose, None)
    sub = sparsity[:, free]
    groups = group_columns(sub)
    damping, n = 1e-3, 0
    for n in range(1, iterations + 1):
        r = problem.residuals(x)
        f = lambda y: problem.residuals(np.concatenate([x[:n_fixed_pose], y]))
        J = approx_derivative(f, x[free], sparsity=(sub, groups)).tocsr()
        JW = J.multiply((1.0 / (1.0 + (r / scale) ** 2))[:, None]).tocsr()
        H, b = J.T @ JW, -(JW.T @ r)
        before = _cauchy_cost(r, scale)
        while damping < 1e6:
            step = _schur_step(H, b, P - n_fixed_pose, problem.T, damping)
            trial = x.copy()
            trial[free] += step
            after = _cauchy_cost(problem.residuals(trial), scale)
            if after < before:
                x, damping = trial, max(damping / 3, 1e-6)
                break
            damping *= 4
        else:
            break
        if before - after < 1e-4 * before:
            break
    return x, n


def refine_keyframe_poses(tracks: Tracks, uv_M2: np.ndarray, depth_M: np.ndarray,
                          map_from_cam_K44: np.ndarray, Ks_K33: np.ndarray,
                          cfg: RefineConfig = RefineConfig(), *, n_held: int = 1) -> Refinement:
    """Bundle-adjusted keyframe poses (K, 4, 4 map_from_cam, capture order, the first ``n_held``
    unchanged) from the tracks' observations: pixels uv_M2, depth_M metres (0: none) of each
    observation. The disagreement before is that of the input poses with their best points (the
    points adjusted alone); after, that of the joint solution. ``report["applied"]``: whether
    the gain reaches ``cfg.min_gain`` (the caller keeps the given poses otherwise)."""
    t0 = time.time()
    poses = np.asarray(map_from_cam_K44, np.float64)
    X0 = initial_points(tracks, uv_M2, depth_M, poses, Ks_K33)
    problem = _Problem(tracks, uv_M2, depth_M, invert_pose_batch(poses), Ks_K33, cfg)
    P = 6 * (problem.K - 1)
    x, _ = _solve(problem, problem.pack(problem.R0, problem.t0, np.nan_to_num(X0)), P, 3)
    before = _disagreement(problem, x)
    x, iterations = _solve(problem, x, 6 * (max(n_held, 1) - 1), cfg.max_iterations)
    after = _disagreement(problem, x)
    R, t, X = problem.unpack(x)
    refined = invert_pose_batch(np.stack([make_pose(R[k], t[k]) for k in range(problem.K)]))
    moved = np.array([pose_error(refined[k], poses[k]) for k in range(problem.K)])
    gain = before["median_px"] / max(after["median_px"], 1e-9)
    report = {"keyframes": problem.K, "tracks": problem.T, "observations": len(tracks.point_M),
              "pairs": len(tracks.pairs_P2), "before": before, "after": after,
              "gain": round(gain, 2), "min_gain": cfg.min_gain, "applied": bool(gain >= cfg.min_gain),
              "moved_cm_median": round(100 * float(np.median(moved[:, 0])), 1),
              "moved_cm_max": round(100 * float(moved[:, 0].max()), 1),
              "turned_deg_max": round(float(moved[:, 1].max()), 2),
              "iterations": iterations, "seconds": round(time.time() - t0, 1)}
    return Refinement(refined, X, report)


def observation_arrays(tracks: Tracks, feats: list[ImageFeatures],
                       depth_per_keyframe: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(M, 2) pixels and (M,) depth in metres (0: none) of the tracks' observations."""
    uv = np.concatenate([f.keypoints_N2 for f in feats]).astype(np.float64)
    depth = np.nan_to_num(np.concatenate(depth_per_keyframe).astype(np.float64), nan=0.0)
    offsets = np.concatenate([[0], np.cumsum([len(f.keypoints_N2) for f in feats])])
    node = offsets[tracks.keyframe_M] + tracks.keypoint_M
    return uv[node], depth[node]


def part_bounds(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """[(start, stop)] capture-order parts of n keyframes: at most ``size`` each, every part
    after the first starting ``overlap`` keyframes before the end of the one before."""
    if n <= size:
        return [(0, n)]
    if not 0 < overlap < size:
        raise ValueError(f"refinement parts of {size} keyframes need an overlap in 1..{size - 1}, got {overlap}")
    bounds, start = [], 0
    while True:
        stop = min(start + size, n)
        bounds.append((start, stop))
        if stop == n:
            return bounds
        start = stop - overlap


def refine_keyframes(feats: list[ImageFeatures], map_from_cam_K44: np.ndarray, Ks_K33: np.ndarray,
                     depth_per_keyframe: list[np.ndarray], *, keypoints: int = 1024,
                     cfg: RefineConfig = RefineConfig(), progress=None) -> Refinement:
    """Refined keyframe poses from their features (capture order): the best ``keypoints`` of
    each keyframe are tracked (``tracks``) and bundle-adjusted with the given poses as priors.
    Above ``cfg.max_keyframes``, by parts (``part_bounds``): each part holds the keyframes it
    shares with the part before at the poses that part refined, and takes the rest of its given
    poses moved by the last shared keyframe's correction, so each step's prior is kept. Tracks
    stay within a part: a place seen again in a later part is not joined to its first visit.
    depth_per_keyframe: (N_k,) depth of each keypoint in metres, NaN or 0 where none; progress:
    the mapping progress callback (stage "tracks", then "refinement"). The report of parts
    sums their sizes and weighs their disagreements by observations (``report["parts"]``: each
    part's own report)."""
    t0 = time.time()
    given = np.asarray(map_from_cam_K44, np.float64)
    top = [ImageFeatures(f.keypoints_N2[:keypoints], f.scores_N[:keypoints],
                         f.descriptors_ND[:keypoints]) for f in feats]
    bounds = part_bounds(len(top), cfg.max_keyframes, cfg.part_overlap)
    pairs = [candidate_pairs(top[a:b]) for a, b in bounds]
    total, done = sum(map(len, pairs)), 0
    poses, points, reports = given.copy(), [], []
    for (a, b), part_pairs in zip(bounds, pairs):
        held = 1 if a == 0 else bounds[len(reports) - 1][1] - a
        if a > 0:                  # carry the rest of the part with the last shared keyframe
            last = a + held - 1
            poses[last + 1:b] = poses[last] @ invert_pose_batch(given[last:last + 1])[0] @ given[last + 1:b]
        tracks = build_tracks(top[a:b], Ks_K33[a:b], part_pairs,
                              progress=(lambda d, n, o=done: progress("tracks", o + d, total, {}))
                              if progress else None)
        done += len(part_pairs)
        if tracks.n_points == 0:
            raise ValueError(f"no feature track across keyframes {a}-{b - 1}: nothing to refine "
                             f"their poses with")
        uv, depth = observation_arrays(tracks, top[a:b], [d[:keypoints] for d in depth_per_keyframe[a:b]])
        part = refine_keyframe_poses(tracks, uv, depth, poses[a:b], Ks_K33[a:b], cfg, n_held=held)
        poses[a:b] = part.map_from_cam_K44
        points.append(part.points_T3)
        reports.append(part.report)
    report = reports[0] if len(reports) == 1 else _parts_report(reports, given, poses, cfg)
    report["seconds"] = round(time.time() - t0, 1)
    if progress:
        progress("refinement", 1, 1, {"after_median_px": report["after"]["median_px"]})
    return Refinement(poses, np.concatenate(points), report)


def _parts_report(reports: list[dict], given_K44: np.ndarray, refined_K44: np.ndarray,
                  cfg: RefineConfig) -> dict:
    """One report of a refinement by parts: sizes summed (shared keyframes once), disagreements
    averaged with the parts' observations as weights, the gain of those averages, and how far
    the poses moved from the given ones."""
    w = np.array([r["observations"] for r in reports], np.float64)

    def mean(stage: str, key: str):
        v = [r[stage][key] for r in reports]
        return None if None in v else round(float(np.average(v, weights=w)), 2)
    before, after = ({k: mean(stage, k) for k in ("median_px", "p90_px", "median_depth_cm")}
                     for stage in ("before", "after"))
    moved = np.array([pose_error(r, g) for r, g in zip(refined_K44, given_K44)])
    gain = before["median_px"] / max(after["median_px"], 1e-9)
    return {"keyframes": len(given_K44), "tracks": sum(r["tracks"] for r in reports),
            "observations": int(w.sum()), "pairs": sum(r["pairs"] for r in reports),
            "before": before, "after": after, "gain": round(gain, 2), "min_gain": cfg.min_gain,
            "applied": bool(gain >= cfg.min_gain),
            "moved_cm_median": round(100 * float(np.median(moved[:, 0])), 1),
            "moved_cm_max": round(100 * float(moved[:, 0].max()), 1),
            "turned_deg_max": round(float(moved[:, 1].max()), 2),
            "iterations": max(r["iterations"] for r in reports), "parts": reports}


def corrected_poses(map_from_cam_N44: np.ndarray, keyframes: list[int],
                    refined_K44: np.ndarray) -> np.ndarray:
    """(N, 4, 4) poses of all mapping images (capture order) moved with their keyframes: image i
    takes the correction (refined x given^-1) of the last keyframe at or before it; keyframes
    (K,) are indices into the images, refined_K44 their refined poses."""
    T = np.asarray(map_from_cam_N44, np.float64)
    keyframes = np.asarray(keyframes)
    corrections = refined_K44 @ invert_pose_batch(T[keyframes])
    owner = np.clip(np.searchsorted(keyframes, np.arange(len(T)), side="right") - 1, 0, None)
    return corrections[owner] @ T
