"""The node on a robot: a worker that outlives failures, start-up values checked like run-time
changes. Real node processes over real DDS (see node_harness)."""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import pytest
from conftest import KITCHEN_QUERIES
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseWithCovariance, PoseWithCovarianceStamped
from lifecycle_msgs.msg import Transition
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image
from node_harness import Client, NodeProcess, fresh_domain, wait_for

from marepo_ros.io.dataset import SceneDataset
from marepo_ros.geometry import make_pose, pose_from_quat
from marepo_ros.ros.conversions import pose_from_msg, pose_to_msg, stamp_from_seconds
from marepo_ros.ros.replay import ReplayError

TEST = Path(__file__).resolve().parent


def send_frame(client: Client, ds: SceneDataset, name: str, stamp: float) -> None:
    client.send_camera_info(stamp, ds.K, *ds.image_size)
    client.send_image(stamp, ds.frame(name).load_image())


def test_a_failure_to_publish_is_reported_and_the_next_frame_is_localized(redkitchen, kitchen_map, tmp_path):
    kitchen = SceneDataset(redkitchen)
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain,
                       params={"map_path": kitchen_map, "status_period": 0.2},
                       program=[sys.executable, str(TEST / "faulty_node.py")])
    client = Client(domain=domain)
    try:
        client.wait_ready()
        send_frame(client, kitchen, KITCHEN_QUERIES[0], 100.0)
        status = wait_for(lambda: client.statuses[-1]["failing"] and client.statuses[-1], 30,
                          "the failure on ~/status")
        assert "publish failed: RuntimeError: injected publishing failure" in status["last_rejection"]
        assert status["frames"]["errors_publish"] == 1 and status["frames"]["rejected"] == 1
        diag = wait_for(lambda: [s for a in client.diagnostics[-3:] for s in a.status
                                 if s.level == DiagnosticStatus.ERROR], 10, "an ERROR diagnostic")
        assert "injected publishing failure" in diag[-1].message
        wait_for(lambda: "[relocalization_node.publish]: publish failed" in node.log, 5, "the log line")
        with pytest.raises(ReplayError):
            client.pose_at(100.0, timeout=0.5)

        send_frame(client, kitchen, KITCHEN_QUERIES[1], 101.0)  # the worker is still there
        client.pose_at(101.0)
        status = wait_for(lambda: not client.statuses[-1]["failing"] and client.statuses[-1], 10,
                          "the node to recover")
        assert status["localized"] and status["frames"]["localized"] == 1
        assert status["last_error"].startswith("publish failed")  # kept for the record
        wait_for(lambda: [s for s in client.diagnostics[-1].status if s.level == DiagnosticStatus.OK],
                 10, "an OK diagnostic")
        assert node.alive()
    finally:
        client.close()
        node.stop()


BAD_STARTS = {  # parameter value -> what the one line says
    "image_transport": ("Compressed", "image_transport must be one of raw, compressed (got 'Compressed')"),
    "mapping_pose_type": ("Pose", "mapping_pose_type must be one of pose, odometry, tf (got 'Pose')"),
    "estimator": ("fast", "estimator must be one of "),
    "base_from_camera": ([0.0] * 7, "base_from_camera must be 7 finite numbers x y z qx qy qz qw "
                         "with a unit quaternion"),
    "min_confidence": (2.0, "min_confidence must be within 0.0 to 1.0"),
    "qos_depth": ("deep", "qos_depth must be of type int"),
}


def test_bad_start_up_values_stop_the_node_with_one_line_naming_them(tmp_path):
    domain = fresh_domain()  # they stop before they talk DDS
    nodes = {name: NodeProcess(tmp_path / f"{name}.log", domain_id=domain, params={name: value})
             for name, (value, _) in BAD_STARTS.items()}
    try:
        for name, node in nodes.items():
            node.proc.wait(60)
            expected = BAD_STARTS[name][1]
            assert node.proc.returncode == 2, node.log
            fatal = [line for line in node.log.splitlines() if "FATAL" in line]
            assert len(fatal) == 1 and "cannot start: bad parameter: " + expected in fatal[0], node.log
    finally:
        for node in nodes.values():
            node.stop()


