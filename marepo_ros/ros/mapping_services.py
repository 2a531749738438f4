"""The node's mapping: ~/start_mapping, ~/stop_mapping, ~/cancel_mapping, as a component.

Between start and stop, images become keyframes (``mapping.keyframes.KeyframeCollector``) with
poses from ``mapping_pose_topic`` (PoseStamped or Odometry) or TF, and aligned depth from
``mapping_depth_topic``; stop builds the map in a child process (``mapping.background``). The
keyframe map, as soon as it exists, and the full map, when done, are handed to the node
(``on_map_ready``), which loads them off the executor and swaps them in. ``MappingSession``
holds all of this state; the node owns one and delegates to it.
"""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Callable

import numpy as np
from std_msgs.msg import Header

from ..io.images import DEPTH_MAX_DT_S
from ..mapping.background import BackgroundMapBuild, BuildState, map_output_path
from ..mapping.build import preset
from ..mapping.feature_map import with_pose_refinement
from ..mapping.keyframes import KeyframeCollector
from ..runtime.streams import StampedBuffer
from .conversions import InputError, depth_from_msg, pose_from_msg, seconds
from .kind_log import KindLog, guarded
from .params import NodeSettings

# A mapping keyframe waits this long for the CameraInfo of its stamp (DDS delivers the two topics
# independently: the first image can come before any CameraInfo), then takes the latest one.
KEYFRAME_INFO_WAIT_S = 1.0
DEPTH_BUFFER = 30  # depth images kept while mapping, to pair with keyframes by stamp
# Why a map_path change is refused while mapping: the build's maps are swapped in when ready.
BUILD_RUNNING = "a map build is running: call ~/cancel_mapping first, or wait for it"


class MappingState(str, Enum):
    """What the node's mapping does (``~/status`` shows the value)."""
    IDLE = "idle"
    COLLECTING = "collecting"  # keyframes, between ~/start_mapping and ~/stop_mapping
    BUILDING = "building"      # a map, in a child process, until the full map is swapped in


