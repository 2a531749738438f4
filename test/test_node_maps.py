"""Maps at run time, over real DDS: a map_path set while mapping is refused and the build's maps
are swapped in off the executor; a map_path change (loaded in the parameter callback) does not
stall the TF republisher."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import KITCHEN_MAPPING, KITCHEN_QUERIES
from geometry_msgs.msg import PoseWithCovariance
from nav_msgs.msg import Odometry
from node_harness import Client, NodeProcess, fresh_domain, wait_for

from marepo_ros.geometry import make_pose
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map, save_map
from marepo_ros.ros.conversions import pose_to_msg, stamp_from_seconds

TEST = Path(__file__).resolve().parent
BUILD_RUNNING = "a map build is running: call ~/cancel_mapping first, or wait for it"


def send_frame(client: Client, ds: SceneDataset, name: str, stamp: float) -> None:
    client.send_camera_info(stamp, ds.K, *ds.image_size)
    client.send_image(stamp, ds.frame(name).load_image())


def test_map_path_is_refused_while_mapping_and_the_built_map_swaps_in(redkitchen, tmp_path):
    kitchen = SceneDataset(redkitchen)
    map_dir, elsewhere = tmp_path / "maps", str(tmp_path / "elsewhere.map")
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, params={
        "status_period": 0.2, "map_dir": str(map_dir), "min_keyframes": 6,
        "keyframe_min_translation": 0.0, "keyframe_min_rotation": 0.0, "mapping_epochs": 1.0})
    client = Client(domain=domain)
    try:
        client.wait_ready()
        assert client.trigger("start_mapping").success
        refused = client.set_params(map_path=elsewhere)[0]      # collecting
        assert not refused.successful and refused.reason == BUILD_RUNNING
        for i, name in enumerate(KITCHEN_MAPPING[::4]):
            stamp = 100.0 + 0.5 * i
            client.send_mapping_pose(stamp, kitchen.frame(name).map_from_cam)
            send_frame(client, kitchen, name, stamp)
            wait_for(lambda: client.statuses[-1]["mapping"]["keyframes"] == i + 1, 20, f"keyframe {i + 1}")
        assert client.trigger("stop_mapping").success
        refused = client.set_params(map_path=elsewhere)[0]      # building
        assert not refused.successful and refused.reason == BUILD_RUNNING
        assert client.status()["mapping"]["state"] == "building"
        status = wait_for(lambda: client.statuses[-1]["mapping"]["state"] == "idle" and client.statuses[-1],
                          50, "the build to end")
        built = client.get_param("map_path")                     # set by the node, not by us
        assert Path(built).parent == map_dir and status["map_path"] == built and status["map_loaded"]
        assert list(map_dir.iterdir()) == [Path(built)]          # the keyframe map's file is gone
        assert not status["mapping"]["error"] and "now localizing in it" in status["mapping"]["message"]
        assert f"map swapped in: {built} (estimator" in node.log and "full)" in node.log
        assert client.get_param("map_path") == built
        # mapping over: map_path loads again (a missing file is refused, the map stays)
        refused = client.set_params(map_path=elsewhere)[0]
        assert not refused.successful and "not found" in refused.reason
        assert client.status()["map_path"] == built and node.alive()
    finally:
        client.close()
        print(node.log[-3000:])
        node.stop()


@pytest.fixture(scope="module")
def heavy_map(kitchen_map, tmp_path_factory) -> Path:
    """The kitchen map with ballast in its extras, 4000 small arrays: it takes about half a
    second to load, many TF periods, in steps that each hold Python's GIL briefly (one big
    array would hold it for its whole copy: that stalls every thread, whatever the executor)."""
    scene_map = load_map(kitchen_map)
    ballast = [torch.zeros(100, dtype=torch.uint8) for _ in range(4000)]
    path = tmp_path_factory.mktemp("heavy") / "heavy.map"
    save_map(dataclasses.replace(scene_map, extras={**scene_map.extras, "test_ballast": ballast}), path)
    return path


def test_tf_keeps_its_period_while_a_map_path_change_loads(redkitchen, kitchen_map, heavy_map, tmp_path):
    """map -> odom at 20 Hz; a map_path change that loads for a while in the parameter callback:
    no gap of more than 3 periods in the republished stamps meanwhile."""
    pytest.importorskip("tf2_msgs.msg", reason="no tf2_msgs (make setup builds it): no /tf here")
    kitchen = SceneDataset(redkitchen)
    period, tolerance = 0.05, 0.1
    domain = fresh_domain()
    node = NodeProcess(tmp_path / "node.log", domain_id=domain, params={
        "map_path": kitchen_map, "status_period": 0.2, "odom_topic": "/odom",
        "transform_publish_period": period, "transform_tolerance": tolerance})
    client = Client(domain=domain)
    odom_pub = client.node.create_publisher(Odometry, "/odom", 50)
    recorder = None
    try:
        client.wait_ready()
        wait_for(lambda: client.statuses[-1]["publishers"].get("odometry"), 30, "the odometry reader")
        odom = Odometry(pose=PoseWithCovariance(pose=pose_to_msg(make_pose(np.eye(3), [1.0, 0.0, 0.0]))))
        odom.header.stamp, odom.header.frame_id = stamp_from_seconds(40.0), "odom"
        odom_pub.publish(odom)
        time.sleep(0.1)
        send_frame(client, kitchen, KITCHEN_QUERIES[0], 40.0)
        client.pose_at(40.0)                                     # map -> odom is republished now
        recorder = subprocess.Popen([sys.executable, str(TEST / "tf_recorder.py"), "8"], text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "ROS_DOMAIN_ID": str(domain)})
        assert "ready" in recorder.stdout.readline()
        first = recorder.stdout.readline()                       # discovery done: /tf arrives
        assert "parent" in first, "no /tf from the node"
        time.sleep(0.5)
        start = time.time()
        result = client.set_params(map_path=str(heavy_map))[0]
        end = time.time()
        assert result.successful, result.reason
        lines, _ = recorder.communicate(timeout=30)
        lines = first + lines
        assert client.status()["map_path"] == str(heavy_map) and node.alive()
    finally:
        if recorder is not None and recorder.poll() is None:
            recorder.kill()
        client.close()
        node.stop()
    sent = np.array([json.loads(line)["stamp"] - tolerance for line in lines.splitlines()])
    print(f"map_path change answered in {end - start:.2f} s; {len(sent)} TF messages")
    assert end - start > 4 * period, "the map loaded too fast to show a stall"
    during = sent[(sent > start - 3 * period) & (sent < end + 3 * period)]
    assert len(during) >= (end - start) / period - 2, np.round(sent - start, 3).tolist()
    gaps = np.diff(during)
    assert gaps.max() < 3 * period, f"TF stalled {gaps.max():.2f} s while the map loaded"
