"""relocalization_node: camera frames in, metric 6-DoF poses in the map frame out.

A lifecycle node (configure: encoder, map, outputs; activate: inputs, worker; see on_*).
Topics (relative names, remap like any node; docs/node.md has the table):
    in   image (sensor_msgs/Image) or image/compressed (CompressedImage), camera_info,
         initialpose (PoseWithCovarianceStamped), <odom_topic> (nav_msgs/Odometry),
         while mapping <mapping_pose_topic> (PoseStamped or Odometry), <mapping_depth_topic>
    out  ~/pose (PoseStamped), ~/pose_with_covariance (PoseWithCovarianceStamped), of the
         camera; ~/base_pose (PoseWithCovarianceStamped, AMCL's amcl_pose type: the base
         through base_from_camera, the covariance with the lever arm); all stamped with the
         image's stamp in map_frame; /initialpose (the base pose, once per relocalization, with
         publish_initialpose: seeds AMCL); ~/status (std_msgs/String, JSON); /diagnostics; TF
         map_frame -> odom_frame (REP-105), or -> base_frame without odometry, republished
         every transform_publish_period. two_d_mode: the base pose and the TF planar (x, y,
         yaw about map_up).
The camera mount (base_from_camera) comes from TF or the parameter (``mount_source``;
``runtime.mount``): TF is read with tf2_ros' buffer, else from /tf_static (``tf_in``).
Services: ~/start_mapping, ~/stop_mapping, ~/cancel_mapping, ~/trigger_localization
(std_srvs/Trigger: localize the next frame, also with enable_continuous_localization off),
~/reinitialize_global_localization (std_srvs/Empty, AMCL's: forget prior and tracking);
lifecycle_msgs. Frames over max_localization_rate, or not asked for, are skipped and counted.
Maps are loaded by setting the ``map_path`` parameter (validated, hot-swapped; refused while a
map is being collected or built); a built map is written under ``map_dir``, loaded off the
executor, swapped in, and becomes ``map_path``.

Threads: ``main`` spins a multi-threaded executor; the node's callbacks share one (mutually
exclusive) callback group and run short, except a ``map_path`` change, which loads the map in
the parameter callback; the TF republisher's timer has a group of its own, so it keeps its
period meanwhile. One worker thread localizes the newest frame (older unprocessed frames are
dropped and counted); one loader thread builds the pipelines of maps a build wrote; maps are
built in a child process (``mapping_services.MappingSession``).
"""
from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.lifecycle import LifecycleNode, LifecyclePublisher, LifecycleState, TransitionCallbackReturn
from rclpy.publisher import Publisher
from rclpy.service import Service
from rclpy.parameter import Parameter
from rclpy.duration import Duration
from rclpy.time import Time
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String
from std_srvs.srv import Empty, Trigger

from ..camera import Camera, CameraError, camera_from_info
from ..geometry import pose_from_quat
from ..io.bag import pose_from_transform
from ..io.mapfile import MapFileError, load_map
from ..localization.pipeline import Pipeline, PipelineConfig, shared_encoder
from ..models.networks import EncoderError
from ..runtime.gaps import SequenceGaps
from ..runtime.mount import CameraMount
from ..runtime.planar import base_axes, level_frame, map_up, planar_covariance, planar_pose
from ..runtime.rep105 import base_covariance, map_from_base, map_from_odom
from ..runtime.requests import SKIPS, TRIGGERED, LocalizationRequests
from ..runtime.streams import LatestSlot, RateMeter, StampedBuffer
from .conversions import (InputError, image_from_compressed, image_from_msg, pose_to_msg,
                          pose_with_covariance_msg, seconds)
from .diagnostics import diagnostic_status
from .inputs import InputSubscriptions
from .kind_log import KindLog, guarded
from .mapping_services import MappingSession
from .nav2_services import Nav2Services
from .params import PARAMS, NodeSettings, ParameterError, value_problem
from .tf_in import StaticTfListener
from .bond import ManagerBond
from .tf_out import TfMessageBroadcaster, TransformRepublisher
from .tracking_io import TrackingInputs
from .transport import transport_env

try:  # a full ROS 2 install has tf2_ros; the PyPI wheels do not
    import tf2_ros
except ImportError:
    tf2_ros = None
try:  # there, make setup builds tf2_msgs (scripts/build_tf2_msgs.py): TF without lookups
    import tf2_msgs.msg as tf2_msgs
except ImportError:
    tf2_msgs = None

NODE_NAME = "relocalization_node"
LOG_REPEAT_S = 5.0  # one kind of problem is logged at most this often
CAMERA_INFO_WAIT_S = 0.05  # the worker waits this long for the CameraInfo of an image's stamp
CAMERA_INFO_POLL_S = 0.005  # ... looking for it again this often
CAMERA_INFO_BUFFER = 50  # CameraInfo messages kept to pair with images by stamp
STAMP_MATCH_S = 1e-6  # an image and its own CameraInfo carry the same stamp
OUTPUT_QUEUE_DEPTH = 10  # history depth of every publisher (poses, status, diagnostics)
MAPPING_POSE_QUEUE_DEPTH = 50  # mapping poses may come faster than images: keep more
BUILD_POLL_PERIOD_S = 0.25  # the timer that follows a map build and swaps in its maps
WORKER_TAKE_TIMEOUT_S = 0.2  # the worker looks at its stop flag at least this often
WORKER_JOIN_TIMEOUT_S = 5.0  # waiting for the worker (one frame at most) when it is stopped
# Variance published for each axis when an estimator's covariance is not finite: "unknown".
UNKNOWN_VARIANCE = 1e6
LATENCY_WINDOW = 100  # frames in ~/status' latency_ms_mean
# Executor threads: one for the node's (mutually exclusive) callbacks, one for the TF republisher.
EXECUTOR_THREADS = 2
# Rejections after a localization attempt: they count towards being lost (runtime.requests).
LOCALIZATION_FAILURES = ("no_pose", "confidence", "gated")


