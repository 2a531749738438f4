"""The camera mount from TF and a map named by the user, over real DDS (see node_harness): a
node started without base_from_camera takes the mount from /tf_static (a URDF's chain
base_link -> camera_link -> camera_optical_frame) for ~/base_pose and for mapping poses of the
base, and ~/stop_mapping writes the map under mapping_map_name, never over an existing file."""
from __future__ import annotations

import time

import numpy as np
import pytest
from conftest import KITCHEN_MAPPING, KITCHEN_QUERIES
from geometry_msgs.msg import PoseWithCovarianceStamped
from node_harness import NODE, Client, NodeProcess, ReplayError, fresh_domain, wait_for
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import invert_pose, make_pose, pose_error
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map
from marepo_ros.ros.conversions import pose_from_msg, seconds
from marepo_ros.ros.tf_out import transform_msg
from marepo_ros.runtime.planar import OPTICAL_BODY_AXES
from marepo_ros.runtime.rep105 import map_from_base

tf2_msgs = pytest.importorskip("tf2_msgs.msg", reason="no tf2_msgs (make setup builds it): no "
                               "/tf_static to take the mount from")

MAX_T_CM, MAX_R_DEG = 15.0, 5.0  # as test_node
OPTICAL = "camera_optical_frame"
# The URDF's chain: camera_link 0.2 m forward, 5 cm left, 0.5 m up of base_link, pitched 20 deg
# down; the optical frame turned from it as REP-103 has it (z forward, x right, y down).
BASE_FROM_LINK = make_pose(Rotation.from_euler("y", 20, degrees=True).as_matrix(), [0.2, 0.05, 0.5])
LINK_FROM_OPTICAL = make_pose(OPTICAL_BODY_AXES.T, [0.0, 0.0, 0.0])
BASE_FROM_CAM = BASE_FROM_LINK @ LINK_FROM_OPTICAL
MAPPING_FRAMES = KITCHEN_MAPPING[::3]  # 9 keyframes: enough for a keyframe map, built in seconds


