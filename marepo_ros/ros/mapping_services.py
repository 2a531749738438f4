"""The node's mapping services: ~/start_mapping, ~/stop_mapping, ~/cancel_mapping.

Between start and stop, images become keyframes (``mapping.keyframes.KeyframeCollector``) with
poses from ``mapping_pose_topic`` (PoseStamped or Odometry) or TF, and aligned depth from
``mapping_depth_topic``; stop builds the map in a child process (``mapping.background``), loads
the keyframe map as soon as it exists and the full map when done (through the ``map_path``
parameter, validated like any change). A mixin of ``ros.node.RelocalizationNode``: it uses the
node's settings, image decoding, logging, TF buffer and parameters.
"""
from __future__ import annotations

import time
from enum import Enum
from pathlib import Path

import numpy as np
from rclpy.parameter import Parameter
from rclpy.time import Time
from std_msgs.msg import Header

from ..io.bag import pose_from_transform
from ..mapping.background import BackgroundMapBuild, BuildState
from ..mapping.build import preset
from ..mapping.keyframes import KeyframeCollector
from .conversions import InputError, depth_from_msg, pose_from_msg, seconds
from .kind_log import guarded

CAMERA_INFO_WAIT_S = 0.05  # the worker waits this long for the CameraInfo of an image's stamp
# A mapping keyframe waits this long for the CameraInfo of its stamp (DDS delivers the two topics
# independently: the first image can come before any CameraInfo), then takes the latest one.
KEYFRAME_INFO_WAIT_S = 1.0
DEPTH_STAMP_TOLERANCE_S = 0.005  # aligned depth carries its colour image's stamp


class MappingState(str, Enum):
    """What the node's mapping does (``~/status`` shows the value)."""
    IDLE = "idle"
    COLLECTING = "collecting"  # keyframes, between ~/start_mapping and ~/stop_mapping
    BUILDING = "building"      # a map, in a child process


