"""Relocalization metrics as ACE and marepo report them, and TUM trajectory files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..geometry import pose_error, quat_from_pose

# (name, translation threshold in cm, rotation threshold in degrees)
THRESHOLDS = [("pct_1cm_1deg", 1, 1), ("pct_2cm_2deg", 2, 2), ("pct_5cm_5deg", 5, 5),
              ("pct_10cm_5deg", 10, 5), ("pct_25cm_2deg", 25, 2), ("pct_50cm_5deg", 50, 5)]


WRONG = (50.0, 10.0)   # a published pose this far off (cm, degrees) is wrong


def published_poses(t_cm: np.ndarray, r_deg: np.ndarray, confidences: np.ndarray,
                    min_confidence: float) -> dict:
    """How many estimates a node would publish (confidence >= min_confidence), and how many of
    those are wrong (more than WRONG[0] cm or WRONG[1] degrees off): the failures a robot sees."""
    published = np.asarray(confidences, float) >= min_confidence
    wrong = published & ((np.asarray(t_cm) > WRONG[0]) | (np.asarray(r_deg) > WRONG[1]))
    return {"min_confidence": float(min_confidence), "n_published": int(published.sum()),
            "n_wrong_published": int(wrong.sum())}


def frame_errors(estimates: list[np.ndarray | None], ground_truth: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame (translation error in cm, rotation error in degrees); inf without an estimate."""
    errors = [pose_error(est, gt) if est is not None else (np.inf, np.inf)
              for est, gt in zip(estimates, ground_truth)]
    if not errors:
        return np.zeros(0), np.zeros(0)
    t, r = np.array(errors).T
    return 100 * t, r


def summarize(estimates: list[np.ndarray | None], ground_truth: list[np.ndarray],
              ms_per_frame: list[float]) -> dict:
    """Metrics over frames. ``estimates[i]`` is a 4x4 map_from_cam or None (not localized);
    a frame without an estimate counts as failed (infinite error) in every percentage and in
    the medians. Returns the keys of THRESHOLDS plus median_translation_cm,
    median_rotation_deg, ms_per_frame, n_frames, n_localized."""
    t, r = frame_errors(estimates, ground_truth)
    n = len(t)
    out = {"n_frames": n, "n_localized": int(sum(e is not None for e in estimates)),
           "median_translation_cm": float(np.median(t)) if n else float("nan"),
           "median_rotation_deg": float(np.median(r)) if n else float("nan"),
           "ms_per_frame": float(np.mean(ms_per_frame)) if ms_per_frame else float("nan")}
    for name, tc, rd in THRESHOLDS:
        out[name] = float(100 * np.mean((t < tc) & (r < rd))) if n else 0.0
    return out


def write_tum(path: str | Path, stamps: list[float], poses: list[np.ndarray | None]) -> None:
    """TUM trajectory (``t tx ty tz qx qy qz qw`` per line, evo-compatible); None poses skipped."""
    lines = []
    for stamp, T in zip(stamps, poses):
        if T is None:
            continue
        t, q = quat_from_pose(T)
        lines.append(f"{stamp:.6f} " + " ".join(f"{v:.9f}" for v in (*t, *q)))
    Path(path).write_text("\n".join(lines) + ("\n" if lines else ""))


def format_table(rows: dict[str, dict]) -> str:
    """A plain-text table of metrics dicts, one column per named row."""
    keys = ["median_translation_cm", "median_rotation_deg", "pct_5cm_5deg", "pct_10cm_5deg",
            "pct_2cm_2deg", "pct_1cm_1deg", "ms_per_frame", "n_localized", "n_frames"]
    names = list(rows)
    width = max(12, *(len(n) for n in names))
    out = [f"{'':24s}" + "".join(f"{n:>{width + 2}s}" for n in names)]
    for k in keys:
        vals = []
        for n in names:
            v = rows[n].get(k)
            vals.append(f"{v:>{width + 2}.1f}" if isinstance(v, float) else f"{str(v):>{width + 2}s}")
        out.append(f"{k:24s}" + "".join(vals))
    return "\n".join(out)


def metrics_json(metrics: dict) -> str:
    """``metrics`` as strict JSON text: infinite or NaN numbers (e.g. the median error when
    fewer than half the frames got a pose) become null."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, float) and not np.isfinite(v):
            return None
        return v
    return json.dumps(clean(metrics), indent=2, allow_nan=False) + "\n"