def test_lifecycle_transitions_over_dds(redkitchen, kitchen_map, tmp_path):
    """autostart false: unconfigured until told; configure loads the map (no frames taken),
    activate takes frames, deactivate stops them and keeps the map, cleanup frees, shutdown
    ends; a transition out of order is refused and the node stays as it was."""
    kitchen = SceneDataset(redkitchen)
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain,
                       params={"map_path": kitchen_map, "status_period": 0.2, "autostart": False})
    client = Client(domain=domain)
    try:
        assert client.lifecycle_state() == "unconfigured"  # waits for the node's services
        assert not client.transition(Transition.TRANSITION_ACTIVATE)  # out of order
        assert client.lifecycle_state() == "unconfigured" and node.alive()

        assert client.transition(Transition.TRANSITION_CONFIGURE)
        assert client.lifecycle_state() == "inactive"
        status = client.status()
        assert status["lifecycle"] == "inactive" and status["map_loaded"]
        assert client.image_pub.get_subscription_count() == 0  # no frames taken while inactive
        refused = client.trigger("start_mapping")
        assert not refused.success and "inactive" in refused.message

        assert client.transition(Transition.TRANSITION_ACTIVATE)
        client.wait_ready()
        send_frame(client, kitchen, KITCHEN_QUERIES[0], 10.0)
        client.pose_at(10.0)

        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        wait_for(lambda: client.image_pub.get_subscription_count() == 0, 10, "the node to unsubscribe")
        status = client.status()
        assert status["lifecycle"] == "inactive" and status["map_loaded"]
        assert client.transition(Transition.TRANSITION_ACTIVATE)
        client.wait_ready()
        send_frame(client, kitchen, KITCHEN_QUERIES[1], 11.0)
        client.pose_at(11.0)
        assert node.log.count("map loaded:") == 1  # deactivate kept it

        assert client.transition(Transition.TRANSITION_DEACTIVATE)
        assert client.transition(Transition.TRANSITION_CLEANUP)
        assert client.lifecycle_state() == "unconfigured"
        assert not client.transition(Transition.TRANSITION_DEACTIVATE)  # out of order
        assert client.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert client.lifecycle_state() == "finalized" and node.alive()
    finally:
        client.close()
        node.stop()


def test_initial_pose_and_odometry_gate_jumps_over_dds(redkitchen, kitchen_map, tmp_path):
    """A NaN initial pose is refused; a prior 100 m off holds the first pose back until a
    second frame agrees; odometry jumping 100 m holds the next pose back until the frames
    after it agree; the base pose comes out beside the camera pose."""
    kitchen = SceneDataset(redkitchen)
    name = KITCHEN_QUERIES[0]
    gt = kitchen.frame(name).map_from_cam
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, params={
        "map_path": kitchen_map, "status_period": 0.2, "odom_topic": "/odom", "jump_confirm_frames": 2})
    client = Client(domain=domain)
    initial = client.node.create_publisher(PoseWithCovarianceStamped, "/initialpose", 10)
    odom_pub = client.node.create_publisher(Odometry, "/odom", 50)
    base_poses = []
    client.node.create_subscription(PoseWithCovarianceStamped, "/relocalization_node/base_pose",
                                    base_poses.append, 10)

    def prior(map_from_base, sigma=0.5):
        msg = PoseWithCovarianceStamped(pose=PoseWithCovariance(pose=pose_to_msg(map_from_base)))
        msg.header.frame_id = "map"
        msg.pose.covariance = list(np.diag([sigma ** 2] * 3 + [0.1] * 3).reshape(36))
        initial.publish(msg)

    def frame(stamp, odom_from_base):
        odom = Odometry(pose=PoseWithCovariance(pose=pose_to_msg(odom_from_base)))
        odom.header.stamp, odom.header.frame_id = stamp_from_seconds(stamp), "odom"
        odom_pub.publish(odom)
        time.sleep(0.1)
        send_frame(client, kitchen, name, stamp)
        return client.frames_done(client.statuses[-1]["frames"]["received"] + 1)

    def jump_m(rejection: str) -> float:
        found = re.search(r"jump of ([0-9.]+) m", rejection)
        assert found, rejection
        return float(found.group(1))

    try:
        client.wait_ready()
        wait_for(lambda: all(client.statuses[-1]["publishers"].get(k) for k in ("initialpose", "odometry")),
                 30, "the node's tracking readers to match")
        msg = PoseWithCovarianceStamped()
        msg.header.frame_id = "map"
        msg.pose.pose.position.x, msg.pose.pose.orientation.w = math.nan, 1.0
        initial.publish(msg)
        status = wait_for(lambda: "NaN" in client.statuses[-1]["tracking"]["initial_pose_error"]
                          and client.statuses[-1], 10, "the NaN initial pose on ~/status")
        assert not status["tracking"]["prior"] and node.alive()

        far = gt.copy()
        far[0, 3] += 100.0
        prior(far)
        wait_for(lambda: client.statuses[-1]["tracking"]["prior"], 10, "the prior")
        status = frame(20.0, np.eye(4))
        assert jump_m(status["last_rejection"]) == pytest.approx(100, abs=1)
        assert status["frames"]["rejected_gated"] == 1
        frame(21.0, np.eye(4))  # a second frame agrees: published
        client.pose_at(21.0)
        assert "confirmed by 2 frames" in client.status()["tracking"]["last_note"]

        jumped = np.eye(4)
        jumped[0, 3] = 100.0  # odometry jumps 100 m, the camera stays
        status = frame(22.0, jumped)
        assert jump_m(status["last_rejection"]) == pytest.approx(100, abs=1)
        assert status["frames"]["rejected_gated"] == 2
        frame(23.0, jumped)
        client.pose_at(23.0)
        wait_for(lambda: [p for p in base_poses if p.header.stamp.sec == 23], 10, "the base pose")
        assert node.alive()
    finally:
        client.close()
        node.stop()


