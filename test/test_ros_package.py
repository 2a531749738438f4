"""The ROS packaging stays consistent: parameters <-> settings, config; launch file; package.xml."""
from __future__ import annotations

import array
import ast
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from marepo_ros.ros.params import PARAMS, NodeSettings

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "launch/relocalize.launch.py"


def test_config_documents_every_parameter_with_its_default():
    config = yaml.safe_load((REPO / "config/relocalize.yaml").read_text())
    values = config["/**"]["ros__parameters"]
    assert list(values) == [p.name for p in PARAMS]
    for p in PARAMS:
        assert values[p.name] == p.default, p.name
        assert type(values[p.name]) is type(p.default), f"{p.name}: YAML type differs from the declared one"
    text = (REPO / "config/relocalize.yaml").read_text()
    for p in PARAMS:  # a comment line right above each parameter
        assert re.search(rf"# .+\n    {p.name}:", text), f"{p.name} has no comment"


def test_settings_have_a_field_of_the_declared_type_for_every_parameter():
    assert [f.name for f in fields(NodeSettings)] == [p.name for p in PARAMS]
    defaults = {p.name: p.default for p in PARAMS}
    settings = NodeSettings.from_values(defaults)
    for f, p in zip(fields(NodeSettings), PARAMS):
        declared = "tuple[float, ...]" if isinstance(p.default, list) else type(p.default).__name__
        assert f.type == declared, p.name
        assert getattr(settings, p.name) == (tuple(p.default) if isinstance(p.default, list)
                                             else p.default)
    changed = settings.updated({"min_confidence": 0.5,  # a ROS double array may be an array.array
                                "base_from_camera": array.array("d", [1, 2, 3, 0, 0, 0, 1])})
    assert changed.min_confidence == 0.5 and changed.base_from_camera == (1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0)
    assert settings == NodeSettings.from_values(defaults)  # frozen: a change makes a new one


def test_launch_file_declares_the_documented_arguments():
    tree = ast.parse(LAUNCH.read_text())
    declared = {node.args[0].value for node in ast.walk(tree)
                if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument"}
    assert declared == {"params_file", "map_path", "namespace", "use_sim_time", "log_level",
                        "use_lifecycle_manager", "image_topic", "camera_info_topic",
                        "mapping_depth_topic"}
    assert "PythonExpression([\"'\", map_path" not in LAUNCH.read_text()  # quoting-safe map_path
    executables = {kw.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                   for kw in node.keywords if kw.arg == "executable"}
    setup = (REPO / "setup.py").read_text()
    assert executables == {"relocalization_node", "lifecycle_manager"}
    assert '"relocalization_node = ' in setup


def test_launch_file_builds_a_description_where_ros2_launch_exists():
    pytest.importorskip("launch_ros", reason="launch_ros is not installed (the PyPI ROS 2 wheels "
                        "have no launch); `marepo-ros node --params-file` runs the node instead")
    import importlib.util
    spec = importlib.util.spec_from_file_location("relocalize_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.generate_launch_description().entities


def test_package_xml_lists_every_ros_package_the_shell_imports():
    xml = (REPO / "package.xml").read_text()
    depends = set(re.findall(r"<exec_depend>([\w-]+)</exec_depend>", xml))
    imported = set()
    for path in (REPO / "marepo_ros/ros").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
    ros = {m for m in imported if m.endswith(("_msgs", "_srvs", "_interfaces")) or m in ("rclpy", "tf2_ros")}
    package_of = {"tf2_ros": "tf2_ros_py"}        # the Python module tf2_ros is package tf2_ros_py
    ros = {package_of.get(m, m) for m in ros}
    assert ros <= depends, f"missing from package.xml: {sorted(ros - depends)}"
    assert "nav2_lifecycle_manager" in depends     # use_lifecycle_manager:=true starts it
    assert {"launch", "launch_ros", "ament_index_python"} <= depends  # the launch file


def test_value_problem_names_the_parameter_and_the_allowed_values():
    from marepo_ros.ros.params import ParameterError, value_problem
    assert value_problem("image_transport", "raw") is None
    assert value_problem("image_transport", "Compressed") == (
        "image_transport must be one of raw, compressed (got 'Compressed')")
    assert value_problem("min_confidence", 1.5) == "min_confidence must be within 0.0 to 1.0 (got 1.5)"
    assert "unit quaternion" in value_problem("base_from_camera", [0.0] * 7)
    assert "unit quaternion" in value_problem("base_from_camera", [0.0] * 6 + [float("nan")])
    assert value_problem("base_from_camera", [1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0]) is None
    values = {p.name: p.default for p in PARAMS} | {"estimator": "fast"}
    with pytest.raises(ParameterError, match="estimator must be one of auto"):
        NodeSettings.from_values(values)


def test_transport_profile_applies_to_fast_dds_only_and_never_over_the_users():
    from marepo_ros.ros.transport import PROFILE_VARS, transport_env
    env, line, warn = transport_env({})
    assert Path(env[PROFILE_VARS[0]]).is_file() and not warn and "UDP" in line
    assert transport_env({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"})[0] == {}
    assert transport_env({"FASTRTPS_DEFAULT_PROFILES_FILE": "/mine.xml"})[0] == {}
    env, line, warn = transport_env({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"})
    assert env and warn and "LOCALHOST" in line


def test_diagnostics_say_what_matters_most():
    from diagnostic_msgs.msg import DiagnosticStatus

    from marepo_ros.ros.diagnostics import diagnostic_status
    status = {"lifecycle": "active", "failing": False, "map_loaded": True, "localized": True,
              "last_rejection": "", "frames": {"received": 3, "localized": 3},
              "publishers": {"image": 1}, "mapping": {"state": "idle", "error": "", "message": ""},
              "tracking": {"prior": False}, "localization": {"continuous": True}, "latency_ms": 12.5}

    def diag(**changes):
        return diagnostic_status({**status, **changes}, name="n", hardware_id="h")
    ok = diag()
    assert ok.level == DiagnosticStatus.OK and ok.message == "localized"
    values = {kv.key: kv.value for kv in ok.values}
    assert values["latency_ms"] == "12.500" and values["frames.received"] == "3"
    assert values["publishers.image"] == "1" and values["tracking.prior"] == "False"
    failing = diag(failing=True, localized=False, last_rejection="publish failed: boom")
    assert failing.level == DiagnosticStatus.ERROR and failing.message == "publish failed: boom"
    inactive = diag(lifecycle="inactive", failing=True)
    assert inactive.level == DiagnosticStatus.WARN and inactive.message.startswith("inactive")
    assert diag(localized=False, last_rejection="jump").message == "not localized: jump"
    idle = diag(localized=False, localization={"continuous": False})  # frames skipped on purpose
    assert idle.level == DiagnosticStatus.OK and idle.message == "waiting for ~/trigger_localization"
    assert {kv.key: kv.value for kv in idle.values}["localization.continuous"] == "False"
