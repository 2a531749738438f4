"""The node from nav2's side, over real DDS: continuous localization off, ~/trigger_localization,
~/reinitialize_global_localization, the rate cap, ~/base_pose as AMCL's amcl_pose type with the
covariance carried through the mount, /initialpose once per relocalization, two_d_mode."""
from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import KITCHEN_QUERIES
from geometry_msgs.msg import PoseWithCovarianceStamped
from lifecycle_msgs.msg import Transition
from node_harness import NODE, Client, NodeProcess, fresh_domain, wait_for
from scipy.spatial.transform import Rotation
from std_srvs.srv import Empty

from marepo_ros.geometry import invert_pose, make_pose, pose_error, quat_from_pose
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map
from marepo_ros.ros.conversions import pose_from_msg, seconds
from marepo_ros.runtime.planar import FIXED_VARIANCE, OPTICAL_BODY_AXES, level_frame, map_up
from marepo_ros.runtime.rep105 import base_covariance, map_from_base

MAX_T_CM, MAX_R_DEG = 15.0, 5.0  # as test_node
# A robot's camera: 0.2 m forward of the base, 0.5 m up, pitched 20 degrees down.
BASE_FROM_CAM = make_pose(Rotation.from_euler("y", 20, degrees=True).as_matrix() @ OPTICAL_BODY_AXES.T,
                          [0.2, 0.0, 0.5])
FRAME_GAP_S = 0.3  # between the frames of a phase: each is localized before the next comes


def covariance(msg: PoseWithCovarianceStamped) -> np.ndarray:
    return np.array(msg.pose.covariance).reshape(6, 6)