class MappingSession:
    """Keyframe collection and the background map build of one node (see the module doc).

    It talks to the node only through what its constructor takes (keyword-only):

    - ``settings()``: the node's current ``NodeSettings`` (mapping parameters, frames, topics);
    - ``base_from_camera()``: the current 4x4 base_from_camera (mapping poses are of the base),
      None while it is unknown (mount_source tf before TF has it: poses are refused);
    - ``decode(msg)``: (image, Camera, paired) of an Image/CompressedImage, or raises InputError;
    - ``camera_paired(header)``: whether the CameraInfo of the header's stamp has arrived;
    - ``lookup_tf(target, source, stamp)``: target_from_source (4x4) at a ``builtin_interfaces``
      stamp, raising when unknown; None where TF cannot be looked up (no tf2_ros);
    - ``lifecycle()``: the node's lifecycle state ('active', 'inactive', ...);
    - ``sources()``: what keyframes come from, for the start message ("/image with poses from X");
    - ``log``: the node's ``KindLog``;
    - ``on_map_ready(path, kind)``: a map file the build wrote, ``kind`` 'keyframes' (the
      keyframe-only map, while the head trains) or 'full'. Called once per file, from ``poll``
      (the executor), outside the session's lock; the node loads it and reports back with
      ``map_swapped(path, kind, error)``. The state stays BUILDING until the full map is swapped
      in (or refused), so that nothing else sets ``map_path`` meanwhile (``busy``).

    The node calls: the services ``start``, ``stop``, ``cancel``; ``on_image``,
    ``on_camera_info``, ``on_pose``, ``on_depth`` from its subscriptions; ``poll`` from a timer;
    ``status()`` for ~/status; ``busy()`` before a ``map_path`` change; ``terminate()`` on
    cleanup and shutdown. Every method may be called from any thread (one lock).
    """

    def __init__(self, *, settings: Callable[[], NodeSettings], base_from_camera: Callable[[], np.ndarray],
                 decode: Callable, camera_paired: Callable[[Header], bool],
                 lookup_tf: Callable[[str, str, object], np.ndarray] | None,
                 lifecycle: Callable[[], str], sources: Callable[[], str], log: KindLog,
                 on_map_ready: Callable[[str, str], None]):
        self._settings, self._base_from_camera = settings, base_from_camera
        self._decode, self._camera_paired, self._lookup_tf = decode, camera_paired, lookup_tf
        self._lifecycle, self._sources, self._log, self._on_map_ready = lifecycle, sources, log, on_map_ready
        self._lock = threading.RLock()
        self.state = MappingState.IDLE
        self.message = ""
        self.error = ""
        self._collector: KeyframeCollector | None = None
        # keyframe images waiting for their CameraInfo: (message, map_from_cam, monotonic deadline)
        self._awaiting_info: list = []
        self._build: BackgroundMapBuild | None = None
        self._offered: set[str] = set()  # map files of the current build handed to on_map_ready
        self._depths = StampedBuffer(capacity=DEPTH_BUFFER)  # aligned depth images

    # ---- what the node asks -------------------------------------------------------------
    def busy(self) -> str:
        """Why ``map_path`` cannot be set now (keyframes are being collected or a map built),
        or ''."""
        with self._lock:
            return BUILD_RUNNING if self.state != MappingState.IDLE else ""

    def status(self) -> dict:
        """The ``mapping`` part of ~/status."""
        with self._lock:
            out = {"state": self.state.value, "message": self.message, "error": self.error,
                   "progress": 0.0, "keyframes": 0}
            if self._collector is not None:
                out.update(keyframes=len(self._collector.keyframes), counts=dict(self._collector.counts))
            if self._build is not None:
                out["progress"] = round(self._build.status.progress, 4)
                refinement = (self._build.status.stats or {}).get("feature_map", {}).get("refinement")
                if refinement is not None:
                    out["pose_refinement"] = refinement
        return out

    def terminate(self) -> None:
        """Stop a build now and forget the mapping (cleanup, shutdown)."""
        with self._lock:
            if self._build is not None:
                self._build.terminate()
            self.state, self._collector, self._build = MappingState.IDLE, None, None
            self._awaiting_info, self._offered = [], set()

    # ---- inputs -------------------------------------------------------------------------
    def on_image(self, msg) -> None:
        """An image (Image or CompressedImage): a keyframe candidate while collecting."""
        with self._lock:
            if self.state != MappingState.COLLECTING:
                return
            if self._settings().mapping_pose_type == "tf":
                self._pose_from_tf(msg.header)
            self._collector.add_image(seconds(msg.header.stamp), msg)
            self._collect_keyframes()

    def on_camera_info(self) -> None:
        """A CameraInfo arrived: keyframe images waiting for theirs may be decoded now."""
        if self._awaiting_info:      # no lock otherwise
            with self._lock:
                if self.state == MappingState.COLLECTING:
                    self._decode_keyframes(time.monotonic())

    def on_depth(self, msg) -> None:
        """An aligned depth image (kept by stamp for the keyframe of the same stamp)."""
        self._depths.add(seconds(msg.header.stamp), msg, key=msg.header.frame_id)

    @guarded
    def on_pose(self, header: Header, pose) -> None:
        """A mapping pose (geometry_msgs/Pose of the base in the map frame)."""
        with self._lock:
            if self.state != MappingState.COLLECTING:
                return
            mount = self._base_from_camera()
            try:
                if mount is None:
                    raise InputError("the camera mount is not known yet (mount_source tf; "
                                     "~/status mount)")
                map_from_cam = pose_from_msg(pose) @ mount
            except InputError as exc:
                self._collector.counts["refused_poses"] += 1
                reason = str(exc)
            else:
                reason = self._collector.add_pose(seconds(header.stamp), map_from_cam)
            if reason:
                self.error = f"mapping pose refused: {reason}"
                self._log("mapping_pose", self.error)
                return
            self._collect_keyframes()

    def _pose_from_tf(self, header: Header) -> None:
        s = self._settings()
        camera_frame = s.camera_frame or header.frame_id
        try:
            map_from_cam = self._lookup_tf(s.map_frame, camera_frame, header.stamp)
        except Exception as exc:  # noqa: BLE001 - tf2 raises several lookup/extrapolation errors
            return self._log("mapping_tf", f"no {s.map_frame} -> {camera_frame} transform "
                             f"for a mapping image ({exc})")
        self._collector.add_pose(seconds(header.stamp), map_from_cam)

    def _collect_keyframes(self) -> None:
        """Queue the images that became keyframes and decode those that can be (lock held)."""
        now = time.monotonic()
        self._awaiting_info.extend((msg, pose, now + KEYFRAME_INFO_WAIT_S)
                                   for msg, pose in self._collector.ready())
        self._decode_keyframes(now)

    def _decode_keyframes(self, now: float) -> None:
        """Decode the queued keyframe images whose CameraInfo of the same stamp is here, or
        whose wait is over at ``now`` (then the latest usable CameraInfo, as localizing does),
        and keep them. Called (lock held) from the image, pose and CameraInfo callbacks and the
        build poll: the node's callbacks share one callback group, so an image cannot wait for
        its CameraInfo inside one of them."""
        waiting = []
        for msg, map_from_cam, deadline in self._awaiting_info:
            if now < deadline and not self._camera_paired(msg.header):
                waiting.append((msg, map_from_cam, deadline))
                continue
            try:
                image, camera, _ = self._decode(msg)
            except InputError as exc:
                self._collector.counts["bad_images"] += 1
                self.error = f"mapping image refused: {exc}"
                self._log("mapping_image", self.error)
                continue
            self._collector.keep_camera_image(image, camera, map_from_cam,
                                              self._depth_for(msg.header, image.shape[:2]))
        self._awaiting_info = waiting

    def _depth_for(self, header: Header, shape_hw: tuple[int, int]) -> np.ndarray | None:
        """The aligned depth of a mapping image (same stamp and size), or None (counted)."""
        topic = self._settings().mapping_depth_topic
        if not topic:
            return None
        msg = self._depths.nearest(seconds(header.stamp), DEPTH_MAX_DT_S)
        try:
            if msg is None:
                raise InputError(f"no depth of its stamp on {topic}")
            depth = depth_from_msg(msg)
            if depth.shape != tuple(shape_hw):
                raise InputError(f"depth is {depth.shape[1]}x{depth.shape[0]} but its image is "
                                 f"{shape_hw[1]}x{shape_hw[0]} (not aligned to the image?)")
        except InputError as exc:
            self._collector.counts["without_depth"] += 1
            self._log("mapping_depth", f"keyframe kept without depth: {exc}")
            return None
        return depth

    # ---- services -----------------------------------------------------------------------
    @guarded
    def start(self, request, response):
        s = self._settings()
        with self._lock:
            ok, msg = False, ""
            if self.state == MappingState.BUILDING:
                msg = (f"a map is being built ({100 * self._build.status.progress:.0f} %): wait for "
                       f"it or call ~/cancel_mapping")
            elif self.state == MappingState.COLLECTING:
                msg = (f"already collecting ({len(self._collector.keyframes)} keyframes): call "
                       f"~/stop_mapping to build the map or ~/cancel_mapping to discard")
            elif self._lifecycle() != "active":
                msg = f"the node is {self._lifecycle()}: activate it first (lifecycle)"
            elif s.mapping_pose_type == "tf" and self._lookup_tf is None:
                msg = "mapping_pose_type is 'tf' but tf2_ros is not installed"
            else:
                self._collector = KeyframeCollector(
                    min_translation_m=s.keyframe_min_translation,
                    min_rotation_deg=s.keyframe_min_rotation,
                    max_keyframes=s.max_keyframes,
                    pose_tolerance_s=s.mapping_pose_tolerance,
                    store_short_side=round(1.5 * preset(s.mapping_preset).short_side))
                self.state, self.error = MappingState.COLLECTING, ""
                self._awaiting_info = []
                ok, msg = True, f"collecting keyframes from {self._sources()}"
            self.message = msg if ok else self.message
        return self._answer(response, ok, msg)

    @guarded
    def stop(self, request, response):
        s = self._settings()
        with self._lock:
            if self.state == MappingState.BUILDING:
                return self._answer(response, False, "already building a map: wait for it or "
                                    "call ~/cancel_mapping")
            if self.state != MappingState.COLLECTING:
                return self._answer(response, False, "not collecting keyframes: call "
                                    "~/start_mapping first")
            self._decode_keyframes(float("inf"))        # no more waiting for CameraInfo
            collector = self._collector
            n, need = len(collector.keyframes), s.min_keyframes
            if n < need:
                return self._answer(response, False, (
                    f"only {n} keyframes so far (min_keyframes {need}); keep moving the camera "
                    f"or call ~/cancel_mapping ({self._collection_summary()})"))
            epochs = s.mapping_epochs
            config = preset(s.mapping_preset, **({"epochs": epochs} if epochs > 0 else {}))
            if config.features is not None:
                config = replace(config, features=with_pose_refinement(config.features,
                                                                       s.mapping_refine_poses))
            out = map_output_path(s.map_dir, s.mapping_map_name)  # the name was checked when set
            if out.exists():
                return self._answer(response, False, (
                    f"a map already exists at {out} (never overwritten): set mapping_map_name to "
                    f"another name, or remove that file, and call ~/stop_mapping again; the {n} "
                    f"keyframes are kept"))
            try:
                self._build = BackgroundMapBuild(
                    collector.keyframes, out, config, encoder_path=s.encoder_path or None,
                    device=s.device, threads=s.mapping_threads).start()
            except (OSError, ValueError) as exc:
                return self._answer(response, False, f"cannot start mapping: {exc}")
            self._collector, self.state, self._offered = None, MappingState.BUILDING, set()
            self.message = f"building a map from {n} keyframes -> {out}"
        return self._answer(response, True, f"building a map from {n} keyframes in the "
                            f"background; it will be written to {out} and loaded when done")

    @guarded
    def cancel(self, request, response):
        with self._lock:
            if self.state == MappingState.COLLECTING:
                n = len(self._collector.keyframes)
                self._collector, self.state = None, MappingState.IDLE
                self.message = f"mapping cancelled, {n} keyframes discarded"
                return self._answer(response, True, self.message)
            if self.state == MappingState.BUILDING:
                if self._build.finished:
                    return self._answer(response, False, "the map is built and being loaded: "
                                        "nothing to cancel")
                self._build.cancel()
                return self._answer(response, True, "cancelling the map build")
        return self._answer(response, False, "nothing to cancel: not mapping")

    def _answer(self, response, ok: bool, message: str):
        response.success, response.message = ok, message
        self._log("services", message, level="info" if ok else "warning", throttle=False)
        return response

    def _collection_summary(self) -> str:
        c = self._collector.counts
        return (f"{c['keyframes']} keyframes, {c['still']} frames too close to the last keyframe, "
                f"{c['unposed']} without a pose, {c['refused_poses']} poses refused, "
                f"{c['over_cap']} over the cap")

    # ---- the build ----------------------------------------------------------------------
    @guarded
    def poll(self) -> None:
        """Timer: decode keyframes whose CameraInfo wait is over; follow the build, hand each
        map file it writes to ``on_map_ready`` once."""
        with self._lock:
            if self.state == MappingState.COLLECTING:
                self._decode_keyframes(time.monotonic())
            if self.state != MappingState.BUILDING:
                return
            status = self._build.poll()
            if status.state == BuildState.RUNNING:
                self.message = status.message
                path, kind = status.keyframes_map_path, "keyframes"
            elif status.state == BuildState.DONE:
                path, kind = status.map_path, "full"
            else:                                        # failed or cancelled: no map
                self.state, self.error = MappingState.IDLE, status.message
                self._log("mapping", self.error, throttle=False)
                return
            if path is None or path in self._offered:
                return
            self._offered.add(path)
            if kind == "full":
                self.message = f"{status.message}; loading it"
        self._on_map_ready(path, kind)

    def map_swapped(self, path: str, kind: str, error: str = "") -> None:
        """The node's answer to ``on_map_ready``: ``path`` is now the node's map, or was
        refused (``error``). The full map ends the build (state IDLE); once it is in, the
        keyframe map's file is removed."""
        with self._lock:
            if self._build is None or path not in self._offered:
                return                                   # a build forgotten since (cleanup)
            status = self._build.status
            if kind == "keyframes":
                if error:
                    self.error = f"keyframe map refused: {error}"
                self._log("mapping", self.error if error else f"{status.message}; localizing in "
                          f"the keyframe map meanwhile", throttle=False,
                          level="warning" if error else "info")
                return
            self.state = MappingState.IDLE
            if error:
                self.error = f"new map refused: {error}"
            else:
                self.message = f"{status.message}; now localizing in it"
                if status.keyframes_map_path:
                    Path(status.keyframes_map_path).unlink(missing_ok=True)
            self._log("mapping", self.error if error else self.message, throttle=False,
                      level="warning" if error else "info")
