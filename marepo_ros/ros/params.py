"""Every parameter of the relocalization node, in one table: name, default, description, and
its constraints. The node declares them from here and reads them into a ``NodeSettings``;
config/relocalize.yaml documents them and a test keeps the three in step."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

import numpy as np

from ..localization.calibration import default_min_confidence
from ..localization.registry import NAMES
from ..mapping.build import PRESETS
from ..mapping.feature_map import REFINE_MODES
from ..mapping.background import map_name_problem
from ..runtime.mount import MOUNT_SOURCES
from ..runtime.planar import parse_up


@dataclass(frozen=True)
class Param:
    """One parameter. ``read_only``: fixed at start-up. ``range``: (min, max) inclusive for
    numbers. ``choices``: allowed strings."""
    name: str
    default: object
    description: str
    read_only: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


PARAMS: tuple[Param, ...] = (
    # lifecycle
    Param("autostart", True, "Configure and activate at start-up (plain use). False: wait for "
          "lifecycle transitions (ros2 lifecycle set, nav2's lifecycle_manager).", read_only=True),
    # localization
    Param("map_path", "", "Map file to localize in (empty: none yet). Setting it at run time "
          "swaps the map without a restart; a missing, damaged or incompatible file is refused "
          "and the current map stays."),
    Param("encoder_path", "", "The head's encoder: empty (localizing: the encoder the map names; "
          "mapping: ace), ace (the shipped weights), xfeat (XFeat's dense features), or a file of "
          "ACE-format weights (a map built on one names only its hash: give the file here). A "
          "map's head only works with the encoder it was built with.", read_only=True),
    Param("estimator", "auto", "Pose estimator; auto: cascade when the map has keyframes and a "
          "head, points with keyframes only, ransac with a head only.",
          choices=NAMES),
    Param("device", "cpu", "Torch device for inference and mapping: cpu or cuda.",
          read_only=True, choices=("cpu", "cuda")),
    Param("inference_threads", 0, "Torch CPU threads for inference (0: torch's default).",
          read_only=True, range=(0, 256)),
    Param("min_confidence", default_min_confidence(), "Estimates below this confidence are not "
          "published. The confidence is the calibrated probability that the pose is within 10 cm "
          "and 5 degrees (estimators of the shipped model, docs/results.md); the default keeps "
          "wrong poses under 0.5 % of those published on the rows it was chosen on.",
          range=(0.0, 1.0)),
    # tracking (AMCL-style: initialpose, odometry)
    Param("odom_topic", "", "nav_msgs/Odometry of the base (odom frame): carries the last pose "
          "between relocalizations, gates jumps and feeds update_min_d/a. Empty: no odometry.",
          read_only=True),
    Param("odom_tolerance", 0.05, "Seconds between an image and the odometry used for it.",
          read_only=True, range=(0.0, 1.0)),
    Param("update_min_d", 0.0, "With odometry: skip frames until the camera moved this far "
          "(metres) ... (0: never skip).", read_only=True, range=(0.0, 100.0)),
    Param("update_min_a", 0.0, "... or turned this much (radians).", read_only=True,
          range=(0.0, 3.2)),
    Param("gate_sigmas", 3.0, "A pose further than this many sigmas from the initial pose or "
          "from the last pose carried by odometry is a jump.", read_only=True, range=(1.0, 100.0)),
    Param("jump_confirm_frames", 3, "A jump is published once this many frames in a row agree "
          "on it.", read_only=True, range=(1, 100)),
    Param("first_pose_confirm_frames", 1, "The first pose (at start-up, after "
          "~/reinitialize_global_localization, and without odometry after first_pose_gap "
          "seconds with no pose) is published once this many frames in a row agree on it (1: at "
          "once).", read_only=True, range=(1, 100)),
    Param("first_pose_gap", 2.0, "Seconds without a pose after which, without odometry, the "
          "next pose is a first pose again (first_pose_confirm_frames).", read_only=True,
          range=(0.0, 3600.0)),
    Param("covariance_scale", 250.0, "Factor on the estimator's covariance before it is "
          "published: its sigma^2 (J^T J)^-1 takes the inliers as independent and is far too "
          "small (benchmarks/covariance.py, redkitchen, points: 0.8 % of errors inside 2 "
          "sigma; x250: 98 % of positions, 92 % of orientations on held-out frames). Set it "
          "from that script for your scene and estimator.",
          range=(0.001, 1.0e6)),
    # nav2 (services ~/trigger_localization, ~/reinitialize_global_localization)
    Param("enable_continuous_localization", True, "Localize every frame (up to "
          "max_localization_rate). False: only the next frame after each call of "
          "~/trigger_localization; the others are skipped and counted (skipped_not_requested)."),
    Param("max_localization_rate", 0.0, "Frames localized per second at most (Hz): a frame "
          "sooner than that after the last one is skipped and counted (skipped_rate), never "
          "queued. 0: no cap.", range=(0.0, 1000.0)),
    Param("publish_initialpose", False, "Publish the base pose on /initialpose (as ~/base_pose) "
          "once per relocalization, to seed AMCL: the first pose after activation, after "
          "~/trigger_localization or ~/reinitialize_global_localization, after a confirmed jump, "
          "or after being lost (a frame without a pose 3 s after the last one). Never at frame "
          "rate.", read_only=True),
    Param("two_d_mode", False, "Ground robots: the base pose, its covariance and map_frame -> "
          "odom_frame (or -> base_frame) projected to x, y, yaw about map_up: z, roll, pitch zero "
          "in the up-aligned frame, their variances fixed at 1e-9 (as robot_localization's "
          "two_d_mode). The camera poses (~/pose, ~/pose_with_covariance) stay 6-DoF."),
    Param("map_up", "auto", "The map's up axis for two_d_mode: 'x y z' (e.g. '0 0 1' for a "
          "z-up map frame), or auto: the mean up axis of the map's keyframe bases (their camera "
          "poses through base_from_camera; the base's z, or the camera's -y when "
          "base_from_camera is the identity); +z when the map has no keyframes or they disagree "
          "(said in the log and ~/status)."),
    # inputs
    Param("rectified_images", False, "The images are rectified (e.g. image_rect): their camera "
          "is CameraInfo's P (3x3 part), not K, and the distortion is ignored. False (raw "
          "images): K and D; a distorted image is undistorted to the pinhole image of K before "
          "localization and mapping (plumb_bob, rational_polynomial, equidistant).",
          read_only=True),
    Param("image_transport", "raw", "Subscribe to 'image' (raw: sensor_msgs/Image) or "
          "'image/compressed' (compressed: sensor_msgs/CompressedImage).", read_only=True,
          choices=("raw", "compressed")),
    Param("qos_reliability", "best_available", "Reliability of the image and camera_info "
          "subscriptions; best_available: reliable when every publisher is reliable, else "
          "best effort (what camera drivers' sensor-data QoS offers).", read_only=True,
          choices=("best_available", "best_effort", "reliable")),
    Param("qos_depth", 5, "History depth of the image and camera_info subscriptions.",
          read_only=True, range=(1, 100)),
    # outputs
    Param("map_frame", "map", "Frame of the published poses (the frame the mapping poses "
          "were expressed in)."),
    Param("odom_frame", "odom", "With tf2_ros and publish_tf: publish map_frame -> odom_frame "
          "(REP-105), from the camera pose and odometry's odom -> camera transform at the "
          "image's stamp. Empty (no odometry): publish map_frame -> base_frame instead."),
    Param("base_frame", "base_link", "The robot's base frame: the child of map_frame when "
          "odom_frame is empty (placed with base_from_camera); a hand-held camera: its "
          "optical frame, with base_from_camera the identity."),
    Param("camera_frame", "", "Camera (optical) frame id; empty: the image's header.frame_id."),
    Param("publish_tf", True, "Broadcast the TF described under odom_frame (needs tf2_ros)."),
    Param("transform_tolerance", 0.1, "Seconds the published TF is post-dated by.",
          range=(0.0, 10.0)),
    Param("transform_publish_period", 0.05, "Seconds between two broadcasts of the latest "
          "correction (TF must be continuous; 0.05: 20 Hz).", read_only=True, range=(0.01, 10.0)),
    Param("tf_lookup_timeout", 0.05, "Seconds a TF lookup (odom -> camera at an image's "
          "stamp) may wait.", range=(0.0, 5.0)),
    Param("status_period", 1.0, "Seconds between ~/status and /diagnostics messages.",
          read_only=True, range=(0.05, 60.0)),
    # mapping
    Param("map_dir", "~/.ros/marepo_ros/maps", "Folder where ~/stop_mapping writes new maps."),
    Param("mapping_map_name", "", "Name of the map ~/stop_mapping writes, read at the stop: a "
          "file name in map_dir ('.map' added when missing; sub-folders allowed, '..' not), or "
          "an absolute path (or ~/...) to write elsewhere. Empty: map-<date>-<time>.map. An "
          "existing file is never overwritten: the stop is refused, the keyframes are kept, "
          "and another name can be set."),
    Param("mapping_pose_topic", "mapping_pose", "Topic with the camera (or base) poses used "
          "while mapping.", read_only=True),
    Param("mapping_pose_type", "pose", "Type of the mapping poses: pose (PoseStamped), "
          "odometry (nav_msgs/Odometry), or tf (lookup map_frame -> camera frame; needs "
          "tf2_ros).", read_only=True, choices=("pose", "odometry", "tf")),
    Param("base_from_camera", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0], "Camera optical frame in "
          "the frame the mapping poses describe, as x y z qx qy qz qw (identity: the poses "
          "are of the camera optical frame itself). Used when mount_source is parameter, or "
          "auto without the mount in TF."),
    Param("mount_source", "auto", "Where base_from_camera comes from: tf (base_frame -> the "
          "camera optical frame, camera_frame or the image's frame id, looked up in TF: "
          "tf2_ros' buffer, else a /tf_static listener, which needs tf2_msgs; frames are not "
          "localized until TF has it; without either, configure fails), parameter "
          "(base_from_camera), or auto: TF's when TF has it, else base_from_camera. ~/status "
          "mount says which is in use.", read_only=True, choices=MOUNT_SOURCES),
    Param("mapping_depth_topic", "", "Depth aligned with the images (sensor_msgs/Image 16UC1 "
          "millimetres or 32FC1 metres, same size and stamp; e.g. RealSense's "
          "aligned_depth_to_color/image_raw), stored with the keyframes while mapping: their "
          "3D points are lifted from it instead of triangulated. Empty: no depth.",
          read_only=True),
    Param("mapping_pose_tolerance", 0.05, "Seconds an image and a mapping pose may differ to "
          "be paired.", range=(0.0, 1.0)),
    Param("keyframe_min_translation", 0.05, "A new keyframe needs this much motion (metres) "
          "since the last one ...", range=(0.0, 100.0)),
    Param("keyframe_min_rotation", 5.0, "... or this much rotation (degrees).",
          range=(0.0, 180.0)),
    Param("max_keyframes", 500, "Cap on the keyframes held while mapping (memory bound: about "
          "0.2 MB each).", range=(2, 10000)),
    Param("min_keyframes", 10, "Keyframes needed before ~/stop_mapping builds a map.",
          range=(2, 10000)),
    Param("mapping_preset", "fast", "Mapping schedule (see marepo-ros map build --preset).",
          choices=tuple(PRESETS)),
    Param("mapping_epochs", 0.0, "Passes over the feature buffer (0: the preset's).",
          range=(0.0, 1000.0)),
    Param("mapping_refine_poses", "auto", "Bundle-adjust the full map's keyframe poses over "
          "their feature tracks, the mapping poses as priors (marepo-ros map build "
          "--refine-poses): auto uses the refined poses when they explain the images at least "
          "2.5x better, always uses them (poses from a VIO that drifts), never keeps the mapping "
          "poses. The keyframe map that comes first keeps the mapping poses. The outcome is in "
          "~/status mapping.pose_refinement.", choices=REFINE_MODES),
    Param("mapping_threads", 1, "Torch threads of the mapping process (it runs at lower CPU "
          "priority beside localization).", range=(1, 256)),
)

BY_NAME = {p.name: p for p in PARAMS}


class ParameterError(ValueError):
    """A parameter value that is not allowed; ``str()`` names the parameter and what is."""


def value_problem(name: str, value: object) -> str | None:
    """Why ``value`` is not allowed for parameter ``name`` (one line naming both and the
    allowed values), or None. Start-up values and run-time changes go through this."""
    spec = BY_NAME.get(name)
    if spec is None:
        return None
    if spec.choices and value not in spec.choices:
        return f"{name} must be one of {', '.join(spec.choices)} (got '{value}')"
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        return f"{name} must be within {spec.range[0]} to {spec.range[1]} (got {value})"
    if name == "base_from_camera":
        v = np.asarray(list(value), np.float64)
        if v.shape != (7,) or not np.all(np.isfinite(v)) or abs(np.linalg.norm(v[3:]) - 1) > 1e-3:
            return (f"base_from_camera must be 7 finite numbers x y z qx qy qz qw with a unit "
                    f"quaternion (got {list(value)})")
    if name == "mapping_map_name":
        return map_name_problem(value)
    if name == "map_up":
        try:
            parse_up(value)
        except ValueError as exc:
            return str(exc)
    return None


@dataclass(frozen=True)
class NodeSettings:
    """The parameters' values, typed (fields in PARAMS' order, each of its default's type; a
    list becomes a tuple). Read once at start-up; an accepted change makes a new one."""
    autostart: bool
    map_path: str
    encoder_path: str
    estimator: str
    device: str
    inference_threads: int
    min_confidence: float
    odom_topic: str
    odom_tolerance: float
    update_min_d: float
    update_min_a: float
    gate_sigmas: float
    jump_confirm_frames: int
    first_pose_confirm_frames: int
    first_pose_gap: float
    covariance_scale: float
    enable_continuous_localization: bool
    max_localization_rate: float
    publish_initialpose: bool
    two_d_mode: bool
    map_up: str
    rectified_images: bool
    image_transport: str
    qos_reliability: str
    qos_depth: int
    map_frame: str
    odom_frame: str
    base_frame: str
    camera_frame: str
    publish_tf: bool
    transform_tolerance: float
    transform_publish_period: float
    tf_lookup_timeout: float
    status_period: float
    map_dir: str
    mapping_map_name: str
    mapping_pose_topic: str
    mapping_pose_type: str
    base_from_camera: tuple[float, ...]
    mount_source: str
    mapping_depth_topic: str
    mapping_pose_tolerance: float
    keyframe_min_translation: float
    keyframe_min_rotation: float
    max_keyframes: int
    min_keyframes: int
    mapping_preset: str
    mapping_epochs: float
    mapping_refine_poses: str
    mapping_threads: int

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> NodeSettings:
        """From a value for every parameter (e.g. the declared ones, or the defaults);
        ParameterError for the first value ``value_problem`` refuses."""
        for f in fields(cls):
            problem = value_problem(f.name, values[f.name])
            if problem:
                raise ParameterError(problem)
        return cls(**{f.name: _typed(f.name, values[f.name]) for f in fields(cls)})

    def updated(self, changes: Mapping[str, object]) -> NodeSettings:
        """A copy with ``changes`` (name -> value) applied."""
        return replace(self, **{name: _typed(name, value) for name, value in changes.items()})


def _typed(name: str, value: object):
    """``value`` as the type of the parameter's default (a ROS array arrives as a list or an
    array.array)."""
    kind = type(BY_NAME[name].default)
    return tuple(float(v) for v in value) if kind is list else kind(value)
