"""Publisher sequence gaps estimated from stamps (runtime.gaps)."""
import numpy as np

from marepo_ros.runtime.gaps import SequenceGaps


def test_counts_frames_missing_from_a_regular_stream():
    gaps = SequenceGaps()
    stamps = 100.0 + np.arange(200) / 30.0
    kept = np.delete(stamps, [20, 21, 22, 50, 120])  # 5 frames lost
    lost = [gaps.add(float(t)) for t in kept]
    assert gaps.missing == 5 and sum(lost) == 5
    assert abs(gaps.period() - 1 / 30) < 1e-9


def test_jitter_pauses_reordering_and_streams_count_nothing():
    rng = np.random.default_rng(0)
    gaps = SequenceGaps()
    stamps = 10.0 + np.arange(100) * 0.1 + rng.uniform(-0.02, 0.02, 100)  # 20 % jitter
    for t in stamps:
        gaps.add(float(t), key="cam_a")
    gaps.add(float(stamps[50]), key="cam_a")        # repeated / out of order
    gaps.add(float(stamps[-1]) + 30.0, key="cam_a")  # the publisher paused
    for t in 5.0 + np.arange(50) * 0.2:               # a second camera at another rate
        gaps.add(float(t), key="cam_b")
    for t in stamps[-1] + 60.0 + np.arange(40) * 0.5:  # back after a pause, at 2 Hz
        gaps.add(float(t), key="cam_a")
    assert gaps.missing == 0
    assert abs(gaps.period("cam_b") - 0.2) < 1e-9 and abs(gaps.period("cam_a") - 0.5) < 1e-9


def test_no_estimate_before_enough_steps():
    gaps = SequenceGaps(min_steps=5)
    assert [gaps.add(t) for t in (0.0, 0.1, 0.5)] == [0, 0, 0] and gaps.period() is None
