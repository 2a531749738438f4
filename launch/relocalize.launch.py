"""Start marepo_ros' relocalization_node.

    ros2 launch marepo_ros relocalize.launch.py map_path:=/maps/kitchen.map \
        image_topic:=/camera/color/image_raw camera_info_topic:=/camera/color/camera_info \
        namespace:=front_camera params_file:=/path/to/relocalize.yaml

``image_topic`` and ``camera_info_topic`` remap the node's inputs (``image``, and
``image/compressed`` to ``<image_topic>/compressed``; ``camera_info``) to a driver's topics;
``mapping_depth_topic`` names an aligned depth stream for mapping. Where ``ros2 launch`` is not
installed, ``marepo-ros node --params-file config/relocalize.yaml`` runs the same node. The
node applies the shipped DDS transport profile itself (config/fastdds_node.xml, see
docs/node.md). ``use_lifecycle_manager:=true`` starts it unconfigured (autostart false) under
nav2's lifecycle_manager, which configures and activates it (and brings it down on exit); the
node forms nav2's bond where bondpy is installed (the manager's ``bond_timeout`` 4 s, nav2's
default), else none, and the manager then runs with ``bond_timeout: 0.0`` (docs/node.md).
A ``map_path`` is passed as a parameter value, never pasted into an expression: any path works.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import (IfCondition, LaunchConfigurationEquals,
                               LaunchConfigurationNotEquals)
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from marepo_ros.ros.bond import HEARTBEAT_TIMEOUT_S as BOND_TIMEOUT_S
from marepo_ros.ros.bond import bond_available


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("marepo_ros"), "config",
                                  "relocalize.yaml")
    params_file = LaunchConfiguration("params_file")
    map_path = LaunchConfiguration("map_path")
    use_sim_time = LaunchConfiguration("use_sim_time")
    managed = LaunchConfiguration("use_lifecycle_manager")
    image_topic = LaunchConfiguration("image_topic")
    common = {"use_sim_time": use_sim_time,
              "mapping_depth_topic": LaunchConfiguration("mapping_depth_topic"),
              "autostart": PythonExpression(["'", managed, "'.lower() != 'true'"])}
    remappings = [("image", image_topic), ("image/compressed", [image_topic, "/compressed"]),
                  ("camera_info", LaunchConfiguration("camera_info_topic"))]
    # torch's OpenMP threads spin 10k rounds before sleeping (see marepo_ros/__init__.py), set
    # in the node's environment so that it holds whatever the node imports first; the caller's
    # own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
    omp_env = ({} if "OMP_WAIT_POLICY" in os.environ
               else {"GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT", "10000")})

    def node(condition, parameters):
        return Node(
            package="marepo_ros", executable="relocalization_node", name="relocalization_node",
            namespace=LaunchConfiguration("namespace"), output="screen", emulate_tty=True,
            parameters=parameters, condition=condition, additional_env=omp_env,
            remappings=remappings,
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")])

    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="YAML file with the node's parameters"),
        DeclareLaunchArgument("map_path", default_value="",
                              description="map file to load (overrides params_file's map_path)"),
        DeclareLaunchArgument("image_topic", default_value="image",
                              description="the camera's image topic (raw; its /compressed for "
                                          "image_transport compressed)"),
        DeclareLaunchArgument("camera_info_topic", default_value="camera_info",
                              description="the camera's CameraInfo topic"),
        DeclareLaunchArgument("mapping_depth_topic", default_value="",
                              description="aligned depth for mapping (empty: none)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its relative topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (e.g. when replaying a bag)"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="debug, info, warn, error or fatal"),
        DeclareLaunchArgument("use_lifecycle_manager", default_value="false",
                              description="manage the node with nav2_lifecycle_manager"),
        node(LaunchConfigurationNotEquals("map_path", ""), [params_file, {**common, "map_path": map_path}]),
        node(LaunchConfigurationEquals("map_path", ""), [params_file, common]),
        Node(package="nav2_lifecycle_manager", executable="lifecycle_manager",
             name="lifecycle_manager_relocalization", namespace=LaunchConfiguration("namespace"),
             output="screen", condition=IfCondition(managed),
             parameters=[{"use_sim_time": use_sim_time, "autostart": True,
                          "node_names": ["relocalization_node"],
                          # the node forms nav2's bond where bondpy is installed, else none
                          "bond_timeout": BOND_TIMEOUT_S if bond_available() else 0.0}]),
    ])
