"""The node's image and camera_info subscriptions, with the reliability of ``qos_reliability``.

rclpy's own BEST_AVAILABLE is resolved once, when the subscription is created: created before
the camera driver starts, it becomes reliable and never matches a best-effort (sensor-data
QoS) publisher that comes later. Here ``best_available`` is re-resolved while the node runs:
reliable while every publisher of the topic is reliable (or there is none yet), best effort as
soon as one is not; the subscription is re-created when that changes."""
from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

FIXED = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}


class InputSubscriptions:
    """``image`` (Image on ``image``, or CompressedImage on ``image/compressed``) and
    ``camera_info`` of ``node``; ``resolve()`` (called on a timer) applies best_available."""

    def __init__(self, node, *, compressed: bool, reliability: str, depth: int,
                 on_image, on_camera_info, period_s: float = 0.5):
        self._node, self._mode, self._depth = node, reliability, depth
        self._specs = {"image": (CompressedImage if compressed else Image,
                                 "image/compressed" if compressed else "image", on_image),
                       "camera_info": (CameraInfo, "camera_info", on_camera_info)}
        self._subs: dict[str, object] = {}
        self.policy: dict[str, ReliabilityPolicy] = {}
        for name in self._specs:
            self._subscribe(name, FIXED.get(reliability) or self._wanted(self._specs[name][1]))
        self._timer = node.create_timer(period_s, self.resolve) if reliability == "best_available" else None

    @property
    def image(self):
        return self._subs["image"]

    @property
    def camera_info(self):
        return self._subs["camera_info"]

    def describe(self) -> dict[str, str]:
        """Each input's reliability now, e.g. {'image': 'best_effort', ...}."""
        return {name: p.name.lower() for name, p in self.policy.items()}

    def destroy(self) -> None:
        """Unsubscribe (the node stops taking frames)."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
        for sub in self._subs.values():
            self._node.destroy_subscription(sub)
        self._subs.clear()

    def _wanted(self, topic: str) -> ReliabilityPolicy:
        infos = self._node.get_publishers_info_by_topic(self._node.resolve_topic_name(topic))
        best_effort = any(i.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for i in infos)
        return ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE

    def _subscribe(self, name: str, policy: ReliabilityPolicy) -> None:
        msg_type, topic, callback = self._specs[name]
        if name in self._subs:
            self._node.destroy_subscription(self._subs[name])
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._depth, reliability=policy)
        self._subs[name] = self._node.create_subscription(msg_type, topic, callback, qos)
        self.policy[name] = policy

    def resolve(self) -> None:
        for name, (_, topic, _) in self._specs.items():
            wanted = self._wanted(topic)
            if wanted != self.policy[name]:
                self._node.get_logger().info(
                    f"{self._subs[name].topic_name}: subscribing {wanted.name.lower()} "
                    f"(qos_reliability best_available; publishers changed)")
                self._subscribe(name, wanted)