def test_without_odometry_the_first_pose_after_a_gap_waits_for_a_second_frame(redkitchen, kitchen_map, tmp_path):
    """first_pose_confirm_frames 2, no odometry: the first frame is held and the next one that
    agrees publishes; after first_pose_gap seconds with no pose the same again; frames in
    between are published at once."""
    kitchen = SceneDataset(redkitchen)
    name = KITCHEN_QUERIES[0]
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, params={
        "map_path": kitchen_map, "status_period": 0.2, "first_pose_confirm_frames": 2,
        "first_pose_gap": 1.0})
    client = Client(domain=domain)

    def frame(stamp):
        send_frame(client, kitchen, name, stamp)
        return client.frames_done(client.statuses[-1]["frames"]["received"] + 1)

    try:
        client.wait_ready()
        status = frame(30.0)
        assert status["frames"]["rejected_gated"] == 1
        assert "first pose: held until 2 frames agree (1 so far)" in status["last_rejection"]
        frame(30.2)
        client.pose_at(30.2)
        assert client.status()["tracking"]["last_note"] == "first pose confirmed by 2 frames"
        frame(30.4)
        client.pose_at(30.4)                         # tracking: at once
        status = frame(35.0)                         # 4.6 s without a pose
        assert status["frames"]["rejected_gated"] == 2
        assert "first pose after 4.6 s without one: held" in status["last_rejection"]
        frame(35.2)
        client.pose_at(35.2)
        assert node.alive()
    finally:
        client.close()
        node.stop()


@pytest.fixture(scope="module")
def tf2_msgs_env(tmp_path_factory) -> dict:
    """Environment for processes that use tf2_msgs: none needed where it is importable (a ROS 2
    install, or make setup built it into the venv), else a build of it into a folder of its
    own (what make setup does, with scripts/build_tf2_msgs.py)."""
    if importlib.util.find_spec("tf2_msgs") is not None:
        return {}
    if not (shutil.which("gcc") and shutil.which("g++")):
        pytest.skip("tf2_msgs is not installed and cannot be built here (needs gcc and g++): no "
                    "TF message type, so no TF over DDS")
    prefix = tmp_path_factory.mktemp("tf2_msgs")
    subprocess.run([sys.executable, str(TEST.parent / "scripts/build_tf2_msgs.py"), "--prefix",
                    str(prefix)], check=True, capture_output=True)
    return {"PYTHONPATH": os.pathsep.join([str(prefix / "python"), os.environ.get("PYTHONPATH", "")]),
            "LD_LIBRARY_PATH": os.pathsep.join([str(prefix / "lib"), os.environ.get("LD_LIBRARY_PATH", "")])}