def _confidence_note(pipeline) -> str:
    """How the active estimator's confidence compares with min_confidence, for the log."""
    if pipeline is None or pipeline.calibrated:
        return ""
    return ("; its confidence is its own score, not a calibrated probability: min_confidence "
            "compares that score")


def _descriptor(p) -> ParameterDescriptor:
    d = ParameterDescriptor(name=p.name, read_only=p.read_only, description=p.description
                            + (f" One of: {', '.join(p.choices)}." if p.choices else ""))
    if p.range is not None:
        if isinstance(p.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]),
                                                         to_value=float(p.range[1]))]
        else:
            d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]))]
    return d


class RelocalizationNode(LifecycleNode):
    """See the module docstring. A managed (lifecycle) node: configure loads the encoder and
    the map and creates the outputs, activate subscribes and starts the worker, deactivate
    stops both (the map stays), cleanup frees everything; ``autostart`` runs configure and
    activate at construction. ``shutdown()`` stops the worker and any map build. Mapping is
    ``self._mapping`` (a ``MappingSession``). ``self._pipeline`` (the map and its estimator)
    is replaced by one assignment under ``self._map_lock``, which also guards ``_map_path``
    and ``_map_error``; the worker reads it once per frame."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.settings = NodeSettings.from_values(self._declare_parameters())
        self._lock = threading.Lock()          # counters and last-frame figures
        self._map_lock = threading.Lock()      # _pipeline, _map_path, _map_error
        self.counts = Counter({k: 0 for k in (
            "received", "paired", "info_fallback", "localized", "rejected", "dropped_stale",
            "skipped", "errors", "publisher_gaps", "camera_info_received", "initialpose_published")})
        self._last = {"localized": False, "latency_ms": None, "stamp_latency_ms": None,
                      "inlier_ratio": None, "confidence": None, "rejection": "",
                      "failing": False, "error": ""}
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._log = KindLog(self.get_logger(), LOG_REPEAT_S)
        self._rate = RateMeter()
        self._gaps = SequenceGaps()
        self._infos = StampedBuffer(capacity=CAMERA_INFO_BUFFER)
        self._valid_infos: dict[str, tuple] = {}  # frame id -> latest usable (K, width, height)
        self._slot = LatestSlot()
        self._warned_distortion = False

        s = self.settings
        self.encoder_path = s.encoder_path or None
        self.device = torch.device(s.device)
        self.encoder = None
        self._map_path = ""
        self._pipeline: Pipeline | None = None
        self._map_error = ""
        self._param_sync = None  # the map_path the node itself sets after a swap (not loaded again)
        self._loads: queue.Queue = queue.Queue()  # (path, kind) for the loader thread
        self._loaded: deque = deque()  # (path, kind, error) from it, for the executor
        self._loader: threading.Thread | None = None
        self._mapping = MappingSession(
            settings=lambda: self.settings, base_from_camera=lambda: self._mount.current(),
            decode=self._decode, camera_paired=lambda header: self._camera_for(header)[1],
            lookup_tf=self._lookup_tf if tf2_ros is not None else None,
            lifecycle=lambda: self._lifecycle, sources=self._mapping_sources, log=self._log,
            on_map_ready=self._on_map_ready)
        self._requests = LocalizationRequests()
        self._nav2 = Nav2Services(
            requests=self._requests, lifecycle=lambda: self._lifecycle,
            map_loaded=lambda: self._pipeline is not None, log=self._log,
            reset_tracking=lambda: self._tracking.reset() if self._tracking else None)
        self._map_up: tuple[list, str] | None = None  # two_d_mode: (up axis, where from), for ~/status
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._mount = CameraMount(s.mount_source, pose_from_quat(s.base_from_camera[:3],
                                                                 s.base_from_camera[3:]))
        self._lifecycle = "unconfigured"
        self._bond = ManagerBond(self)  # nav2 lifecycle manager's heartbeat, where bondpy is
        self._outputs: list = []  # what configure creates and cleanup destroys
        self._inputs: InputSubscriptions | None = None
        self._mapping_pose_sub = self._depth_sub = None
        self._tracking: TrackingInputs | None = None
        self._worker: threading.Thread | None = None
        self._running = False
        self._tf_broadcaster = self._tf_buffer = self._static_tf = None
        self.start_error = ""
        if s.autostart:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ---- lifecycle ----------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the encoder (failure: stay unconfigured, ``start_error`` says why) and the map
        (a bad map is reported and waited for), create outputs, services, timers and TF."""
        s = self.settings
        try:
            if s.mount_source == "tf" and tf2_ros is None and tf2_msgs is None:
                raise RuntimeError("mount_source is 'tf' but TF cannot be read here: tf2_ros is "
                                   "not installed and tf2_msgs was not built (make setup: "
                                   "scripts/build_tf2_msgs.py); set mount_source to auto or parameter")
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise RuntimeError("device 'cuda' requested but CUDA is not available")
            if s.inference_threads:
                torch.set_num_threads(s.inference_threads)
            self.encoder = shared_encoder(self.encoder_path, str(self.device))
        except (EncoderError, RuntimeError) as exc:
            self.start_error = str(exc)
            self._log("lifecycle", f"configure failed: {exc}", level="error", throttle=False)
            return TransitionCallbackReturn.FAILURE
        with self._map_lock:
            self._map_path, self._pipeline, self._map_error = s.map_path, None, ""
            if s.map_path:
                try:
                    self._pipeline = self._make_pipeline(s.map_path, s.estimator)
                    self.get_logger().info(f"map loaded: {self._map_path}")
                except (MapFileError, ValueError, EncoderError) as exc:
                    self._map_error = str(exc)
                    self.get_logger().error(f"cannot load map_path: {exc}; waiting for a valid map")
        self._setup_tf()
        self._setup_outputs()
        self._lifecycle = "inactive"
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._requests.start()
        self._setup_inputs()
        self._running = True
        self._worker = threading.Thread(target=self._work, name="relocalization-worker", daemon=True)
        self._worker.start()
        self._lifecycle = "active"
        self._bond.form()
        s = self.settings
        self.get_logger().info(
            f"active: {self._image_topic} + {self._inputs.camera_info.topic_name} -> "
            f"{self._pose_pub.topic_name}; estimator {s.estimator} on {self.device}; "
            f"map {'loaded' if self._pipeline else 'none (set map_path or use ~/start_mapping)'}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking frames; the map, the outputs and any mapping stay."""
        self._bond.release()
        self._teardown_inputs()
        self._stop_worker()
        self._lifecycle = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the map, the encoder, the outputs; a map build is stopped."""
        self._release()
        self._lifecycle = "unconfigured"
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._bond.release()
        self._teardown_inputs()
        self._stop_worker()
        self._release()
        self._lifecycle = "finalized"
        return super().on_shutdown(state)

    def _LifecycleNodeMixin__on_change_state(self, request, response):
        """~/change_state. rclpy's own handler raises on a transition that the current state
        does not have, and the exception ends the node: refuse it instead, and say why."""
        try:
            return super()._LifecycleNodeMixin__on_change_state(request, response)
        except _rclpy.RCLError as exc:
            response.success = False
            self._log("lifecycle", f"lifecycle transition {request.transition.id} "
                      f"'{request.transition.label}' refused in state {self._lifecycle}: {exc}",
                      throttle=False)
            return response

    def _release(self) -> None:
        self._mapping.terminate()
        for entity in self._outputs:
            if isinstance(entity, LifecyclePublisher):
                self.destroy_lifecycle_publisher(entity)
            elif isinstance(entity, Publisher):
                self.destroy_publisher(entity)
            elif isinstance(entity, Service):
                self.destroy_service(entity)
            else:
                self.destroy_timer(entity)
        self._outputs = []
        with self._map_lock:
            self._pipeline = self.encoder = None
        if self._static_tf is not None:
            self._static_tf.destroy()
        self._tf_broadcaster = self._tf_buffer = self._static_tf = None
        self._mount.use_tf(None, "not configured")

    def _stop_worker(self) -> None:
        self._running = False
        if self._worker is not None:
            self._worker.join(WORKER_JOIN_TIMEOUT_S)
            self._worker = None

    # ---- set-up -------------------------------------------------------------------------
    def _declare_parameters(self) -> dict:
        """Declare every parameter; its value at start-up. ParameterError (one line naming the
        parameter) for a value of the wrong type or outside its range."""
        values = {}
        for p in PARAMS:
            try:
                values[p.name] = self.declare_parameter(p.name, p.default, _descriptor(p)).value
            except rclpy.exceptions.InvalidParameterTypeException as exc:
                raise ParameterError(f"{p.name} must be of type {type(p.default).__name__} "
                                     f"({exc})") from None
            except rclpy.exceptions.InvalidParameterValueException as exc:
                raise ParameterError(f"{p.name} must be within {p.range[0]} to {p.range[1]} "
                                     f"({exc})") from None
        return values

    def _setup_tf(self) -> None:
        """A broadcaster, and a buffer for lookups (also of the camera mount) where tf2_ros
        exists; with tf2_msgs alone, TF goes out, odometry for map -> odom comes from
        odom_topic only and the camera mount from a /tf_static listener."""
        s = self.settings
        if tf2_ros is None:
            if tf2_msgs is not None:
                self.get_logger().info(
                    "tf2_ros is not available in this Python environment: TF is broadcast with "
                    "tf2_msgs alone, without lookups (odom -> camera comes from odom_topic; "
                    "mapping_pose_type 'tf' cannot be used; the camera mount is read from "
                    "/tf_static only)", once=True)
                self._tf_broadcaster = TfMessageBroadcaster(self)
                if s.mount_source != "parameter":
                    self._static_tf = StaticTfListener(self, lambda text: self._log("mount", text))
                    self._mount.use_tf(self._static_tf.lookup,
                                       "/tf_static listener: tf2_ros is not installed")
            else:
                self._mount.use_tf(None, "tf2_ros is not installed and tf2_msgs was not built")
                if s.publish_tf or s.mapping_pose_type == "tf" or s.mount_source != "parameter":
                    self.get_logger().warning(
                        "tf2_ros is not available in this Python environment and tf2_msgs was "
                        "not built (scripts/build_tf2_msgs.py): no TF is broadcast (poses are "
                        "published on ~/pose and ~/pose_with_covariance only), "
                        "mapping_pose_type 'tf' cannot be used and the camera mount is the "
                        "base_from_camera parameter.", once=True)
                return
        else:
            self._tf_broadcaster = tf2_ros.TransformBroadcaster(self)
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
            self._mount.use_tf(lambda base, camera: self._lookup_tf(base, camera, Time().to_msg()),
                               "tf2_ros buffer")
        self._tf_out = TransformRepublisher(self._tf_broadcaster.sendTransform,
                                            lambda: self.get_clock().now().nanoseconds * 1e-9)
        # a group of its own: on a multi-threaded executor the republisher keeps its period
        # while another callback runs long (a map_path change loads the map)
        self._outputs.append(self.create_timer(self.settings.transform_publish_period,
                                               self._republish_tf,
                                               callback_group=MutuallyExclusiveCallbackGroup()))

    def _lookup_tf(self, target: str, source: str, stamp) -> np.ndarray:
        """target_from_source (4x4) at ``stamp`` (builtin_interfaces/Time) from the TF buffer
        (tf2_ros only); raises when it is not known."""
        if self._tf_buffer is None:
            raise LookupError("no TF buffer (the node is not configured)")
        return pose_from_transform(self._tf_buffer.lookup_transform(
            target, source, Time.from_msg(stamp)).transform)

    def _setup_outputs(self) -> None:
        """Pose publishers (lifecycle: silent while inactive), ~/status and /diagnostics
        (always: they say the node is inactive), services and timers."""
        s = self.settings
        depth = OUTPUT_QUEUE_DEPTH
        self._pose_pub = self.create_lifecycle_publisher(PoseStamped, "~/pose", depth)
        self._pose_cov_pub = self.create_lifecycle_publisher(
            PoseWithCovarianceStamped, "~/pose_with_covariance", depth)
        self._base_pose_pub = self.create_lifecycle_publisher(
            PoseWithCovarianceStamped, "~/base_pose", depth)
        self._status_pub = self.create_publisher(String, "~/status", depth)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", depth)
        self._outputs += [
            self._pose_pub, self._pose_cov_pub, self._base_pose_pub, self._status_pub, self._diag_pub,
            self.create_service(Trigger, "~/start_mapping", self._mapping.start),
            self.create_service(Trigger, "~/stop_mapping", self._mapping.stop),
            self.create_service(Trigger, "~/cancel_mapping", self._mapping.cancel),
            self.create_service(Trigger, "~/trigger_localization", self._nav2.trigger),
            self.create_service(Empty, "~/reinitialize_global_localization", self._nav2.reinitialize),
            self.create_timer(s.status_period, self._publish_status),
            self.create_timer(BUILD_POLL_PERIOD_S, self._poll_build)]

    def _setup_inputs(self) -> None:
        s = self.settings
        self._inputs = InputSubscriptions(
            self, compressed=s.image_transport == "compressed", reliability=s.qos_reliability,
            depth=s.qos_depth, on_image=self._on_image, on_camera_info=self._on_camera_info)
        self._image_topic = self._inputs.image.topic_name
        self._tracking = TrackingInputs(self, s, base_from_cam=self._mount.current,
                                        log=self._log)
        if s.mapping_depth_topic:
            self._depth_sub = self.create_subscription(
                Image, s.mapping_depth_topic, self._mapping.on_depth,
                QoSProfile(depth=s.qos_depth, reliability=ReliabilityPolicy.BEST_EFFORT))
        if s.mapping_pose_type == "pose":
            self._mapping_pose_sub = self.create_subscription(
                PoseStamped, s.mapping_pose_topic, lambda m: self._mapping.on_pose(m.header, m.pose),
                MAPPING_POSE_QUEUE_DEPTH)
        elif s.mapping_pose_type == "odometry":
            self._mapping_pose_sub = self.create_subscription(
                Odometry, s.mapping_pose_topic, lambda m: self._mapping.on_pose(m.header, m.pose.pose),
                MAPPING_POSE_QUEUE_DEPTH)

    def _mapping_sources(self) -> str:
        """Where mapping keyframes come from, for the mapping messages."""
        s = self.settings
        source = "TF" if s.mapping_pose_type == "tf" else self.resolve_topic_name(s.mapping_pose_topic)
        return f"{self._image_topic} with poses from {source}"

    def _teardown_inputs(self) -> None:
        if self._tracking is not None:
            self._tracking.destroy()
            self._tracking = None
        if self._inputs is not None:
            self._inputs.destroy()
            self._inputs = None
        for sub in (self._mapping_pose_sub, self._depth_sub):
            if sub is not None:
                self.destroy_subscription(sub)
        self._mapping_pose_sub = self._depth_sub = None

    def _make_pipeline(self, map_path: str, estimator: str, scene_map=None) -> Pipeline:
        """A complete Pipeline for the map file (raises MapFileError / ValueError /
        EncoderError). A map of keyframes only (no head yet, e.g. while a build trains it) gets
        ``points`` instead of an estimator that needs the head; ``Pipeline.name`` says which
        runs."""
        scene_map = scene_map or load_map(Path(map_path).expanduser(), self.device)
        return Pipeline(scene_map, PipelineConfig(estimator, device=str(self.device),
                                                  encoder=self.encoder_path, head_fallback=True))

    # ---- parameters ---------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        try:
            return self._apply_parameters({p.name: p.value for p in params})
        except Exception as exc:  # noqa: BLE001 - refuse the change, keep the node
            self._log("params", f"parameter change failed: {type(exc).__name__}: {exc}", level="error")
            return SetParametersResult(successful=False, reason=f"{type(exc).__name__}: {exc}")

    def _apply_parameters(self, new: dict) -> SetParametersResult:
        """Validate every change; a new map or estimator is built completely before it is
        swapped in, so the worker never sees a half-loaded map. Accepted: ``settings`` follow.
        ``map_path`` is refused while mapping (the build's maps are swapped in when ready), and
        taken without loading when the node sets it to the map it has just swapped in."""
        for name, value in new.items():
            problem = value_problem(name, value)
            if problem:
                return SetParametersResult(successful=False, reason=problem)
        loaded = "map_path" in new and new["map_path"] == self._param_sync
        if "map_path" in new and not loaded:
            busy = self._mapping.busy()
            if busy:
                self._log("map", f"refused map_path change: {busy}", level="warning")
                return SetParametersResult(successful=False, reason=busy)
        with self._map_lock:
            pipeline = self._pipeline
            map_path = self._map_path if loaded else new.get("map_path", self._map_path)
            estimator = new.get("estimator", self.settings.estimator)
            if self.encoder is None:  # unconfigured: configure loads the map
                pass
            elif ("map_path" in new and not loaded) or "estimator" in new:
                if not map_path:
                    pipeline = None
                else:
                    try:
                        reuse = (pipeline.scene_map if pipeline and ("map_path" not in new or loaded)
                                 else None)
                        pipeline = self._make_pipeline(map_path, estimator, reuse)
                    except (MapFileError, ValueError, EncoderError) as exc:
                        self._log("map", f"refused map_path change: {exc}", level="error")
                        return SetParametersResult(successful=False, reason=str(exc))
            if "base_from_camera" in new:
                v = new["base_from_camera"]
                self._mount.set_parameter(pose_from_quat(v[:3], v[3:]))
            if pipeline is not self._pipeline:
                self._pipeline, self._map_path, self._map_error = pipeline, map_path, ""
                self.get_logger().info(f"map swapped in: {map_path or '(none)'} (estimator "
                                       f"{pipeline.name if pipeline else estimator}"
                                       f"{_confidence_note(pipeline)})")
            self.settings = self.settings.updated(new)
        return SetParametersResult(successful=True)

    # ---- maps a build wrote (loader thread) ------------------------------------------------
    def _on_map_ready(self, path: str, kind: str) -> None:
        """The mapping session's hand-over (executor): load ``path`` on the loader thread."""
        if self._loader is None:
            self._loader = threading.Thread(target=self._load_maps, name="map-loader", daemon=True)
            self._loader.start()
        self._loads.put((path, kind))

    def _load_maps(self) -> None:
        """Loader thread: one map at a time, in the order the build wrote them; the pipeline is
        built here, off the executor, and swapped in with one assignment; ``_poll_build`` then
        updates ``map_path`` and tells the mapping session."""
        while (item := self._loads.get()) is not None:
            path, kind = item
            error = ""
            try:
                estimator = self.settings.estimator
                pipeline = self._make_pipeline(path, estimator)
                with self._map_lock:
                    if self.encoder is None:
                        raise RuntimeError("the node was cleaned up meanwhile")
                    if self.settings.estimator != estimator:    # changed while loading
                        pipeline = self._make_pipeline(path, self.settings.estimator, pipeline.scene_map)
                    self._pipeline, self._map_path, self._map_error = pipeline, path, ""
                self.get_logger().info(f"map swapped in: {path} (estimator {pipeline.name}"
                                       f"{_confidence_note(pipeline)}; built by ~/stop_mapping, {kind})")
            except Exception as exc:  # noqa: BLE001 - a bad file or a bug: refused, said, node alive
                error = str(exc) if isinstance(exc, (MapFileError, ValueError, EncoderError)) \
                    else f"{type(exc).__name__}: {exc}"
                self._log("map", f"refused the built map {path}: {error}", level="error")
            self._loaded.append((path, kind, error))

    @guarded
    def _poll_build(self) -> None:
        """Timer (executor): follow the build; for each map the loader swapped in, set
        ``map_path`` to it (not loaded again) and tell the mapping session."""
        self._mapping.poll()
        while self._loaded:
            path, kind, error = self._loaded.popleft()
            if not error and path == self._map_path:
                self._param_sync = path
                try:
                    result = self.set_parameters([Parameter("map_path", Parameter.Type.STRING, path)])[0]
                    if not result.successful:
                        error = f"map_path not updated: {result.reason}"
                except Exception as exc:  # noqa: BLE001 - the session must hear back regardless
                    error = f"map_path not updated: {type(exc).__name__}: {exc}"
                finally:
                    self._param_sync = None
            self._mapping.map_swapped(path, kind, error)

    # ---- inputs -------------------------------------------------------------------------
    @guarded
    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            camera = camera_from_info(msg, rectified=self.settings.rectified_images)
        except CameraError as exc:
            camera = InputError(str(exc))
        if (not isinstance(camera, InputError) and camera.distortion is not None
                and not self._warned_distortion):
            self._warned_distortion = True
            self.get_logger().info(
                f"CameraInfo has {camera.distortion.model} distortion: images (and mapping "
                f"keyframes) are undistorted to the pinhole image of K before use")
        with self._lock:
            self.counts["camera_info_received"] += 1
        self._infos.add(seconds(msg.header.stamp), camera, key=msg.header.frame_id)
        if not isinstance(camera, InputError):
            self._valid_infos[msg.header.frame_id] = camera
        self._mapping.on_camera_info()

    def _camera_for(self, header: Header, wait_s: float = 0.0) -> tuple[object, bool]:
        """(camera, paired): the CameraInfo of the image's stamp (waiting up to ``wait_s`` for
        it; paired True), else the latest usable one of the same frame id (DDS may deliver a
        CameraInfo after its image), else the latest unusable one; camera is a ``Camera`` or
        an InputError saying why not."""
        stamp, deadline = seconds(header.stamp), time.monotonic() + wait_s
        camera = self._infos.nearest(stamp, STAMP_MATCH_S)
        while camera is None and time.monotonic() < deadline:
            time.sleep(CAMERA_INFO_POLL_S)
            camera = self._infos.nearest(stamp, STAMP_MATCH_S)
        if camera is not None:
            return camera, True
        camera = self._valid_infos.get(header.frame_id) or self._infos.latest(header.frame_id)
        if camera is None:
            camera = InputError(f"no CameraInfo received on {self._inputs.camera_info.topic_name} for "
                                f"frame '{header.frame_id}'")
        return camera, False

    @guarded
    def _on_image(self, msg) -> None:
        now = time.monotonic()
        self._rate.tick(now)
        stamp = seconds(msg.header.stamp)
        s = self.settings
        said = self._mount.resolve(s.base_frame, s.camera_frame or msg.header.frame_id)
        if said:
            self._log("mount", said[1], level=said[0], throttle=False)
        self._mapping.on_image(msg)
        decision = self._requests.admit(now, continuous=s.enable_continuous_localization,
                                        max_rate_hz=s.max_localization_rate)
        with self._lock:
            self.counts["received"] += 1
            self.counts["publisher_gaps"] += self._gaps.add(stamp, msg.header.frame_id)
            if decision in SKIPS:
                self.counts["skipped"] += 1
                self.counts[f"skipped_{decision}"] += 1
            elif self._slot.put((msg, now, decision == TRIGGERED)):
                self.counts["dropped_stale"] += 1

    def _decode(self, msg, *, wait_s: float = 0.0) -> tuple[np.ndarray, Camera, bool]:
        """(image, its Camera, paired with the CameraInfo of its stamp) of a frame, or
        InputError."""
        camera, paired = self._camera_for(msg.header, wait_s)
        if isinstance(camera, InputError):
            raise camera
        image = image_from_compressed(msg) if isinstance(msg, CompressedImage) else image_from_msg(msg)
        try:
            camera.check_image(image)
        except CameraError as exc:
            raise InputError(str(exc)) from None
        return image, camera, paired

    # ---- localization (worker thread) ----------------------------------------------------
    def _work(self) -> None:
        """The worker: one frame at a time; nothing a frame does can end this loop."""
        while self._running:
            item = self._slot.take(timeout=WORKER_TAKE_TIMEOUT_S)
            if item is None:
                continue
            try:
                self._localize(*item)
            except Exception as exc:  # noqa: BLE001 - a bug in bookkeeping: say so, go on
                self._fail("worker", exc)

    def _localize(self, msg, received: float, triggered: bool) -> None:
        """Decode, localize, publish, TF: each step guarded; a failure rejects this frame
        (counted, on ~/status, /diagnostics ERROR, throttled log) and the next one is taken.
        ``triggered``: asked for by ~/trigger_localization (never skipped as standing still)."""
        pipeline = self._pipeline  # one map for the whole frame, even if swapped meanwhile
        tracking = self._tracking
        mount = self._mount.current()  # as looked up for the newest image (_on_image)
        if mount is None:
            return self._reject(self._mount.status()["error"] or "the camera mount is unknown",
                                kind="mount")
        odom = tracking.odom_at(seconds(msg.header.stamp))
        if not triggered and tracking.skip(odom):
            return self._reject("standing still (update_min_d / update_min_a)", kind="still",
                                level="debug")
        try:
            image, camera, paired = self._decode(msg, wait_s=CAMERA_INFO_WAIT_S)
        except InputError as exc:
            return self._reject(str(exc), kind="input")
        except Exception as exc:  # noqa: BLE001
            return self._fail("decode", exc)
        with self._lock:
            self.counts["paired" if paired else "info_fallback"] += 1
        if pipeline is None:
            return self._reject("no map loaded: set map_path or build one with ~/start_mapping"
                                + (f" (last map error: {self._map_error})" if self._map_error else ""),
                                kind="no_map")
        try:
            est = pipeline.localize(image, camera)
        except Exception as exc:  # noqa: BLE001
            return self._fail("localize", exc)
        if est is None:
            return self._reject("no pose: too few usable scene coordinates", kind="no_pose")
        min_confidence = self.settings.min_confidence
        if est.confidence < min_confidence:
            return self._reject(f"confidence {est.confidence:.3f} below min_confidence "
                                f"{min_confidence}", kind="confidence", level="debug")
        accepted, note = tracking.check(est.map_from_cam, odom, seconds(msg.header.stamp))
        if not accepted:
            return self._reject(note, kind="gated")
        if note:
            self._log("tracking", note, level="info")
        try:
            level = self._map_from_level(pipeline, mount) if self.settings.two_d_mode else None
            base = self._publish(msg.header, est, mount, level, tracking, jump=bool(note))
        except Exception as exc:  # noqa: BLE001
            return self._fail("publish", exc)
        if self._tf_broadcaster is not None and self.settings.publish_tf:
            try:
                self._update_tf(msg.header, est.map_from_cam, base, odom, level)
            except Exception as exc:  # noqa: BLE001 - the pose is out; TF is counted apart
                self._count_error("tf", exc)
        done = time.monotonic()
        with self._lock:
            self.counts["localized"] += 1
            latency = 1e3 * (done - received)
            self._latencies.append(latency)
            self._last.update(localized=True, failing=False, latency_ms=latency,
                              inlier_ratio=est.inlier_ratio, confidence=est.confidence,
                              timings_ms=est.timings_ms,
                              stamp_latency_ms=1e3 * (self.get_clock().now().nanoseconds * 1e-9
                                                      - seconds(msg.header.stamp)))

    def _reject(self, reason: str, *, kind: str, level: str = "warning", failing: bool = False) -> None:
        with self._lock:
            self.counts["rejected"] += 1
            self.counts[f"rejected_{kind}"] += 1
            self._last.update(localized=False, rejection=reason, failing=failing)
        if kind in LOCALIZATION_FAILURES:
            self._requests.failed(time.monotonic())
        self._log(kind, f"frame not localized: {reason}", level=level)

    def _count_error(self, stage: str, exc: Exception) -> str:
        reason = f"{stage} failed: {type(exc).__name__}: {exc}"
        with self._lock:
            self.counts["errors"] += 1
            self.counts[f"errors_{stage}"] += 1
            self._last["error"] = reason
        self._log(stage, reason, level="error")
        return reason

    def _fail(self, stage: str, exc: Exception) -> None:
        """An unexpected exception in a step of a frame: counted as an error and the frame as
        rejected; /diagnostics is ERROR until a frame goes through again."""
        reason = self._count_error(stage, exc)
        with self._lock:
            self.counts["rejected"] += 1
            self.counts[f"rejected_error_{stage}"] += 1
            self._last.update(localized=False, rejection=reason, failing=True)

    def _publish(self, header: Header, est, mount: np.ndarray, level: np.ndarray | None,
                 tracking: TrackingInputs, *, jump: bool) -> np.ndarray:
        """~/pose, ~/pose_with_covariance (the camera), ~/base_pose (through the mount
        ``mount`` = base_from_camera, covariance with the lever arm; planar with ``level`` =
        map_from_level in two_d_mode), and /initialpose when this pose is a fresh
        relocalization (``jump``: a jump the tracker confirmed). Returns map_from_base (4x4)."""
        s = self.settings
        out = Header(stamp=header.stamp, frame_id=s.map_frame)
        self._pose_pub.publish(PoseStamped(header=out, pose=pose_to_msg(est.map_from_cam)))
        cov = (s.covariance_scale * est.covariance if np.all(np.isfinite(est.covariance))
               else np.diag([UNKNOWN_VARIANCE] * 6))
        self._pose_cov_pub.publish(pose_with_covariance_msg(out, est.map_from_cam, cov))
        base = map_from_base(est.map_from_cam, mount)
        base_cov = base_covariance(cov, est.map_from_cam, mount)
        if level is not None:
            base, base_cov = planar_pose(base, level, base_axes(mount)), planar_covariance(base_cov, level)
        base_msg = pose_with_covariance_msg(out, base, base_cov)
        self._base_pose_pub.publish(base_msg)
        if self._requests.published(time.monotonic(), jump=jump) and s.publish_initialpose:
            tracking.seed(base_msg)
            with self._lock:
                self.counts["initialpose_published"] += 1
        return base

    def _map_from_level(self, pipeline: Pipeline, mount: np.ndarray) -> np.ndarray:
        """two_d_mode: the map's level frame (4x4 rotation, runtime.planar) from ``map_up`` and
        the map's keyframes; where the up axis comes from is logged when it changes."""
        fm = pipeline.scene_map.feature_map
        up, note, fallback = map_up(self.settings.map_up, None if fm is None else fm.map_from_cam_K44,
                                    mount)
        current = ([round(float(v), 4) for v in up], note)
        if current != self._map_up:
            self._map_up = current
            self._log("map_up", f"two_d_mode: up axis {current[0]} ({note})",
                      level="warning" if fallback else "info", throttle=False)
        return level_frame(up)

    def _update_tf(self, header: Header, map_from_cam: np.ndarray, base: np.ndarray,
                   odom: np.ndarray | None, level: np.ndarray | None) -> None:
        """The new correction (REP-105), republished by the timer: map -> odom from the pose
        and odometry's odom -> camera at the image's stamp (``odom``, from odom_topic, else
        looked up in TF with a timeout), or, without odom_frame, map -> base_frame (``base``,
        map_from_base as published). With ``level`` (two_d_mode) map -> odom is planar too."""
        s = self.settings
        camera_frame = s.camera_frame or header.frame_id
        if not s.odom_frame:
            return self._tf_out.update(s.map_frame, s.base_frame, base)
        if odom is None:
            try:
                if self._tf_buffer is None:
                    raise LookupError("no odometry on odom_topic, and no tf2_ros to look it up")
                odom = pose_from_transform(self._tf_buffer.lookup_transform(
                    s.odom_frame, camera_frame, Time.from_msg(header.stamp),
                    timeout=Duration(seconds=s.tf_lookup_timeout)).transform)
            except Exception as exc:  # noqa: BLE001 - tf2 raises several lookup/extrapolation errors
                with self._lock:
                    self.counts["tf_lookup_failed"] += 1
                return self._log("tf", f"no {s.odom_frame} -> {camera_frame} transform at the "
                                 f"image stamp ({exc}); the previous {s.map_frame} -> "
                                 f"{s.odom_frame} stays")
        correction = map_from_odom(map_from_cam, odom)
        self._tf_out.update(s.map_frame, s.odom_frame,
                            correction if level is None else planar_pose(correction, level))

    @guarded
    def _republish_tf(self) -> None:
        if self.settings.publish_tf:
            self._tf_out.tick(self.settings.transform_tolerance)

    # ---- status -------------------------------------------------------------------------
    def status(self) -> dict:
        """Everything ~/status and /diagnostics report (JSON-serialisable)."""
        with self._lock:
            last = dict(self._last)
            counts = dict(self.counts)
            mean = float(np.mean(self._latencies)) if self._latencies else None
        mapping = self._mapping.status()
        pipeline = self._pipeline
        return {
            "localized": last["localized"], "map_loaded": pipeline is not None,
            "map_path": self._map_path, "map_error": self._map_error,
            "estimator": self.settings.estimator,
            "estimator_active": pipeline.name if pipeline else None,
            "confidence_calibrated": pipeline.calibrated if pipeline else None,
            "input_rate_hz": round(self._rate.rate(), 2),
            "latency_ms": last["latency_ms"], "latency_ms_mean": mean,
            "stamp_latency_ms": last["stamp_latency_ms"], "inlier_ratio": last["inlier_ratio"],
            "confidence": last["confidence"], "timings_ms": last.get("timings_ms", {}),
            "lifecycle": self._lifecycle, "bond": self._bond.state,
            "last_rejection": last["rejection"], "failing": last["failing"],
            "last_error": last["error"], "frames": counts, "mapping": mapping,
            "publishers": self._matched_publishers(),
            "qos_reliability": self.settings.qos_reliability,
            "inputs": self._inputs.describe() if self._inputs else {},
            "tracking": dict(self._tracking.status) if self._tracking else {},
            "localization": self._localization_status(),
            "mount": self._mount.status(),
        }

    def _localization_status(self) -> dict:
        """~/status ``localization``: nav2's side (continuous, rate cap, trigger, fresh poses,
        the last service answer, two_d_mode's up axis)."""
        s = self.settings
        out = {"continuous": s.enable_continuous_localization,
               "max_rate_hz": s.max_localization_rate, **self._requests.status(),
               "last_request": self._nav2.last_request, "two_d_mode": s.two_d_mode}
        if s.two_d_mode and self._map_up is not None:
            out["map_up"], out["map_up_source"] = self._map_up
        return out

    def _matched_publishers(self) -> dict[str, int]:
        """Publishers each input's reader has matched (none while inactive)."""
        subs = {"mapping_pose": self._mapping_pose_sub, "mapping_depth": self._depth_sub}
        if self._tracking is not None:
            subs.update(self._tracking.subscriptions)
        if self._inputs is not None:
            subs.update(image=self._inputs.image, camera_info=self._inputs.camera_info)
        return {name: sub.get_publisher_count() for name, sub in subs.items() if sub is not None}

    @guarded
    def _publish_status(self) -> None:
        s = self.status()
        self._status_pub.publish(String(data=json.dumps(s)))
        diag = diagnostic_status(s, name=f"{self.get_name()}: relocalization",
                                 hardware_id=self.get_fully_qualified_name())
        array = DiagnosticArray(status=[diag])
        array.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    def shutdown(self) -> None:
        self._stop_worker()
        self._mapping.terminate()
        if self._loader is not None:
            self._loads.put(None)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``relocalization_node`` and ``marepo-ros node`` (ROS arguments pass
    through: --ros-args -r image:=/cam/image_raw -p map_path:=... --params-file FILE)."""
    env, transport, warn = transport_env()
    os.environ.update(env)  # before rclpy creates the DDS participant
    rclpy.init(args=args)
    logger = rclpy.logging.get_logger(NODE_NAME)
    (logger.warning if warn else logger.info)(transport)
    node = executor = None
    try:
        node = RelocalizationNode()
        if node.start_error:
            raise RuntimeError(node.start_error)
        executor = MultiThreadedExecutor(num_threads=EXECUTOR_THREADS)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ParameterError as exc:
        logger.fatal(f"cannot start: bad parameter: {exc}")
        return 2
    except (EncoderError, RuntimeError) as exc:
        logger.fatal(f"cannot start: {exc}")
        return 1
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.shutdown()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
