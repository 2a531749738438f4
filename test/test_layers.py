"""The package's layering is a checked fact: the core never imports ROS, a lower room never
imports a higher one, and no module imports itself back through others (no import cycle, also
through imports inside functions; see docs/architecture.md)."""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "marepo_ros"

# What each room may import from the package (besides itself). ``geometry`` is a module at the
# top that everybody uses; ``cli`` is the one command and may use everything.
CORE = ("geometry", "camera", "models", "io", "localization", "runtime", "mapping", "evaluation",
        "synthetic", "training")
MAY_IMPORT = {
    "geometry": set(),
    "camera": {"geometry"},
    "models": {"geometry"},
    "io": {"geometry", "camera", "models"},
    "localization": {"geometry", "camera", "models", "io"},
    "runtime": {"geometry"},
    "mapping": {"geometry", "camera", "models", "io", "localization", "runtime"},
    "evaluation": {"geometry", "camera", "models", "io", "localization", "runtime", "mapping"},
    "synthetic": {"geometry"},
    "training": {"geometry", "camera", "models", "io", "localization", "runtime", "mapping",
                 "evaluation", "synthetic"},
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


def _module_of(package: Path, target: tuple[str, ...], names: list[str]) -> list[tuple[str, ...]]:
    """The package's modules an import of ``target`` (a path inside the package) with
    ``names`` (of a from-import) loads: the module file, or the package's submodules named."""
    if (package.joinpath(*target).with_suffix(".py")).is_file():
        return [target]
    if (package.joinpath(*target) / "__init__.py").is_file():
        subs = [target + (n,) for n in names if package.joinpath(*target, n).with_suffix(".py").is_file()]
        return subs or [target]
    return [target[:-1]] if target else []


def _runtime_imports(tree: ast.Module):
    """The import statements of a module that run: all but those under ``if TYPE_CHECKING``."""
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
            and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING"
            for body in node.body for n in ast.walk(body)}
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skip]


def import_cycles(package: Path) -> list[str]:
    """One line per import cycle among the package's modules ("a -> b -> a"), counting imports
    inside functions too (a deferred import is still a dependency both ways)."""
    graph: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).with_suffix("").parts
        module = parts[:-1] if parts[-1] == "__init__" else parts
        if not module:
            continue                                            # the package's own __init__
        edges = graph.setdefault(module, set())
        base_of_file = list(parts[:-1])
        for node in _runtime_imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    top, *rest = alias.name.split(".")
                    if top == package.name:
                        edges.update(_module_of(package, tuple(rest), []))
            elif node.level == 0:
                top, *rest = (node.module or "").split(".")
                if top == package.name:
                    edges.update(_module_of(package, tuple(rest), [a.name for a in node.names]))
            else:
                base = base_of_file[:len(base_of_file) - (node.level - 1)]
                target = tuple(base + (node.module.split(".") if node.module else []))
                edges.update(_module_of(package, target, [a.name for a in node.names]))
        edges.discard(module)
        edges.discard(())
    cycles, done = [], set()
    for start in sorted(graph):                                 # the shortest way back, per module
        paths, seen = [[start]], {start}
        while paths:
            path = paths.pop(0)
            for nxt in sorted(graph.get(path[-1], ())):
                if nxt == start:
                    cycle = frozenset(path)
                    if cycle not in done:
                        done.add(cycle)
                        cycles.append(" -> ".join(".".join(m) for m in [*path, start]))
                    paths = []
                    break
                if nxt not in seen:
                    seen.add(nxt)
                    paths.append([*path, nxt])
    return cycles


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


def test_no_module_imports_itself_back():
    assert import_cycles(PACKAGE) == []


def test_the_cycle_check_fails_on_a_cycle_inside_a_room_and_a_deferred_one(tmp_path):
    copy = tmp_path / PACKAGE.name
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("*.pt", "__pycache__"))
    estimate = copy / "localization" / "estimate.py"     # the registry imports the estimators
    estimate.write_text(estimate.read_text() + "\nfrom .registry import ESTIMATORS\n")
    p3p = copy / "localization" / "p3p.py"                # ransac imports p3p
    p3p.write_text(p3p.read_text() + "\n\ndef _late():\n    from .ransac import RansacEstimator\n")
    cycles = import_cycles(copy)
    assert any("localization.estimate -> localization.registry -> " in c for c in cycles), cycles
    assert "localization.p3p -> localization.ransac -> localization.p3p" in cycles
    assert layer_violations(copy) == []                  # inside one room: only this check sees it
