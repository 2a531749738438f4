"""Start marepo_ros' relocalization_node.

    ros2 launch marepo_ros relocalize.launch.py map_path:=/maps/kitchen.map \
        namespace:=front_camera params_file:=/path/to/relocalize.yaml

Remap the inputs in a wrapping launch file or with a namespace: the node subscribes to the
relative topics ``image`` (or ``image/compressed``) and ``camera_info``. Where ``ros2 launch``
is not installed, ``marepo-ros node --params-file config/relocalize.yaml`` runs the same node.
The node applies the shipped DDS transport profile itself (config/fastdds_node.xml, see
docs/node.md). ``use_lifecycle_manager:=true`` starts it unconfigured (autostart false) under
nav2's lifecycle_manager, which configures and activates it (and brings it down on exit).
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("marepo_ros"), "config",
                                  "relocalize.yaml")
    params_file = LaunchConfiguration("params_file")
    map_path = LaunchConfiguration("map_path")
    use_sim_time = LaunchConfiguration("use_sim_time")
    managed = LaunchConfiguration("use_lifecycle_manager")
    overrides_map = PythonExpression(["'", map_path, "' != ''"])
    common = {"use_sim_time": use_sim_time,
              "autostart": PythonExpression(["'", managed, "'.lower() != 'true'"])}
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
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")])

    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="YAML file with the node's parameters"),
        DeclareLaunchArgument("map_path", default_value="",
                              description="map file to load (overrides params_file's map_path)"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the node and its relative topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="use /clock (e.g. when replaying a bag)"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="debug, info, warn, error or fatal"),
        DeclareLaunchArgument("use_lifecycle_manager", default_value="false",
                              description="manage the node with nav2_lifecycle_manager"),
        node(IfCondition(overrides_map), [params_file, {**common, "map_path": map_path}]),
        node(UnlessCondition(overrides_map), [params_file, common]),
        Node(package="nav2_lifecycle_manager", executable="lifecycle_manager",
             name="lifecycle_manager_relocalization", namespace=LaunchConfiguration("namespace"),
             output="screen", condition=IfCondition(managed),
             parameters=[{"use_sim_time": use_sim_time, "autostart": True,
                          "node_names": ["relocalization_node"]}]),
    ])
