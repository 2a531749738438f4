"""Evaluation report: PNG plots and a report.md, from plain arrays (no localizer, no ROS).

Inputs, for N frames in time order:
    stamps: (N,) seconds; estimates: N x (4x4 map_from_cam or None when not localized);
    gts: N x 4x4 ground-truth map_from_cam; t_cm, r_deg: (N,) per-frame errors, inf when not
    localized (``metrics.frame_errors``); metrics: the dict ``metrics.summarize`` returns.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

THRESHOLD_CM, THRESHOLD_DEG = 5.0, 5.0
FAIL_COLOUR, GT_COLOUR = "#d62728", "0.55"
MD_KEYS = [("median_translation_cm", "median translation error (cm)", "{:.2f}"),
           ("median_rotation_deg", "median rotation error (deg)", "{:.2f}"),
           ("pct_1cm_1deg", "within 1 cm / 1 deg (%)", "{:.1f}"),
           ("pct_2cm_2deg", "within 2 cm / 2 deg (%)", "{:.1f}"),
           ("pct_5cm_5deg", "within 5 cm / 5 deg (%)", "{:.1f}"),
           ("pct_10cm_5deg", "within 10 cm / 5 deg (%)", "{:.1f}"),
           ("pct_25cm_2deg", "within 25 cm / 2 deg (%)", "{:.1f}"),
           ("pct_50cm_5deg", "within 50 cm / 5 deg (%)", "{:.1f}"),
           ("ms_per_frame", "time per frame (ms)", "{:.1f}"),
           ("n_localized", "frames localized", "{}"), ("n_frames", "frames", "{}")]


def top_down_basis(gts: list[np.ndarray]) -> tuple[np.ndarray, tuple[str, str]]:
    """(2x3 rows spanning the plot plane in map coordinates, axis labels).

    When the cameras are mostly upright (their mean image-down axis, camera +y in the map,
    has norm > 0.7), the plane is horizontal: seen from above, first axis along the trajectory's
    main horizontal direction. Otherwise the two map axes of largest ground-truth extent.
    """
    down = np.mean([T[:3, 1] for T in gts], axis=0)
    positions = np.array([T[:3, 3] for T in gts])
    if np.linalg.norm(down) > 0.7:
        up = -down / np.linalg.norm(down)
        flat = positions - positions.mean(axis=0)
        flat -= np.outer(flat @ up, up)
        e1 = np.linalg.eigh(flat.T @ flat)[1][:, -1]
        e1 = e1 - (e1 @ up) * up
        e1 /= np.linalg.norm(e1)
        return np.stack([e1, np.cross(up, e1)]), ("horizontal, main direction (m)",
                                                  "horizontal, across (m)")
    axes = sorted(np.argsort(np.ptp(positions, axis=0))[-2:])
    return np.eye(3)[axes], tuple(f"map {'xyz'[a]} (m)" for a in axes)


def _breaks(stamps: np.ndarray) -> np.ndarray:
    """(N,) bool, True where a time gap (> 3x the median step) starts a new segment."""
    steps = np.diff(stamps)
    gap = np.zeros(len(stamps), dtype=bool)
    if len(steps):
        gap[1:] = steps > 3 * max(np.median(steps), 1e-9)
    return gap


def _with_gaps(xy: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """(N + gaps, 2) points with a NaN row before each gap, so lines break there."""
    rows = []
    for p, g in zip(xy, gap):
        if g:
            rows.append([np.nan, np.nan])
        rows.append(p)
    return np.array(rows).reshape(-1, 2)


def plot_trajectory(path: Path, stamps, estimates, gts, t_cm) -> None:
    """Top-down view: ground truth as a grey line (broken at time gaps), estimates as dots
    coloured by translation error (cm, colour scale capped at max(10 cm, 90th percentile)),
    frames not localized as red crosses on the ground truth. The view frames the ground truth
    and the best 90 % of the estimates; the title counts the estimates left outside."""
    basis, labels = top_down_basis(gts)
    gt_xy = np.array([T[:3, 3] for T in gts]) @ basis.T
    ok = np.array([e is not None for e in estimates])
    err = np.asarray(t_cm, dtype=float)[ok]
    est_xy = np.array([e[:3, 3] for e in estimates if e is not None]).reshape(-1, 3) @ basis.T
    framed = est_xy[err <= np.percentile(err, 90)] if ok.any() else est_xy
    lo, hi = _view_box(np.vstack([gt_xy, framed]))
    aspect = (hi[1] - lo[1]) / (hi[0] - lo[0])
    fig, ax = plt.subplots(figsize=(7, float(np.clip(7 * aspect, 2.5, 8))))
    ax.plot(*_with_gaps(gt_xy, _breaks(np.asarray(stamps))).T, color=GT_COLOUR, lw=1.2,
            label="ground truth", zorder=1)
    if ok.any():
        vmax = max(10.0, float(np.percentile(err, 90)))
        sc = ax.scatter(*est_xy.T, c=err, cmap="viridis", vmin=0, vmax=vmax, s=14, zorder=2,
                        edgecolors="none", label="estimate")
        fig.colorbar(sc, cax=ax.inset_axes([1.02, 0, 0.025, 1]), label="translation error (cm)",
                     extend="max" if err.max() > vmax else "neither")
    if (~ok).any():
        ax.scatter(*gt_xy[~ok].T, marker="x", color=FAIL_COLOUR, s=30, zorder=3,
                   label="not localized")
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xlabel=labels[0], ylabel=labels[1], aspect="equal")
    ax.grid(alpha=0.3)
    outside = int(np.sum(np.any((est_xy < lo) | (est_xy > hi), axis=1)))
    ax.set_title(f"Trajectory, top-down ({ok.sum()} of {len(ok)} frames localized"
                 + (f", {outside} estimate{'s' * (outside > 1)} outside the view)" if outside else ")"))
    ax.legend(loc="best", fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")  # tight: takes in the inset colour bar
    plt.close(fig)


def _view_box(xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) (2,) corners in metres around the (N, 2) points, with a margin of 15 %
    of the larger side (at least 1.5 cm)."""
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    margin = 0.15 * max(float(np.max(hi - lo)), 0.1)
    return lo - margin, hi + margin


