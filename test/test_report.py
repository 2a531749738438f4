"""report.write_report: plots and report.md from plain arrays; the top-down plane."""
import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from marepo_ros.evaluation.metrics import frame_errors, summarize
from marepo_ros.evaluation.report import top_down_basis, write_report
from marepo_ros.geometry import make_pose

# camera looking along map +x, image down = map -z (a level camera in a z-up map)
LEVEL = np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]])


def circle_trajectory(n: int, seed: int = 0):
    """(stamps s with a gap, gts, estimates with noise and every 7th frame None) on a level
    circle of radius 2 m at 1.2 m height."""
    rng = np.random.default_rng(seed)
    stamps = np.r_[np.arange(n // 2), np.arange(n // 2, n) + 60] / 30.0
    gts, ests = [], []
    for i, a in enumerate(np.linspace(0, 4, n)):
        gt = make_pose(Rotation.from_euler("z", a).as_matrix() @ LEVEL, [2 * np.cos(a), 2 * np.sin(a), 1.2])
        gts.append(gt)
        est = gt.copy()
        est[:3, 3] += rng.normal(0, 0.05, 3)
        ests.append(None if i % 7 == 3 else est)
    return stamps, gts, ests


@pytest.mark.parametrize("all_failed", [False, True])
def test_write_report_writes_pngs_and_markdown(tmp_path, all_failed):
    stamps, gts, ests = circle_trajectory(40)
    if all_failed:
        ests = [None] * len(gts)
    t_cm, r_deg = frame_errors(ests, gts)
    metrics = summarize(ests, gts, [50.0] * len(gts)) | {"dataset": "synthetic", "map": "x.map"}
    paths = write_report(tmp_path, stamps=stamps, estimates=ests, gts=gts, t_cm=t_cm, r_deg=r_deg,
                         metrics=metrics)
    assert [p.name for p in paths] == ["trajectory.png", "error_cdf.png", "error_over_time.png", "report.md"]
    for png in paths[:3]:
        img = cv2.imread(str(png))
        assert img is not None and min(img.shape[:2]) > 300 and img.std() > 10
    md = (tmp_path / "report.md").read_text()
    assert f"| frames localized | {metrics['n_localized']} |" in md
    assert "| within 5 cm / 5 deg (%) |" in md and "`x.map`" in md
    assert all(f"]({p.name})" in md for p in paths[:3])


def test_top_down_is_horizontal_for_level_cameras():
    _, gts, _ = circle_trajectory(30)
    basis, _ = top_down_basis(gts)
    assert np.allclose(basis @ [0, 0, 1], 0, atol=1e-9)          # both axes horizontal
    assert np.allclose(basis @ basis.T, np.eye(2), atol=1e-9)    # orthonormal
    assert np.allclose(np.cross(basis[0], basis[1]), [0, 0, 1])  # seen from above


def test_top_down_falls_back_to_largest_extent_axes():
    rng = np.random.default_rng(1)
    gts = [make_pose(Rotation.random(random_state=rng).as_matrix(), [3 * np.cos(a), 0.1 * a, np.sin(a)])
           for a in np.linspace(0, 6, 30)]                      # cameras in all orientations
    basis, labels = top_down_basis(gts)
    assert np.array_equal(basis, np.eye(3)[[0, 2]]) and labels == ("map x (m)", "map z (m)")


def test_metrics_json_is_strict_json():
    import json

    from marepo_ros.evaluation.metrics import metrics_json
    text = metrics_json({"median_translation_cm": float("inf"), "n": 3, "nested": {"x": float("nan")}})
    assert json.loads(text) == {"median_translation_cm": None, "n": 3, "nested": {"x": None}}
    assert "Infinity" not in text and "NaN" not in text
