"""Prior, odometry propagation, jump gating and still-standing skips (runtime.tracking)."""
import math

import numpy as np
import pytest

from marepo_ros.geometry import make_pose
from marepo_ros.runtime.tracking import PoseTracker, TrackingConfig


def at(x, y=0.0, yaw_deg=0.0) -> np.ndarray:
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return make_pose(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]), [x, y, 0.0])


def test_without_prior_or_odometry_every_estimate_is_published():
    tracker = PoseTracker()
    assert all(tracker.check(at(x), None)[0] for x in (0.0, 5.0, -20.0, 100.0))


def test_a_prior_gates_the_first_poses_until_frames_agree():
    tracker = PoseTracker(TrackingConfig(confirm_frames=3))
    tracker.set_prior(at(10.0), sigma_t=0.5, sigma_r=0.2)
    ok, reason = tracker.check(at(0.0), None)  # 10 m from the prior: held
    assert not ok and "held until 3 frames agree (1 so far)" in reason
    assert not tracker.check(at(0.1), None)[0]
    ok, reason = tracker.check(at(0.2), None)
    assert ok and "confirmed by 3 frames" in reason
    tracker.set_prior(at(10.0), sigma_t=0.5, sigma_r=0.2)
    assert tracker.check(at(10.8), None) == (True, "")  # inside 3 sigma of the prior


def test_the_first_pose_waits_for_frames_that_agree():
    tracker = PoseTracker(TrackingConfig(first_pose_frames=2, gap_s=2.0))
    ok, reason = tracker.check(at(0.0), None, stamp=0.0)
    assert not ok and reason == "first pose: held until 2 frames agree (1 so far)"
    ok, reason = tracker.check(at(4.0), None, stamp=0.1)    # a lone wrong estimate: starts over
    assert not ok and "(1 so far)" in reason and tracker.belief is None
    ok, reason = tracker.check(at(4.1), None, stamp=0.2)
    assert ok and reason == "first pose confirmed by 2 frames"
    assert tracker.check(at(4.2), None, stamp=1.0) == (True, "")           # tracking: at once
    ok, reason = tracker.check(at(9.0), None, stamp=4.0)                  # 3 s without a pose
    assert not ok and reason.startswith("first pose after 3.0 s without one: held")
    assert tracker.check(at(9.1), None, stamp=4.1)[0]
    # with odometry the pose is carried over gaps (the jump gate applies), not started again
    tracker = PoseTracker(TrackingConfig(first_pose_frames=2, gap_s=2.0))
    assert not tracker.check(at(0.0), at(0.0), stamp=0.0)[0]
    assert tracker.check(at(1.0), at(1.0), stamp=0.1)[0]                  # carried: agrees
    assert tracker.check(at(5.0), at(5.0), stamp=9.0) == (True, "")


@pytest.mark.parametrize("bad", [math.nan, 0.0, -1.0])
def test_a_bad_prior_is_refused(bad):
    tracker = PoseTracker()
    with pytest.raises(ValueError):
        tracker.set_prior(at(0.0), sigma_t=bad, sigma_r=0.1)
    pose = at(0.0)
    pose[0, 3] = math.nan
    with pytest.raises(ValueError):
        tracker.set_prior(pose, sigma_t=0.1, sigma_r=0.1)
    assert tracker.belief is None


def test_odometry_carries_the_pose_and_a_jump_needs_confirmation():
    tracker = PoseTracker(TrackingConfig(confirm_frames=2))
    map_from_odom = at(3.0, 1.0, 30.0)  # odometry's frame, somewhere in the map
    assert tracker.check(map_from_odom @ at(0.0), at(0.0))[0]
    # driven 2 m: the propagated pose is 2 m further, an estimate there passes
    predicted = tracker.predict(at(2.0))
    assert np.allclose(predicted.map_from_cam, map_from_odom @ at(2.0))
    assert predicted.sigma_t > tracker.config.sigma_t
    assert tracker.check(map_from_odom @ at(2.0), at(2.0)) == (True, "")
    # an estimate 5 m off is held; a second one that agrees (after 0.5 m more) confirms it
    ok, reason = tracker.check(map_from_odom @ at(7.0), at(2.0))
    assert not ok and "jump of 5.00 m" in reason
    ok, reason = tracker.check(map_from_odom @ at(7.5), at(2.5))
    assert ok and "confirmed by 2 frames" in reason
    # a single wrong estimate between good ones is never published
    assert not tracker.check(map_from_odom @ at(50.0), at(3.0))[0]
    assert tracker.check(map_from_odom @ at(8.0), at(3.0))[0]


def test_odometry_that_jumps_100_m_is_outvoted_by_the_next_frames():
    tracker = PoseTracker(TrackingConfig(confirm_frames=3))
    assert tracker.check(at(0.0), at(0.0))[0]
    # odometry jumps 100 m while the camera moved 0.1 m: the true estimate is held ...
    assert not tracker.check(at(0.1), at(100.1))[0]
    assert not tracker.check(at(0.2), at(100.2))[0]
    # ... until three frames agree, and from then on the new odometry frame is used
    assert tracker.check(at(0.3), at(100.3))[0]
    assert tracker.check(at(0.4), at(100.4)) == (True, "")


def test_frames_are_skipped_while_the_camera_stands_still():
    tracker = PoseTracker(TrackingConfig(update_min_d=0.2, update_min_a=math.radians(10)))
    assert not tracker.skip(None)  # no odometry: never
    assert not tracker.skip(at(0.0))
    assert tracker.skip(at(0.1)) and tracker.skip(at(0.15, yaw_deg=5))
    assert not tracker.skip(at(0.25))            # moved 0.25 m
    assert not tracker.skip(at(0.25, yaw_deg=15))  # turned 15 deg
    assert not PoseTracker().skip(at(0.0)) and not PoseTracker().skip(at(0.0))