def test_tf_map_to_odom_is_republished_over_dds(redkitchen, kitchen_map, tmp_path, tf2_msgs_env):
    """REP-105 over real DDS: from one pose and the odometry at its stamp, map -> odom is on
    /tf at transform_publish_period, post-dated, and places the camera where the pose says;
    nothing else (no map -> camera) is published."""
    kitchen = SceneDataset(redkitchen)
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, env=tf2_msgs_env, params={
        "map_path": kitchen_map, "status_period": 0.2, "odom_topic": "/odom",
        "transform_publish_period": 0.05, "transform_tolerance": 0.1})
    client = Client(domain=domain)
    odom_pub = client.node.create_publisher(Odometry, "/odom", 50)
    recorder = None
    try:
        client.wait_ready()
        wait_for(lambda: client.statuses[-1]["publishers"].get("odometry"), 30, "the odometry reader")
        assert "TF is broadcast with tf2_msgs alone" in node.log or "tf2_ros" not in node.log
        recorder = subprocess.Popen([sys.executable, str(TEST / "tf_recorder.py"), "8"], text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env={**os.environ, **tf2_msgs_env, "ROS_DOMAIN_ID": str(domain)})
        assert "ready" in recorder.stdout.readline()
        odom_from_cam = make_pose(np.eye(3), [2.0, -1.0, 0.5])  # base = camera here
        odom = Odometry(pose=PoseWithCovariance(pose=pose_to_msg(odom_from_cam)))
        odom.header.stamp, odom.header.frame_id = stamp_from_seconds(40.0), "odom"
        odom_pub.publish(odom)
        time.sleep(0.1)
        send_frame(client, kitchen, KITCHEN_QUERIES[0], 40.0)
        map_from_cam = pose_from_msg(client.pose_at(40.0).pose)
        lines, _ = recorder.communicate(timeout=30)
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        client.close()
        node.stop()
    transforms = [json.loads(line) for line in lines.splitlines()]
    assert len(transforms) >= 20, transforms  # 20 Hz over the seconds after the pose
    assert {(t["parent"], t["child"]) for t in transforms} == {("map", "odom")}
    stamps = [t["stamp"] for t in transforms]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))  # republished, newly stamped
    assert np.median(np.diff(stamps)) == pytest.approx(0.05, abs=0.02)
    map_from_odom = pose_from_quat(transforms[-1]["t"], transforms[-1]["q"])
    assert np.allclose(map_from_odom @ odom_from_cam, map_from_cam, atol=1e-6)


def test_a_mapping_image_before_any_camera_info_becomes_a_keyframe(redkitchen, tmp_path):
    """The first mapping image arrives before any CameraInfo (DDS delivers the topics
    independently): it waits for its CameraInfo instead of being refused."""
    kitchen = SceneDataset(redkitchen)
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, params={"status_period": 0.2})
    client = Client(domain=domain)
    try:
        client.wait_ready()
        assert client.trigger("start_mapping").success
        name, stamp = KITCHEN_QUERIES[0], 60.0
        client.send_mapping_pose(stamp, kitchen.frame(name).map_from_cam)
        client.send_image(stamp, kitchen.frame(name).load_image())
        time.sleep(0.3)                        # the image is in, no CameraInfo anywhere yet
        client.send_camera_info(stamp, kitchen.K, *kitchen.image_size)
        wait_for(lambda: client.statuses[-1]["mapping"]["keyframes"] == 1, 20, "the keyframe")
        assert client.status()["mapping"]["counts"].get("bad_images", 0) == 0
        assert client.trigger("cancel_mapping").success and node.alive()
    finally:
        client.close()
        node.stop()


def test_mapping_keeps_aligned_depth_with_the_keyframes(redkitchen, tmp_path):
    """mapping_depth_topic: each keyframe keeps the depth of its stamp; a depth of another
    size is refused with the reason and the keyframe kept without it."""
    kitchen = SceneDataset(redkitchen)
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, params={
        "status_period": 0.2, "mapping_depth_topic": "/depth", "keyframe_min_translation": 0.0,
        "keyframe_min_rotation": 0.0})
    client = Client(domain=domain)
    depth_pub = client.node.create_publisher(Image, "/depth", 10)

    def depth(stamp, w, h):
        msg = Image(height=h, width=w, encoding="16UC1", step=2 * w,
                    data=np.full((h, w), 2000, np.uint16).tobytes())
        msg.header.stamp, msg.header.frame_id = stamp_from_seconds(stamp), "camera"
        depth_pub.publish(msg)

    try:
        client.wait_ready()
        wait_for(lambda: depth_pub.get_subscription_count()
                 and client.statuses[-1]["publishers"].get("mapping_depth"), 30,
                 "both ends of the depth topic to match")  # a depth sent before is lost
        assert client.trigger("start_mapping").success
        w, h = kitchen.image_size
        for i, name in enumerate(KITCHEN_QUERIES):
            stamp = 50.0 + i
            if i < 2:
                depth(stamp, w, h)
            else:  # not aligned to the image
                depth(stamp, w // 2, h // 2)
            time.sleep(0.2)
            client.send_mapping_pose(stamp, kitchen.frame(name).map_from_cam)
            send_frame(client, kitchen, name, stamp)
            wait_for(lambda: client.statuses[-1]["mapping"]["keyframes"] == i + 1, 20, f"keyframe {i + 1}")
        counts = client.status()["mapping"]["counts"]
        assert counts["with_depth"] == 2 and counts["without_depth"] == 1
        wait_for(lambda: "kept without depth: depth is 320x240 but its image is 640x480" in node.log, 5,
                 "the reason in the log")
        assert client.trigger("cancel_mapping").success and node.alive()
    finally:
        client.close()
        node.stop()
