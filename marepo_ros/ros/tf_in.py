"""TF lookups of static transforms where tf2_ros is missing (the PyPI wheels plus the tf2_msgs
that make setup builds): the camera mount from /tf_static.

``StaticTfListener`` subscribes to /tf_static as tf2_ros' static listener does (reliable,
transient local: a late subscriber still gets what was published before it) and keeps the
transforms in ``io.tf_tree.TransformTree``, which chains them (base_link -> camera_link ->
camera_optical_frame). /tf (moving frames) is not read: with tf2_ros the node uses its Buffer
instead."""
from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..io.bag import pose_from_transform
from ..io.tf_tree import TransformError, TransformTree

STATIC_TOPIC = "/tf_static"
# tf2_ros' StaticTransformListener QoS: the latched transforms of every static broadcaster.
STATIC_QOS = QoSProfile(depth=100, history=HistoryPolicy.KEEP_LAST,
                        reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


class StaticTfListener:
    """/tf_static on ``node`` into a TransformTree; ``lookup(target, source)`` ->
    target_from_source (4x4), TransformError when the tree cannot give it. A transform the tree
    refuses (a loop, a second parent, a non-finite pose) is reported with ``log(text)`` and
    left out. Thread-safe (the subscription on the executor, lookups from anywhere)."""

    def __init__(self, node, log: Callable[[str], None]):
        from tf2_msgs.msg import TFMessage
        self._node, self._log = node, log
        self._tree = TransformTree()
        self._lock = threading.Lock()
        self._sub = node.create_subscription(TFMessage, STATIC_TOPIC, self._on_static, STATIC_QOS)

    def _on_static(self, msg) -> None:
        for ts in msg.transforms:
            try:
                with self._lock:
                    self._tree.add(ts.header.frame_id, ts.child_frame_id,
                                   pose_from_transform(ts.transform), None)
            except (TransformError, ValueError) as exc:
                self._log(f"static transform refused: {exc}")

    def lookup(self, target: str, source: str) -> np.ndarray:
        with self._lock:
            return self._tree.lookup(target, source, 0)

    def destroy(self) -> None:
        self._node.destroy_subscription(self._sub)
