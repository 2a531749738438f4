"""The TF output against a recording broadcaster: tf2_msgs (hence /tf) is not in the PyPI
ROS 2 wheels, so no TF can travel over DDS here; this checks what the node hands to
tf2_ros.TransformBroadcaster.sendTransform."""
import numpy as np

from marepo_ros.geometry import make_pose, pose_from_quat
from marepo_ros.ros.tf_out import TransformRepublisher


def test_latest_correction_is_republished_post_dated_at_every_tick():
    sent, clock = [], [100.0]
    tf = TransformRepublisher(sent.append, now_s=lambda: clock[0])
    tf.tick(0.1)
    assert sent == []  # nothing before the first pose
    first = make_pose(np.eye(3), [1.0, 2.0, 0.0])
    tf.update("map", "odom", first)
    for _ in range(3):  # fixed rate: the same correction, newly stamped, at every tick
        clock[0] += 0.05
        tf.tick(0.1)
    second = make_pose(np.eye(3), [1.5, 2.0, 0.0])
    tf.update("map", "odom", second)
    clock[0] += 0.05
    tf.tick(0.1)
    assert len(sent) == 4
    assert all(m.header.frame_id == "map" and m.child_frame_id == "odom" for m in sent)
    stamps = [m.header.stamp.sec + 1e-9 * m.header.stamp.nanosec for m in sent]
    assert np.allclose(stamps, [100.15, 100.2, 100.25, 100.3])  # now + transform_tolerance
    poses = [pose_from_quat([m.transform.translation.x, m.transform.translation.y, m.transform.translation.z],
                            [m.transform.rotation.x, m.transform.rotation.y, m.transform.rotation.z,
                             m.transform.rotation.w]) for m in sent]
    assert all(np.allclose(p, first) for p in poses[:3]) and np.allclose(poses[3], second)