class MappingServices:
    """The mapping half of the node (see the module doc). State, set up by the node:
    ``_mapping_lock`` (RLock), ``_mapping_state``, ``_collector``, ``_build``,
    ``_mapping_message``, ``_mapping_error``, ``_depths`` (StampedBuffer of depth messages),
    ``_base_from_camera`` (4x4); ``_awaiting_info``: keyframe images waiting for their
    CameraInfo, (message, map_from_cam, monotonic deadline)."""

    @guarded
    def _on_mapping_pose(self, header: Header, pose) -> None:
        with self._mapping_lock:
            if self._mapping_state != MappingState.COLLECTING:
                return
            try:
                map_from_cam = pose_from_msg(pose) @ self._base_from_camera
            except InputError as exc:
                self._collector.counts["refused_poses"] += 1
                reason = str(exc)
            else:
                reason = self._collector.add_pose(seconds(header.stamp), map_from_cam)
            if reason:
                self._mapping_error = f"mapping pose refused: {reason}"
                self._log("mapping_pose", self._mapping_error)
                return
            self._collect_keyframes()

    def _pose_from_tf(self, header: Header) -> None:
        s = self.settings
        camera_frame = s.camera_frame or header.frame_id
        try:
            tr = self._tf_buffer.lookup_transform(s.map_frame, camera_frame,
                                                  Time.from_msg(header.stamp))
        except Exception as exc:
            return self._log("mapping_tf", f"no {s.map_frame} -> {camera_frame} transform "
                             f"for a mapping image ({exc})")
        self._collector.add_pose(seconds(header.stamp), pose_from_transform(tr.transform))

    def _collect_keyframes(self) -> None:
        """Queue the images that became keyframes and decode those that can be (called with the
        mapping lock held)."""
        now = time.monotonic()
        self._awaiting_info.extend((msg, pose, now + KEYFRAME_INFO_WAIT_S)
                                   for msg, pose in self._collector.ready())
        self._decode_keyframes(now)

    def _decode_keyframes(self, now: float) -> None:
        """Decode the queued keyframe images whose CameraInfo of the same stamp is here, or
        whose wait is over at ``now`` (then the latest usable CameraInfo, as localizing does),
        and keep them. Called (mapping lock held) from the image, pose and CameraInfo callbacks
        and the 4 Hz build poll: the callbacks share one executor thread, so an image cannot
        wait for its CameraInfo inside one of them."""
        waiting = []
        for msg, map_from_cam, deadline in self._awaiting_info:
            if now < deadline and not self._camera_for(msg.header)[1]:
                waiting.append((msg, map_from_cam, deadline))
                continue
            try:
                image, camera, _ = self._decode(msg)
            except InputError as exc:
                self._collector.counts["bad_images"] += 1
                self._mapping_error = f"mapping image refused: {exc}"
                self._log("mapping_image", self._mapping_error)
                continue
            self._collector.keep(image, camera.K, map_from_cam,
                                 self._depth_for(msg.header, image.shape[:2]))
        self._awaiting_info = waiting

    def _depth_for(self, header: Header, shape_hw: tuple[int, int]) -> np.ndarray | None:
        """The aligned depth of a mapping image (same stamp and size), or None (counted)."""
        if not self.settings.mapping_depth_topic:
            return None
        msg = self._depths.nearest(seconds(header.stamp), DEPTH_STAMP_TOLERANCE_S)
        try:
            if msg is None:
                raise InputError(f"no depth of its stamp on {self.settings.mapping_depth_topic}")
            depth = depth_from_msg(msg)
            if depth.shape != tuple(shape_hw):
                raise InputError(f"depth is {depth.shape[1]}x{depth.shape[0]} but its image is "
                                 f"{shape_hw[1]}x{shape_hw[0]} (not aligned to the image?)")
        except InputError as exc:
            self._collector.counts["without_depth"] += 1
            self._log("mapping_depth", f"keyframe kept without depth: {exc}")
            return None
        return depth

    @guarded
    def _start_mapping(self, request, response):
        s = self.settings
        with self._mapping_lock:
            ok, msg = False, ""
            if self._mapping_state == MappingState.BUILDING:
                msg = (f"a map is being built ({100 * self._build.status.progress:.0f} %): wait for "
                       f"it or call ~/cancel_mapping")
            elif self._mapping_state == MappingState.COLLECTING:
                msg = (f"already collecting ({len(self._collector.keyframes)} keyframes): call "
                       f"~/stop_mapping to build the map or ~/cancel_mapping to discard")
            elif self._lifecycle != "active":
                msg = f"the node is {self._lifecycle}: activate it first (lifecycle)"
            elif s.mapping_pose_type == "tf" and self._tf_buffer is None:
                msg = "mapping_pose_type is 'tf' but tf2_ros is not installed"
            else:
                self._collector = KeyframeCollector(
                    min_translation_m=s.keyframe_min_translation,
                    min_rotation_deg=s.keyframe_min_rotation,
                    max_keyframes=s.max_keyframes,
                    pose_tolerance_s=s.mapping_pose_tolerance,
                    store_short_side=round(1.5 * preset(s.mapping_preset).short_side))
                self._mapping_state, self._mapping_error = MappingState.COLLECTING, ""
                self._awaiting_info = []
                source = ("TF" if s.mapping_pose_type == "tf"
                          else self.resolve_topic_name(s.mapping_pose_topic))
                ok, msg = True, f"collecting keyframes from {self._image_topic} with poses from {source}"
            self._mapping_message = msg if ok else self._mapping_message
        return self._answer(response, ok, msg)

    @guarded
    def _stop_mapping(self, request, response):
        s = self.settings
        with self._mapping_lock:
            if self._mapping_state == MappingState.BUILDING:
                return self._answer(response, False, "already building a map: wait for it or "
                                    "call ~/cancel_mapping")
            if self._mapping_state != MappingState.COLLECTING:
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
            out = Path(s.map_dir).expanduser() / time.strftime("map-%Y%m%d-%H%M%S.map")
            try:
                self._build = BackgroundMapBuild(
                    collector.keyframes, out, config, encoder_path=self.encoder_path,
                    device=s.device, threads=s.mapping_threads).start()
            except (OSError, ValueError) as exc:
                return self._answer(response, False, f"cannot start mapping: {exc}")
            self._collector, self._mapping_state = None, MappingState.BUILDING
            self._mapping_message = f"building a map from {n} keyframes -> {out}"
        return self._answer(response, True, f"building a map from {n} keyframes in the "
                            f"background; it will be written to {out} and loaded when done")

    @guarded
    def _cancel_mapping(self, request, response):
        with self._mapping_lock:
            if self._mapping_state == MappingState.COLLECTING:
                n = len(self._collector.keyframes)
                self._collector, self._mapping_state = None, MappingState.IDLE
                self._mapping_message = f"mapping cancelled, {n} keyframes discarded"
                return self._answer(response, True, self._mapping_message)
            if self._mapping_state == MappingState.BUILDING:
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

    @guarded
    def _poll_build(self) -> None:
        with self._mapping_lock:
            if self._mapping_state == MappingState.COLLECTING:
                self._decode_keyframes(time.monotonic())
            if self._mapping_state != MappingState.BUILDING:
                return
            status = self._build.poll()
            self._mapping_message = status.message
            quick = status.keyframes_map_path
            if status.state == BuildState.RUNNING:
                if quick is None or quick == self._map_path:
                    return
            else:
                self._mapping_state = MappingState.IDLE
        if status.state == BuildState.RUNNING:    # the keyframe map, while the head trains
            result = self.set_parameters([Parameter("map_path", Parameter.Type.STRING, quick)])[0]
            if not result.successful:
                self._mapping_error = f"keyframe map refused: {result.reason}"
                self._build.status.keyframes_map_path = None
            self._log("mapping", self._mapping_error or f"{status.message}; localizing in the "
                      f"keyframe map with 'points' meanwhile", throttle=False,
                      level="info" if result.successful else "warning")
            return
        if status.state == BuildState.DONE:
            result = self.set_parameters([Parameter("map_path", Parameter.Type.STRING,
                                                    status.map_path)])[0]
            if result.successful:
                self._mapping_message = f"{status.message}; now localizing in it"
                if quick:
                    Path(quick).unlink(missing_ok=True)
            else:
                self._mapping_error = f"new map refused: {result.reason}"
        else:
            self._mapping_error = status.message
        self._log("mapping", self._mapping_error or self._mapping_message, throttle=False,
                  level="info" if status.state == BuildState.DONE else "warning")
