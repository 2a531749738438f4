"""The DDS transport settings the node ships (``config/fastdds_node.xml``) and the environment
that applies them. Used by ``node.main`` (``marepo-ros node``, ``ros2 run``) and the launch
file, before rclpy starts its DDS participant."""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

PROFILE_NAME = "fastdds_node.xml"
PROFILE_VARS = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
FASTRTPS = "rmw_fastrtps_cpp"  # the RMW of the PyPI wheels and ROS 2 Jazzy's default


def profile_path() -> Path | None:
    """The shipped Fast DDS profile: the checkout's config/, or the installed share folder."""
    candidates = [Path(__file__).resolve().parents[2] / "config" / PROFILE_NAME,
                  Path(sys.prefix) / "share" / "marepo_ros" / "config" / PROFILE_NAME]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory("marepo_ros")) / "config" / PROFILE_NAME)
    except Exception:  # noqa: BLE001 - no ament index (pip install): the other places
        pass
    return next((p for p in candidates if p.is_file()), None)


def transport_env(environ: Mapping[str, str] = os.environ) -> tuple[dict[str, str], str, bool]:
    """(variables to add to the node's environment, one line saying what was done, whether
    that line is a warning). The profile applies to Fast DDS only, never over a profile the
    user set."""
    rmw = environ.get("RMW_IMPLEMENTATION", FASTRTPS) or FASTRTPS
    if rmw != FASTRTPS:
        return {}, (f"transport profile not applied: RMW_IMPLEMENTATION is {rmw} (set large "
                    f"socket buffers for it yourself, see docs/node.md)"), False
    own = next((v for v in PROFILE_VARS if environ.get(v)), None)
    if own:
        return {}, f"transport: your Fast DDS profile {environ[own]} ({own})", False
    path = profile_path()
    if path is None:
        return {}, f"transport profile not applied: {PROFILE_NAME} not found in this install", True
    line = f"transport: Fast DDS profile {path} (UDP with large buffers, no shared memory)"
    localhost = environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").upper() == "LOCALHOST"
    if localhost:
        line += ("; but ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST makes rmw_fastrtps replace its "
                 "transports with its own: best-effort images over 512 KB will be lost")
    return {PROFILE_VARS[0]: str(path)}, line, localhost
