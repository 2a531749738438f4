"""The camera mount's source (runtime.mount) and the names a map build may write
(mapping.background), without ROS."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marepo_ros.geometry import make_pose
from marepo_ros.io.tf_tree import TransformTree
from marepo_ros.mapping.background import map_name_problem, map_output_path
from marepo_ros.runtime.mount import CameraMount

PARAMETER = make_pose(np.eye(3), [0.0, 0.0, 1.0])
FROM_TF = make_pose(np.eye(3), [0.2, 0.0, 0.5])


def tf_lookup():
    """A lookup in a tree with base_link -> camera_link -> optical (static)."""
    tree = TransformTree()
    tree.add("base_link", "camera_link", FROM_TF, None)
    tree.add("camera_link", "optical", np.eye(4), None)
    return lambda base, camera: tree.lookup(base, camera, 0)


def test_auto_takes_tf_when_it_has_the_mount_else_the_parameter_and_says_so():
    mount = CameraMount("auto", PARAMETER)
    mount.use_tf(tf_lookup(), "test tree")
    level, line = mount.resolve("base_link", "optical")
    assert level == "info" and "from TF" in line
    assert np.allclose(mount.current(), FROM_TF) and mount.status()["source"] == "tf"
    assert mount.resolve("base_link", "optical") is None  # said once
    level, line = mount.resolve("base_link", "other_camera")
    assert level == "warning" and "parameter" in line and "other_camera" in line
    status = mount.status()
    assert np.allclose(mount.current(), PARAMETER) and status["source"] == "parameter"
    assert "no base_link -> other_camera transform" in status["error"]


def test_tf_leaves_the_mount_unknown_until_tf_has_it():
    mount = CameraMount("tf", PARAMETER)
    assert mount.current() is None and mount.status()["base_from_camera"] is None
    mount.use_tf(tf_lookup(), "test tree")
    level, line = mount.resolve("base_link", "missing")
    assert level == "warning" and "not localized" in line and mount.current() is None
    mount.resolve("base_link", "optical")
    assert np.allclose(mount.current(), FROM_TF)


def test_parameter_never_looks_up_and_follows_changes():
    mount = CameraMount("parameter", PARAMETER)

    def lookup(base, camera):
        raise AssertionError("looked up")
    mount.use_tf(lookup, "test")
    assert "mount_source parameter" in mount.resolve("base_link", "optical")[1]
    mount.set_parameter(FROM_TF)
    assert np.allclose(mount.current(), FROM_TF) and mount.status()["error"] == ""


def test_auto_without_tf_uses_the_parameter_and_says_why():
    mount = CameraMount("auto", PARAMETER)
    mount.use_tf(None, "tf2_ros is not installed and tf2_msgs was not built")
    level, line = mount.resolve("base_link", "optical")
    assert level == "warning" and "tf2_msgs was not built" in line
    assert np.allclose(mount.current(), PARAMETER)


@pytest.mark.parametrize("name, expected", [
    ("kitchen", "/maps/kitchen.map"), ("kitchen.map", "/maps/kitchen.map"),
    ("floor2/kitchen", "/maps/floor2/kitchen.map"), ("/elsewhere/k", "/elsewhere/k.map"),
    ("k.v2", "/maps/k.v2.map")])
def test_map_names_stay_in_map_dir_unless_absolute(name, expected):
    assert map_output_path("/maps", name) == Path(expected)


def test_the_default_name_is_dated_and_bad_names_are_refused():
    assert map_output_path("/maps", "").name.startswith("map-")
    for name in ("../escape", "a/../../b", "folder/", ".", "bad\x00name"):
        assert map_name_problem(name), name
        with pytest.raises(ValueError, match="mapping_map_name"):
            map_output_path("/maps", name)
    assert map_name_problem("") is None and map_name_problem("/abs/../x") is None
