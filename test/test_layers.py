"""The package's layering is a checked fact: the core never imports ROS, and a lower room never
imports a higher one (see docs/architecture.md)."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "marepo_ros"

# What each room may import from the package (besides itself). ``geometry`` is a module at the
# top that everybody uses; ``cli`` is the one command and may use everything.
CORE = ("geometry", "models", "io", "localization", "mapping", "evaluation", "training")
MAY_IMPORT = {
    "geometry": set(),
    "models": {"geometry"},
    "io": {"geometry", "models"},
    "localization": {"geometry", "models", "io"},
    "mapping": {"geometry", "models", "io", "localization"},
    "evaluation": {"geometry", "models", "io", "localization", "mapping"},
    "training": {"geometry", "models", "io", "localization", "mapping", "evaluation"},
    "ros": set(CORE),
    "cli": set(CORE) | {"ros"},
}
# Top-level names of ROS Python packages (rosbags is not one: it is pure Python without ROS).
ROS_PACKAGES = {"rclpy", "rosidl_runtime_py", "tf2_ros", "tf2_py", "cv_bridge", "message_filters",
                "launch", "launch_ros", "ament_index_python", "rosbag2_py", "builtin_interfaces"}


def _is_ros(name: str) -> bool:
    return name in ROS_PACKAGES or name.endswith(("_msgs", "_srvs", "_interfaces"))


def _room(module: tuple[str, ...]) -> str:
    """The room of a module path inside the package, e.g. ('io', 'bag') -> 'io'."""
    return module[0] if module else "__init__"


def layer_violations(package: Path) -> list[str]:
    """One line per import that breaks the layering, for the package rooted at ``package``."""
    problems = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        module = parts[:-1] if parts[-1] == "__init__" else parts
        here = _room(module)
        where = f"{path.relative_to(package.parent)}"
        package_of_file = list(parts[:-1])
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[tuple[str, ...]] = []
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top, *rest = alias.name.split(".")
                    if top == package.name:
                        targets.append(tuple(rest))
                    elif _is_ros(top) and here != "ros":
                        problems.append(f"{where}:{node.lineno} imports ROS package {top}")
            elif isinstance(node, ast.ImportFrom):
                if node.level == 0:
                    top, *rest = (node.module or "").split(".")
                    if top == package.name:
                        targets.append(tuple(rest))
                    elif _is_ros(top) and here != "ros":
                        problems.append(f"{where}:{node.lineno} imports ROS package {top}")
                else:
                    base = package_of_file[:len(package_of_file) - (node.level - 1)]
                    targets.append(tuple(base + (node.module.split(".") if node.module else [])))
            for target in targets:
                there = _room(target)
                if there in (here, "__init__"):
                    continue
                if there not in MAY_IMPORT.get(here, set()):
                    problems.append(f"{where}:{node.lineno} ({here}) imports {'.'.join(target)} "
                                    f"({there}), which {here} may not import")
    return problems


def test_every_room_is_known():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert rooms | modules == set(MAY_IMPORT)


def test_the_package_keeps_its_layers():
    assert layer_violations(PACKAGE) == []


def test_the_check_fails_on_rclpy_in_the_core_and_on_an_upward_import(tmp_path):
    copy = tmp_path / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    geometry = copy / "geometry.py"
    geometry.write_text("import rclpy\n" + geometry.read_text())
    networks = copy / "models" / "networks.py"
    networks.write_text("from ..mapping.build import preset\n" + networks.read_text())
    problems = layer_violations(copy)
    assert len(problems) == 2, problems
    assert "marepo_ros/geometry.py:1 imports ROS package rclpy" in problems
    assert problems[1].startswith("marepo_ros/models/networks.py:1 (models) imports mapping.build")