def _log_axis(ax, which: str) -> None:
    """Log scale on axis ``which`` ("x" or "y"), ticks at 1, 2, 5 x 10^k labelled plainly."""
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def plot_error_cdf(path: Path, t_cm, r_deg) -> None:
    """Cumulative % of frames below each error (translation in cm on a log axis, rotation in
    degrees); frames not localized count as failures, so the curves end below 100 %."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    for ax, err, unit, thr in ((axes[0], t_cm, "cm", THRESHOLD_CM), (axes[1], r_deg, "deg", THRESHOLD_DEG)):
        err = np.asarray(err, dtype=float)
        finite = np.sort(err[np.isfinite(err)])
        pct = 100 * np.arange(1, len(finite) + 1) / max(len(err), 1)
        ax.step(finite, pct, where="post", color="C0")
        if len(finite):
            ax.set_xlim(min(finite[0], thr) / 1.5, max(finite[-1], thr) * 1.5)
        below = 100 * np.mean(err < thr) if len(err) else 0.0
        ax.axvline(thr, color=FAIL_COLOUR, ls="--", lw=1)
        ax.text(0.03, 0.95, f"below {thr:g} {unit}: {below:.1f} %", transform=ax.transAxes,
                color=FAIL_COLOUR, fontsize=9, va="top")
        _log_axis(ax, "x")
        ax.set_ylim(0, 100)
        ax.set_xlabel(f"{'translation' if unit == 'cm' else 'rotation'} error ({unit})")
        ax.set_ylabel("frames with smaller error (%)")
        ax.grid(alpha=0.3, which="both")
    fig.suptitle("Error distribution")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_error_over_time(path: Path, stamps, t_cm, r_deg) -> None:
    """Translation (cm) and rotation (deg) error per frame against time since the first frame
    (s), log scale, threshold lines at 5 cm / 5 deg; frames not localized as red crosses at
    the top."""
    t = np.asarray(stamps, dtype=float)
    t = t - t[0] if len(t) else t
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True, layout="constrained")
    for ax, err, unit, thr in ((axes[0], t_cm, "cm", THRESHOLD_CM), (axes[1], r_deg, "deg", THRESHOLD_DEG)):
        err = np.asarray(err, dtype=float)
        ok = np.isfinite(err)
        ax.scatter(t[ok], err[ok], s=6, color="C0", label="localized")
        ax.axhline(thr, color=FAIL_COLOUR, ls="--", lw=1, label=f"threshold {THRESHOLD_CM:g} cm / {THRESHOLD_DEG:g} deg")
        _log_axis(ax, "y")
        if (~ok).any():
            ax.scatter(t[~ok], np.ones((~ok).sum()), transform=ax.get_xaxis_transform(), marker="x",
                       color=FAIL_COLOUR, s=20, clip_on=False, label="not localized (top edge)")
        ax.set_ylabel(f"{'translation' if unit == 'cm' else 'rotation'} error ({unit})")
        ax.grid(alpha=0.3, which="both")
    axes[1].set_xlabel("time since the first frame (s)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right", ncols=3, fontsize=8)
    fig.suptitle("Error over time", x=0.02, ha="left")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def metrics_markdown(metrics: dict) -> str:
    """A two-column markdown table of the headline metrics."""
    rows = ["| metric | value |", "|---|---|"]
    rows += [f"| {label} | {fmt.format(metrics[key])} |" for key, label, fmt in MD_KEYS if key in metrics]
    return "\n".join(rows)


def write_report(out: str | Path, *, stamps, estimates, gts, t_cm, r_deg, metrics: dict,
                 title: str = "Relocalization report", notes: str = "") -> list[Path]:
    """Write trajectory.png, error_cdf.png, error_over_time.png and report.md into ``out``;
    returns their paths. See the module docstring for the inputs; ``notes``: markdown put
    before the metrics table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pngs = [out / "trajectory.png", out / "error_cdf.png", out / "error_over_time.png"]
    plot_trajectory(pngs[0], stamps, estimates, gts, t_cm)
    plot_error_cdf(pngs[1], t_cm, r_deg)
    plot_error_over_time(pngs[2], stamps, t_cm, r_deg)
    source = {k: metrics[k] for k in ("dataset", "bag", "map", "estimator") if k in metrics}
    md = [f"# {title}", "", *(f"- {k}: `{v}`" for k, v in source.items()), "",
          *([notes, ""] if notes else []), metrics_markdown(metrics), "", *(f"![{p.stem}]({p.name})\n" for p in pngs)]
    (out / "report.md").write_text("\n".join(md))
    return [*pngs, out / "report.md"]


def write_evaluation(out: str | Path, *, stamps, estimates, gts, t_cm, r_deg, metrics: dict,
                     per_frame_csv: str, title: str, notes: str = "") -> None:
    """Everything an evaluation writes into ``out``: estimate.tum and groundtruth.tum (stamps
    in s), per_frame.csv (the given CSV text), metrics.json, and, when there are frames,
    report.md with its plots (``write_report``)."""
    from .metrics import metrics_json, write_tum

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_tum(out / "estimate.tum", stamps, estimates)
    write_tum(out / "groundtruth.tum", stamps, gts)
    (out / "per_frame.csv").write_text(per_frame_csv)
    (out / "metrics.json").write_text(metrics_json(metrics))
    if len(gts):
        write_report(out, stamps=stamps, estimates=estimates, gts=gts, t_cm=t_cm, r_deg=r_deg,
                     metrics=metrics, title=title, notes=notes)
