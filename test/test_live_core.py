"""The node's plain logic, without ROS: stamp pairing, newest-only hand-off, keyframes, and the
map build in a child process."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import make_pose
from marepo_ros.io.mapfile import load_map
from marepo_ros.runtime.streams import LatestSlot, RateMeter, StampedBuffer
from marepo_ros.mapping.background import BackgroundMapBuild
from marepo_ros.mapping.build import preset
from marepo_ros.mapping.keyframes import KeyframeCollector
from marepo_ros.synthetic.paths import default_intrinsics, random_camera_path
from marepo_ros.synthetic.raycast import render
from marepo_ros.synthetic.scene import random_scene


def test_stamped_buffer_nearest_latest_and_capacity():
    buf = StampedBuffer(capacity=4)
    for stamp, value, key in [(1.0, "a", "cam"), (3.0, "c", "cam"), (2.0, "b", "other"), (2.5, "x", "cam")]:
        buf.add(stamp, value, key=key)
    assert buf.nearest(2.9, 0.2) == "c" and buf.nearest(2.2, 0.25) == "b"
    assert buf.nearest(2.25, 0.25) == "b"  # a tie goes to the earlier stamp
    assert buf.nearest(5.0, 1.0) is None
    assert buf.latest("cam") == "c" and buf.latest("other") == "b" and buf.latest("none") is None
    buf.add(4.0, "d", key="cam")
    assert len(buf) == 4 and buf.nearest(1.0, 0.1) is None  # the oldest went


def test_latest_slot_keeps_only_the_newest():
    slot = LatestSlot()
    assert slot.take(timeout=0.01) is None
    assert slot.put(1) is False and slot.put(2) is True and slot.put(3) is True
    assert slot.take() == 3 and slot.take(timeout=0.01) is None
    got = []
    t = threading.Thread(target=lambda: got.append(slot.take(timeout=5)))
    t.start()
    slot.put("late")
    t.join(5)
    assert got == ["late"]


def test_rate_meter():
    meter = RateMeter(window=5.0)
    for i in range(11):
        meter.tick(100.0 + 0.1 * i)
    assert meter.rate(101.0) == pytest.approx(10.0)
    assert meter.rate(200.0) == 0.0


def _pose(x: float, yaw_deg: float = 0.0) -> np.ndarray:
    return make_pose(Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix(), [x, 0, 0])


def test_keyframes_need_motion_a_pose_and_respect_the_cap():
    kf = KeyframeCollector(min_translation_m=0.1, min_rotation_deg=10, max_keyframes=3,
                           pose_tolerance_s=0.02)
    image, K = np.zeros((480, 640, 3), np.uint8), default_intrinsics(640, 480)
    poses = {0.0: _pose(0.0), 0.1: _pose(0.05), 0.2: _pose(0.05, 12), 0.3: _pose(0.2), 0.4: _pose(0.5)}
    for stamp in poses:  # images first: they wait for their pose
        kf.add_image(stamp, stamp)
    assert kf.ready() == []
    for stamp, pose in poses.items():
        assert kf.add_pose(stamp + 0.01, pose) is None
    for stamp, pose in kf.ready():
        kf.keep(image, K, pose)
    assert len(kf.keyframes) == 3
    assert kf.counts["still"] == 1 and kf.counts["over_cap"] == 1  # 0.1 too close; 0.4 over cap
    assert kf.keyframes[0].grey.shape == (360, 480)  # stored grey at store_short_side
    np.testing.assert_allclose(kf.keyframes[0].K[0, 0], K[0, 0] * 0.75)
    # an image whose pose never comes is given up once newer poses pass its stamp
    kf.add_image(1.0, "lost")
    kf.add_pose(2.0, _pose(3.0))
    assert kf.ready() == [] and kf.counts["unposed"] == 1


def test_keyframes_refuse_bad_poses():
    kf = KeyframeCollector()
    nan = _pose(0.0)
    nan[0, 3] = np.nan
    assert "NaN" in kf.add_pose(0.0, nan)
    assert "rigid" in kf.add_pose(0.0, 2 * _pose(0.0))
    assert kf.counts["refused_poses"] == 2


@pytest.fixture(scope="module")
def rendered_keyframes():
    scene = random_scene(5)
    K = default_intrinsics(160, 120)
    kf = KeyframeCollector(min_translation_m=0.0, min_rotation_deg=0.0)
    for pose in random_camera_path(scene, 8, seed=1):
        kf.keep(render(scene, K, pose, 160, 120)[0], K, pose)
    return kf.keyframes


def test_background_build_writes_a_map_and_reports_progress(rendered_keyframes, tmp_path):
    cfg = preset("fast", short_side=120, samples_per_image=200, buffer_size=2000, epochs=2.0,
                 batch_size=256)
    build = BackgroundMapBuild(rendered_keyframes, tmp_path / "m.map", cfg, threads=1, nice=0).start()
    seen = set()
    while build.poll().state == "running":
        seen.add(build.status.stage)
        build.join(0.05)
    status = build.status
    assert status.state == "done", status.message
    assert status.progress == 1.0 and status.stats["frames"] == len(rendered_keyframes)
    assert load_map(status.map_path).stats["frames"] == len(rendered_keyframes)


def test_background_build_cancels_without_writing(rendered_keyframes, tmp_path):
    cfg = preset("fast", short_side=120, samples_per_image=200, buffer_size=2000, epochs=500.0,
                 batch_size=256)
    build = BackgroundMapBuild(rendered_keyframes, tmp_path / "m.map", cfg, threads=1, nice=0).start()
    build.cancel()
    status = build.join(120)
    assert status.state == "cancelled" and not (tmp_path / "m.map").exists()
    with pytest.raises(ValueError, match="at least 2"):
        BackgroundMapBuild(rendered_keyframes[:1], tmp_path / "x.map", cfg)