def test_nav2_triggers_reinitializes_and_gets_planar_base_poses(redkitchen, kitchen_map, tmp_path):
    kitchen = SceneDataset(redkitchen)
    t, q = quat_from_pose(BASE_FROM_CAM)
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, params={
        "map_path": kitchen_map, "status_period": 0.2, "enable_continuous_localization": False,
        "publish_initialpose": True, "base_from_camera": [*map(float, t), *map(float, q)]})
    client = Client(domain=domain, sensor_qos=True)  # a camera driver: best effort, full size
    base_poses: list[PoseWithCovarianceStamped] = []
    seeds: list[PoseWithCovarianceStamped] = []
    client.node.create_subscription(PoseWithCovarianceStamped, f"{NODE}/base_pose", base_poses.append, 50)
    client.node.create_subscription(PoseWithCovarianceStamped, "/initialpose", seeds.append, 50)
    stamp = iter(np.arange(100.0, 200.0))

    def frames(n: int, name: str = KITCHEN_QUERIES[0]) -> tuple[list[float], dict]:
        """Send n frames as a driver does; (their stamps, the frame counters they added once
        the node accounted for all it received; best effort may lose one)."""
        before = client.status()["frames"]
        sent = []
        for _ in range(n):
            sent.append(next(stamp))
            client.send_camera_info(sent[-1], kitchen.K, *kitchen.image_size)
            client.send_image(sent[-1], kitchen.frame(name).load_image())
            time.sleep(FRAME_GAP_S)

        def settled():
            f = client.statuses[-1]["frames"]
            new = {k: f.get(k, 0) - before.get(k, 0) for k in f}
            done = new["localized"] + new["rejected"] + new["dropped_stale"] + new["skipped"]
            return new if new["received"] >= n - 1 and done == new["received"] else None
        new = wait_for(settled, 30, f"the node to account for {n} frames")
        time.sleep(0.5)  # the poses' messages
        return sent, new

    def poses_of(sent, msgs) -> list:
        return [m for m in msgs if round(seconds(m.header.stamp)) in sent]

    try:
        client.wait_ready()
        assert client.node.get_topic_names_and_types() and dict(client.node.get_topic_names_and_types())[
            f"{NODE}/base_pose"] == ["geometry_msgs/msg/PoseWithCovarianceStamped"]

        # continuous localization off: frames are skipped and counted, nothing is published
        sent, new = frames(4)
        assert new["skipped_not_requested"] == new["received"] >= 3 and new["localized"] == 0
        assert not client.poses and not base_poses and not seeds

        # a trigger: exactly one pose, the base pose as AMCL's type, and one seed for AMCL
        answer = client.trigger("trigger_localization")
        assert answer.success, answer.message
        sent, new = frames(3)
        assert new["localized"] == 1 and new["skipped_not_requested"] == new["received"] - 1
        (pose,) = poses_of(sent, client.poses)
        (with_cov,) = poses_of(sent, client.poses_cov)
        (base,) = poses_of(sent, base_poses)
        name = KITCHEN_QUERIES[0]
        t_err, r_err = pose_error(pose_from_msg(pose.pose), kitchen.frame(name).map_from_cam)
        assert 100 * t_err < MAX_T_CM and r_err < MAX_R_DEG
        map_from_cam = pose_from_msg(pose.pose)
        assert np.allclose(pose_from_msg(base.pose.pose), map_from_base(map_from_cam, BASE_FROM_CAM), atol=1e-5)
        cov = covariance(base)
        assert np.all(np.isfinite(cov)) and np.allclose(cov, cov.T) and np.all(np.diag(cov) > 0)
        assert np.allclose(cov, base_covariance(covariance(with_cov), map_from_cam, BASE_FROM_CAM),
                           rtol=1e-6, atol=1e-12)
        assert np.trace(cov[:3, :3]) > np.trace(covariance(with_cov)[:3, :3])  # the lever arm
        wait_for(lambda: seeds, 5, "the seed on /initialpose")
        assert seeds == [base]
        status = client.status()
        assert status["frames"]["initialpose_published"] == 1
        assert not status["tracking"]["prior"]  # its own seed is not a prior for the node itself

        # reinitialize (std_srvs/Empty, as AMCL's), continuous on: it still localizes, every
        # frame, and seeds AMCL once (the first pose after reinitializing), not at frame rate
        client._call(Empty, f"{NODE}/reinitialize_global_localization", Empty.Request())
        assert "reinitialized" in client.status()["localization"]["last_request"]
        assert client.set_params(enable_continuous_localization=True)[0].successful
        sent, new = frames(3)
        assert new["localized"] == new["received"] >= 2
        assert len(poses_of(sent, base_poses)) == new["localized"] and len(seeds) == 2
        assert seeds[1] == poses_of(sent, base_poses)[0]

        # the rate cap: frames sooner than 1 / rate after the last one are skipped, not queued
        assert client.set_params(max_localization_rate=0.5)[0].successful
        sent, new = frames(4)
        assert new["localized"] == 1 and new["skipped_rate"] == new["received"] - 1
        assert client.set_params(max_localization_rate=0.0)[0].successful

        # two_d_mode, up axis from the map's keyframes: z, roll, pitch zero in the up frame
        assert client.set_params(two_d_mode=True)[0].successful
        sent, new = frames(2, KITCHEN_QUERIES[1])
        assert new["localized"] == new["received"] >= 1
        status = client.status()
        keyframes = load_map(kitchen_map).feature_map.map_from_cam_K44
        up, note, fallback = map_up("auto", keyframes, BASE_FROM_CAM)
        assert not fallback and np.allclose(status["localization"]["map_up"], up, atol=1e-3)
        map_from_level = level_frame(up)
        for planar, camera in zip(poses_of(sent, base_poses), poses_of(sent, client.poses)):
            level_from_base = invert_pose(map_from_level) @ pose_from_msg(planar.pose.pose)
            yaw, pitch, roll = Rotation.from_matrix(level_from_base[:3, :3]).as_euler("ZYX")
            assert abs(level_from_base[2, 3]) < 1e-4 and abs(pitch) < 1e-4 and abs(roll) < 1e-4
            full = invert_pose(map_from_level) @ map_from_base(pose_from_msg(camera.pose), BASE_FROM_CAM)
            assert np.allclose(level_from_base[:2, 3], full[:2, 3], atol=1e-4)  # x, y kept
            G = np.kron(np.eye(2), map_from_level[:3, :3].T)
            level_cov = G @ covariance(planar) @ G.T
            assert np.allclose(np.diag(level_cov)[[2, 3, 4]], FIXED_VARIANCE, rtol=1e-3)
            assert np.all(np.diag(level_cov)[[0, 1, 5]] > FIXED_VARIANCE)
        assert len(seeds) == 2  # no new relocalization: no new seed

        # requests at a wrong moment are refused with the reason; the node goes on
        assert client.set_params(map_path="")[0].successful
        refused = client.trigger("trigger_localization")
        assert not refused.success and "no map loaded" in refused.message
        assert client.set_params(map_path=str(kitchen_map))[0].successful
        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        refused = client.trigger("trigger_localization")
        assert not refused.success and "inactive" in refused.message
        client._call(Empty, f"{NODE}/reinitialize_global_localization", Empty.Request())
        wait_for(lambda: "refused" in client.statuses[-1]["localization"]["last_request"], 10,
                 "the refused reinitialize on ~/status")
        assert client.transition(Transition.TRANSITION_ACTIVATE)
        assert client.trigger("trigger_localization").success
        assert node.alive()
    finally:
        client.close()
        print(node.log[-3000:])
        node.stop()


@pytest.mark.parametrize("value", ["up", "0 0 0", "1 2"])
def test_a_bad_map_up_is_refused_at_run_time_too(value):
    from marepo_ros.ros.params import value_problem
    assert "map_up must be 'auto' or" in value_problem("map_up", value)
    assert value_problem("map_up", "0 0 1") is None and value_problem("map_up", "auto") is None
