"""Live-replay scoring without ROS: the frame tally, the metrics and files of ``score``, the
report section and the printed summary (test_replay.py runs them over DDS)."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from marepo_ros.evaluation.scoring import FrameTally, live_markdown, score, summary_text
from marepo_ros.geometry import make_pose

S = 10**9  # ns per s


def test_frame_tally_counts_frames_lost_in_transport():
    before = {"received": 5, "localized": 3, "rejected": 1, "dropped_stale": 1}
    after = {"received": 13, "localized": 6, "rejected": 2, "dropped_stale": 5}
    tally = FrameTally.between(10, before, after)
    assert (tally.received, tally.lost_in_transport, tally.adds_up) == (8, 2, True)
    assert "lost in transport      2" in "\n".join(tally.lines())
    assert not FrameTally.between(7, before, after).adds_up  # more received than played


def fake_bag(n: int = 4) -> SimpleNamespace:
    """What ``score`` reads of a BagFrames: n images 1 s apart, the second without ground truth."""
    gts = [make_pose(np.eye(3), np.array([0.1 * i, 0.0, 1.0])) for i in range(n)]
    gts[1] = None
    return SimpleNamespace(path=Path("fake_bag"), stamps_ns=np.arange(1, n + 1, dtype=np.int64) * S,
                           map_from_cam=gts)


def test_score_matches_poses_by_stamp_and_writes_the_report(tmp_path):
    bag = fake_bag()
    off = make_pose(np.eye(3), np.array([0.03, 0.0, 0.0]))
    poses = {1 * S: (bag.map_from_cam[0], 1.05), 3 * S: (bag.map_from_cam[2] @ off, 3.2),
             7 * S: (np.eye(4), 7.0)}  # a pose of no image with ground truth: ignored
    sent_at = {s * S: float(s) for s in range(1, 5)}
    tally = FrameTally(played=4, received=4, localized=2, rejected=1, dropped_stale=1)
    metrics = score(bag, poses, sent_at, tally, tmp_path, {"bag": "b", "rate": 2.0})
    assert metrics["n_wrong_published"] == 0
    far = {**poses, 4 * S: (make_pose(np.eye(3), np.array([0.3, 0.0, 1.6])), 4.1)}  # 61 cm off
    assert score(bag, far, sent_at, tally, tmp_path, {})["n_wrong_published"] == 1

    metrics = score(bag, poses, sent_at, tally, tmp_path, {"bag": "b", "rate": 2.0})
    assert metrics["n_frames"] == 3 and metrics["n_localized"] == 2  # frame 4 has no pose: failed
    assert metrics["localized_only"]["n_frames"] == 2
    assert metrics["localized_only"]["median_translation_cm"] == pytest.approx(1.5)
    assert metrics["latency_ms"]["median"] == pytest.approx(125.0)
    assert metrics["frames"] == tally.as_dict() and metrics["localized_fraction"] == 0.5
    assert metrics["rate"] == 2.0
    rows = (tmp_path / "per_frame.csv").read_text().splitlines()
    assert rows[1:] == ["1.000000,1,0.000,0.0000,50.0", "3.000000,1,3.000,0.0000,200.0",
                        "4.000000,0,inf,inf,"]
    assert len((tmp_path / "estimate.tum").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "metrics.json").read_text())["frames"]["adds_up"]
    report = (tmp_path / "report.md").read_text()
    assert "## Live replay" in report and "| adds up | yes |" in report and "median 125 ms" in report

    text = summary_text(metrics, tmp_path)
    assert "replayed 4 images at 2x" in text and "(adds up)" in text
    assert "latency, image published -> pose received: median 125 ms" in text
    assert "0 wrong (> 50 cm or 10 deg)" in text
    assert str(tmp_path / "report.md") in text


def test_score_without_any_pose(tmp_path):
    """A node that localized nothing: no latency, no accuracy lines, every frame failed."""
    tally = FrameTally(played=4, received=4, localized=0, rejected=4, dropped_stale=0)
    metrics = score(fake_bag(), {}, {}, tally, tmp_path, {})
    assert metrics["n_localized"] == 0 and metrics["latency_ms"] is None
    assert metrics["localized_only"]["n_frames"] == 0
    text = live_markdown(metrics)
    assert "| rejected | 4 |" in text and "Latency" not in text and "Accuracy" not in text
    assert "latency" not in summary_text(metrics, tmp_path)
