"""Scoring a live replay (no ROS): what ``marepo-ros replay`` and the demo record, scored.

    FrameTally      the node's frame counters over one replay: localized + rejected + dropped
                    as stale + lost in transport = played
    score           the recorded poses against the bag's ground truth: metrics, report, files
    live_markdown   the replay's section of report.md
    summary_text    what ``marepo-ros replay`` prints at the end

Stamps are int nanoseconds as in the bag; latency is wall time in seconds
(``time.monotonic()``) as recorded while playing, since the bag's stamps are not wall time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.bag import BagFrames, associate
from .metrics import WRONG, format_table, frame_errors, summarize
from .report import write_evaluation


@dataclass
class FrameTally:
    """Frames of one replay: ``played`` images published, and the node's counters (~/status
    ``frames``) over the replay: ``received``, ``localized``, ``rejected``, ``dropped_stale``.
    Images published but never received are ``lost_in_transport``."""
    played: int
    received: int
    localized: int
    rejected: int
    dropped_stale: int

    @classmethod
    def between(cls, played: int, before: dict, after: dict) -> "FrameTally":
        """From two ~/status ``frames`` dicts, before and after the replay."""
        d = {k: after.get(k, 0) - before.get(k, 0)
             for k in ("received", "localized", "rejected", "dropped_stale")}
        return cls(played=played, **d)

    @property
    def lost_in_transport(self) -> int:
        return self.played - self.received

    @property
    def adds_up(self) -> bool:
        return (self.localized + self.rejected + self.dropped_stale + self.lost_in_transport
                == self.played and self.lost_in_transport >= 0)

    def as_dict(self) -> dict:
        return {"played": self.played, "received": self.received, "localized": self.localized,
                "rejected": self.rejected, "dropped_stale": self.dropped_stale,
                "lost_in_transport": self.lost_in_transport, "adds_up": self.adds_up}

    def lines(self) -> list[str]:
        """A human summary: the counts and the sum check."""
        def pct(n: int) -> str:
            return f"{100 * n / max(self.played, 1):5.1f} %"
        return [f"  localized          {self.localized:5d}  {pct(self.localized)}",
               f"  rejected           {self.rejected:5d}  {pct(self.rejected)}",
               f"  dropped as stale   {self.dropped_stale:5d}  {pct(self.dropped_stale)}",
               f"  lost in transport  {self.lost_in_transport:5d}  {pct(self.lost_in_transport)}"
               + ("  (published, never received by the node)" if self.lost_in_transport else ""),
               f"  = played           {self.played:5d}  "
               + ("(adds up)" if self.adds_up else "(DOES NOT ADD UP: another publisher on the "
                                                   "image topic, or the node was restarted?)")]


def score(bag: BagFrames, poses: dict[int, tuple[np.ndarray, float]], sent_at: dict[int, float],
          tally: FrameTally, out: Path, meta: dict) -> dict:
    """Score the node's poses against the bag's ground truth, write metrics.json,
    estimate.tum, groundtruth.tum, per_frame.csv and the report into ``out``; return the
    metrics.

    bag: its ``stamps_ns`` (N,) int64 and ``map_from_cam`` (N x 4x4 or None) are used.
    poses: image stamp (int ns) -> (4x4 float64 map_from_cam, arrival time s).
    sent_at: image stamp (int ns) -> publishing time s (the same clock as the arrivals).
    meta: merged into the metrics (``bag``, when present, names the report).

    Frames are the images with ground truth; each gets the pose stamped with its stamp (or
    none: not localized). Top-level metrics are ``metrics.summarize`` over all of them
    (a frame without a pose counts as failed); ``localized_only`` the same over the localized
    frames; ``latency_ms``: publishing the image -> its pose arriving, over localized frames.
    """
    keep = [i for i, T in enumerate(bag.map_from_cam) if T is not None]
    stamps_ns = bag.stamps_ns[keep]
    pose_stamps = np.array(sorted(poses), dtype=np.int64)
    match = associate(stamps_ns, pose_stamps, max_dt=1e-6)
    gts = [bag.map_from_cam[i] for i in keep]
    estimates = [poses[int(pose_stamps[j])][0] if j >= 0 else None for j in match]
    latency = [1e3 * (poses[int(pose_stamps[j])][1] - sent_at[int(s)])
               if j >= 0 and int(s) in sent_at else None for s, j in zip(stamps_ns, match)]
    t_cm, r_deg = frame_errors(estimates, gts)
    lat = [v for v in latency if v is not None]
    metrics = summarize(estimates, gts, lat)
    ok = [i for i, e in enumerate(estimates) if e is not None]
    metrics["localized_only"] = {k: v for k, v in summarize(
        [estimates[i] for i in ok], [gts[i] for i in ok], lat).items() if k != "ms_per_frame"}
    metrics["n_wrong_published"] = int(sum(e is not None and (t > WRONG[0] or r > WRONG[1])
                                           for e, t, r in zip(estimates, t_cm, r_deg)))
    metrics["frames"] = tally.as_dict()
    metrics["localized_fraction"] = tally.localized / max(tally.played, 1)
    metrics["latency_ms"] = ({"median": float(np.median(lat)), "mean": float(np.mean(lat)),
                              "p90": float(np.percentile(lat, 90)), "max": float(np.max(lat))}
                             if lat else None)
    metrics.update(meta)

    stamps = list(stamps_ns / 1e9)
    rows = [f"{s:.6f},{int(e is not None)},{t:.3f},{r:.4f},{'' if ms is None else f'{ms:.1f}'}"
            for s, e, t, r, ms in zip(stamps, estimates, t_cm, r_deg, latency)]
    write_evaluation(out, stamps=stamps, estimates=estimates, gts=gts, t_cm=t_cm, r_deg=r_deg,
                     metrics=metrics, title=f"Live replay of {meta.get('bag', bag.path)}",
                     notes=live_markdown(metrics),
                     per_frame_csv="stamp,localized,translation_cm,rotation_deg,latency_ms\n"
                                   + "\n".join(rows) + "\n")
    return metrics


def live_markdown(metrics: dict) -> str:
    """The replay's own report section (``score``'s metrics): frame counts, latency, accuracy
    of the localized frames."""
    f, lat, loc = metrics["frames"], metrics["latency_ms"], metrics["localized_only"]
    rows = ["## Live replay", "",
            f"Played {f['played']} images at {metrics.get('rate', 1):g}x the recorded rate; "
            f"every image is localized, rejected, dropped as stale (a newer image arrived "
            f"while the node was busy) or lost in transport.", "",
            "| frames | count |", "|---|---|",
            *(f"| {k.replace('_', ' ')} | {f[k]} |" for k in
              ("played", "localized", "rejected", "dropped_stale", "lost_in_transport")),
            f"| adds up | {'yes' if f['adds_up'] else 'NO'} |", ""]
    if lat:
        rows += [f"Latency, image published -> pose received (wall clock, localized frames): "
                 f"median {lat['median']:.0f} ms, mean {lat['mean']:.0f} ms, 90th percentile "
                 f"{lat['p90']:.0f} ms, max {lat['max']:.0f} ms.", ""]
    if loc["n_frames"]:
        rows += [f"Accuracy of the {loc['n_frames']} localized frames: median "
                 f"{loc['median_translation_cm']:.1f} cm / {loc['median_rotation_deg']:.2f} deg, "
                 f"{loc['pct_5cm_5deg']:.1f} % within 5 cm / 5 deg, {loc['pct_10cm_5deg']:.1f} % "
                 f"within 10 cm / 5 deg; {metrics['n_wrong_published']} published poses were "
                 f"wrong (more than {WRONG[0]:g} cm or {WRONG[1]:g} deg off). The table below "
                 f"counts every image with ground truth, a frame without a pose as failed.", ""]
    return "\n".join(rows)


def summary_text(metrics: dict, out: Path) -> str:
    """What ``marepo-ros replay`` prints at the end (``score``'s metrics, its ``out``)."""
    f, lat, loc = metrics["frames"], metrics["latency_ms"], metrics["localized_only"]
    lines = [f"replayed {f['played']} images at {metrics.get('rate', 1):g}x:", *FrameTally(
        **{k: f[k] for k in ("played", "received", "localized", "rejected", "dropped_stale")}).lines()]
    if lat:
        lines.append(f"latency, image published -> pose received: median {lat['median']:.0f} ms, "
                     f"mean {lat['mean']:.0f} ms, p90 {lat['p90']:.0f} ms, max {lat['max']:.0f} ms")
    if loc["n_frames"]:
        lines.append(f"accuracy of the localized frames: median {loc['median_translation_cm']:.1f} cm"
                     f" / {loc['median_rotation_deg']:.2f} deg, {loc['pct_5cm_5deg']:.1f} % within "
                     f"5 cm/5 deg, {loc['pct_10cm_5deg']:.1f} % within 10 cm/5 deg, "
                     f"{metrics['n_wrong_published']} wrong (> {WRONG[0]:g} cm or {WRONG[1]:g} deg)")
    lines += ["all images with ground truth (no pose = failed):",
              format_table({"live": metrics}),
              f"wrote {out / 'metrics.json'}, {out / 'report.md'} (+ plots), estimate.tum, "
              f"groundtruth.tum, per_frame.csv, outputs/ (rosbag2 of the node's outputs)"]
    return "\n".join(lines)
