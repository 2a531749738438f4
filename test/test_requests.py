"""Which frames are localized and which poses seed /initialpose (runtime.requests)."""
from marepo_ros.runtime.requests import (LOCALIZE, LOST_AFTER_S, SKIP_NOT_REQUESTED, SKIP_RATE,
                                         TRIGGERED, LocalizationRequests)


def test_continuous_off_localizes_only_triggered_frames_once_each():
    r = LocalizationRequests()
    assert [r.admit(t, continuous=False, max_rate_hz=0.0) for t in (0.0, 0.1)] == [SKIP_NOT_REQUESTED] * 2
    assert r.trigger() and not r.trigger()  # a second call while one waits: still one frame
    assert r.status()["trigger_pending"]
    assert r.admit(0.2, continuous=False, max_rate_hz=0.0) == TRIGGERED
    assert r.admit(0.3, continuous=False, max_rate_hz=0.0) == SKIP_NOT_REQUESTED
    assert not r.status()["trigger_pending"]


def test_the_rate_cap_skips_frames_and_lets_a_trigger_through():
    r = LocalizationRequests()
    stamps = [0.1 * i for i in range(21)]  # 10 Hz for 2 s under a 2 Hz cap
    admitted = [t for t in stamps if r.admit(t, continuous=True, max_rate_hz=2.0) == LOCALIZE]
    assert len(admitted) == 5 and admitted[0] == 0.0
    assert r.admit(2.05, continuous=True, max_rate_hz=2.0) == SKIP_RATE
    r.trigger()
    assert r.admit(2.06, continuous=True, max_rate_hz=2.0) == TRIGGERED
    # a stream at the cap's own rate, with jitter, is not halved
    r = LocalizationRequests()
    jittery = [0.1 * i + (0.004 if i % 2 else -0.004) for i in range(1, 20)]
    assert all(r.admit(t, continuous=True, max_rate_hz=10.0) == LOCALIZE for t in jittery)
    # no cap
    assert all(r.admit(0.001 * i, continuous=True, max_rate_hz=0.0) == LOCALIZE for i in range(10))


def test_only_fresh_relocalizations_seed_initialpose():
    r = LocalizationRequests()
    assert r.published(0.0)                                      # the first after start
    assert not any(r.published(0.1 * i) for i in range(1, 30))  # never at frame rate
    r.trigger()
    assert r.published(3.0) and not r.published(3.1)           # after a trigger
    r.reinitialize()
    assert r.status()["next_pose_fresh"]
    assert r.published(3.2) and not r.published(3.3)           # after reinitialize
    assert r.published(3.4, jump=True)                         # a confirmed jump
    r.failed(3.4 + LOST_AFTER_S / 2)                           # a short gap: not lost
    assert not r.published(3.5 + LOST_AFTER_S / 2)
    last = 3.5 + LOST_AFTER_S / 2
    r.failed(last + LOST_AFTER_S)                              # no pose for long: lost
    assert r.status()["lost"]
    assert r.published(last + LOST_AFTER_S + 0.1) and not r.published(last + LOST_AFTER_S + 0.2)
    r.start()                                                   # a new activation
    assert r.published(10.0)