@pytest.fixture(scope="module")
def robot(redkitchen, kitchen_map, tmp_path_factory):
    """A node with the kitchen map and base_from_camera unset; the robot's static transforms on
    /tf_static (latched, as tf2_ros' StaticTransformBroadcaster sends them); a camera driver's
    client (sensor-data QoS, best effort, full-size frames in the optical frame)."""
    tmp = tmp_path_factory.mktemp("mount")
    domain = fresh_domain()
    node = NodeProcess(tmp / "node.log", domain_id=domain, params={
        "map_path": kitchen_map, "status_period": 0.2, "map_dir": str(tmp / "maps"),
        "min_keyframes": 5, "keyframe_min_translation": 0.0, "keyframe_min_rotation": 0.0,
        "mapping_epochs": 1.0, "mapping_threads": 2})
    client = Client(domain=domain, sensor_qos=True)
    static = client.node.create_publisher(tf2_msgs.TFMessage, "/tf_static", QoSProfile(
        depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    static.publish(tf2_msgs.TFMessage(transforms=[
        transform_msg("base_link", "camera_link", BASE_FROM_LINK, 0.0),
        transform_msg("camera_link", OPTICAL, LINK_FROM_OPTICAL, 0.0)]))
    base_poses: list[PoseWithCovarianceStamped] = []
    client.node.create_subscription(PoseWithCovarianceStamped, f"{NODE}/base_pose", base_poses.append, 50)
    try:
        client.wait_ready()
        yield SceneDataset(redkitchen), node, client, base_poses, tmp / "maps"
    finally:
        client.close()
        node.stop()


def send_frame(client: Client, kitchen: SceneDataset, name: str, stamp: float) -> None:
    client.send_camera_info(stamp, kitchen.K, *kitchen.image_size, frame_id=OPTICAL)
    client.send_image(stamp, kitchen.frame(name).load_image(), frame_id=OPTICAL)


def test_base_pose_through_the_mount_from_tf_static(robot):
    kitchen, node, client, base_poses, _ = robot
    name = KITCHEN_QUERIES[0]
    for stamp in np.arange(100.0, 110.0):  # best effort: a frame may be lost; send until posed
        send_frame(client, kitchen, name, stamp)
        try:
            pose = client.pose_at(stamp, timeout=5.0)
            break
        except ReplayError:
            continue
    else:
        pytest.fail(f"no pose for 10 frames; last status {client.statuses[-1]}")
    base = wait_for(lambda: next((m for m in base_poses if seconds(m.header.stamp) == stamp), None),
                    5, "the base pose")
    mount = client.status()["mount"]
    print("mount:", mount)
    assert mount["source"] == "tf" and mount["mount_source"] == "auto"
    assert (mount["base_frame"], mount["camera_frame"]) == ("base_link", OPTICAL)
    assert "/tf_static" in mount["tf"] or "tf2_ros" in mount["tf"]
    assert "camera mount from TF" in node.log
    map_from_cam, map_from_base_msg = pose_from_msg(pose.pose), pose_from_msg(base.pose.pose)
    assert np.allclose(map_from_base_msg, map_from_base(map_from_cam, BASE_FROM_CAM), atol=1e-5)
    truth = map_from_base(kitchen.frame(name).map_from_cam, BASE_FROM_CAM)
    t_err, r_err = pose_error(map_from_base_msg, truth)
    print(f"base pose through the TF mount: {100 * t_err:.1f} cm / {r_err:.2f} deg")
    assert 100 * t_err < MAX_T_CM and r_err < MAX_R_DEG


def test_stop_mapping_writes_the_chosen_name_and_never_overwrites(robot):
    kitchen, node, client, _, map_dir = robot
    refused = client.set_params(mapping_map_name="../escape")[0]
    assert not refused.successful and "leaves map_dir" in refused.reason
    assert client.trigger("start_mapping").success
    for i, name in enumerate(MAPPING_FRAMES):
        for attempt in range(3):  # best effort: a lost image is sent again, newly stamped
            stamp = 200.0 + i + 0.1 * attempt
            # poses of the base, as a robot's SLAM gives them: the node puts the camera on it
            client.send_mapping_pose(stamp, kitchen.frame(name).map_from_cam @ invert_pose(BASE_FROM_CAM))
            time.sleep(0.05)
            send_frame(client, kitchen, name, stamp)
            try:
                wait_for(lambda: client.statuses[-1]["mapping"]["keyframes"] == i + 1, 5, f"keyframe {i + 1}")
                break
            except ReplayError:
                assert attempt < 2, client.statuses[-1]["mapping"]
    map_dir.mkdir(parents=True, exist_ok=True)
    taken = map_dir / "taken.map"
    taken.write_bytes(b"someone's map")
    assert client.set_params(mapping_map_name="taken")[0].successful
    stop = client.trigger("stop_mapping")
    assert not stop.success and "already exists" in stop.message and str(taken) in stop.message
    assert client.status()["mapping"]["state"] == "collecting"

    assert client.set_params(mapping_map_name="kitchen_v2")[0].successful
    stop = client.trigger("stop_mapping")
    chosen = map_dir / "kitchen_v2.map"
    assert stop.success and str(chosen) in stop.message, stop.message
    status = wait_for(lambda: (client.statuses[-1]["mapping"]["state"] == "idle"
                               and client.statuses[-1]["map_path"] == str(chosen) and client.statuses[-1]),
                      60, "the chosen map built and loaded")
    print("built:", status["mapping"]["message"])
    assert taken.read_bytes() == b"someone's map"
    assert sorted(p.name for p in map_dir.iterdir()) == ["kitchen_v2.map", "taken.map"]
    # the keyframes are the camera poses: the base poses through the TF mount
    keyframes = load_map(chosen).feature_map.map_from_cam_K44
    truth = np.stack([kitchen.frame(n).map_from_cam for n in MAPPING_FRAMES])
    assert len(keyframes) >= 5
    assert all(np.abs(truth - kf).max(axis=(1, 2)).min() < 1e-5 for kf in keyframes)
