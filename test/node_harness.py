"""Real DDS test harness: the node runs as its own process (``replay.NodeProcess``), the test talks
to it through an rclpy client node on loopback. Each node + client pair gets a ROS domain of
its own (``fresh_domain``), so nodes of other tests or test sessions never answer."""
from __future__ import annotations

import itertools
import json
import os

import numpy as np

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
_DOMAINS = itertools.count((os.getpid() % 9) * 10)  # from a block of 10 per session


def fresh_domain() -> int:
    """A ROS domain id in 1-90 (replay takes 91-101; above 101 DDS ports reach the ephemeral
    range) that no running node of this test session uses: the session's own block of 10
    first, then the next blocks."""
    return 1 + next(_DOMAINS) % 90

from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.srv import GetParameters, SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402

from marepo_ros.ros.conversions import pose_to_msg, stamp_from_seconds  # noqa: E402
from marepo_ros.ros.replay import NodeProcess, ReplayError, RosSession, wait_for  # noqa: E402,F401 - the tests' too

NODE = "/relocalization_node"
_CLIENTS = itertools.count()


class Client:
    """A test node that feeds frames to the relocalization node and records what comes back."""

    def __init__(self, *, domain: int, compressed: bool = False, sensor_qos: bool = False):
        """sensor_qos: publish images and camera_info the way camera drivers do (sensor-data
        QoS: best effort, depth 5); else reliable, depth 50."""
        self.session = RosSession(f"marepo_test_client_{next(_CLIENTS)}", domain_id=domain)
        self.node = self.session.node
        qos = (qos_profile_sensor_data if sensor_qos
               else QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.image_pub = (self.node.create_publisher(CompressedImage, "/image/compressed", qos)
                          if compressed else self.node.create_publisher(Image, "/image", qos))
        self.info_pub = self.node.create_publisher(CameraInfo, "/camera_info", qos)
        self.mapping_pose_pub = self.node.create_publisher(PoseStamped, "/mapping_pose", 50)
        self.poses: list[PoseStamped] = []
        self.poses_cov: list[PoseWithCovarianceStamped] = []
        self.statuses: list[dict] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(PoseStamped, f"{NODE}/pose", self.poses.append, 50)
        self.node.create_subscription(PoseWithCovarianceStamped, f"{NODE}/pose_with_covariance",
                                      self.poses_cov.append, 50)
        self.node.create_subscription(String, f"{NODE}/status",
                                      lambda m: self.statuses.append(json.loads(m.data)), 50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)
        self._clients = {}

    def close(self) -> None:
        self.session.close()

    # --- talking to the node ---
    def _client(self, srv_type, name: str):
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv_type, name)
        client = self._clients[name]
        assert client.wait_for_service(timeout_sec=30), f"service {name} not available"
        return client

    def _call(self, srv_type, name: str, request, timeout: float = 30.0):
        future = self._client(srv_type, name).call_async(request)
        wait_for(future.done, timeout, f"an answer from {name}")
        return future.result()

    def trigger(self, service: str) -> Trigger.Response:
        return self._call(Trigger, f"{NODE}/{service}", Trigger.Request())

    def set_params(self, **values) -> list:
        request = SetParameters.Request(parameters=[
            Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        return self._call(SetParameters, f"{NODE}/set_parameters", request).results

    def get_param(self, name: str):
        response = self._call(GetParameters, f"{NODE}/get_parameters", GetParameters.Request(names=[name]))
        return Parameter.from_parameter_msg(ParameterMsg(name=name, value=response.values[0])).value

    def lifecycle_state(self) -> str:
        """The node's lifecycle state (lifecycle_msgs ~/get_state), e.g. 'inactive'."""
        return self._call(GetState, f"{NODE}/get_state", GetState.Request()).current_state.label

    def transition(self, transition_id: int) -> bool:
        """Ask for a lifecycle transition (lifecycle_msgs/msg/Transition ids); its success."""
        request = ChangeState.Request()
        request.transition.id = transition_id
        return self._call(ChangeState, f"{NODE}/change_state", request).success

    def status(self, timeout: float = 10.0) -> dict:
        """The next status message published after this call."""
        n = len(self.statuses)
        wait_for(lambda: len(self.statuses) > n, timeout, "a status message")
        return self.statuses[-1]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until both ends of every input are matched: our writers see the node's readers, and
        the node's ~/status says its readers see our writers (discovery is not symmetric: a
        sample written before the node's reader matched our writer is lost)."""
        wait_for(lambda: self.statuses, timeout, "the node's first status message")
        wait_for(lambda: all(p.get_subscription_count() for p in
                             (self.image_pub, self.info_pub, self.mapping_pose_pub)),
                 timeout, "the node to subscribe to the inputs")
        wait_for(lambda: all(self.statuses[-1]["publishers"].get(k) for k in
                             ("image", "camera_info", "mapping_pose")), timeout,
                 "the node's readers to match our writers")
        self._client(Trigger, f"{NODE}/start_mapping")

    # --- sending frames ---
    def send_camera_info(self, stamp: float, K: np.ndarray, width: int, height: int,
                         frame_id: str = "camera") -> None:
        msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
        msg.header.stamp, msg.header.frame_id = stamp_from_seconds(stamp), frame_id
        msg.k = [float(v) for v in np.asarray(K).reshape(9)]
        msg.d = [0.0] * 5
        msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        msg.p = [float(K[0, 0]), 0.0, float(K[0, 2]), 0.0, 0.0, float(K[1, 1]), float(K[1, 2]),
                 0.0, 0.0, 0.0, 1.0, 0.0]
        self.info_pub.publish(msg)

    def send_image(self, stamp: float, rgb: np.ndarray, *, encoding: str = "rgb8",
                   frame_id: str = "camera") -> None:
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding=encoding)
        msg.header.stamp, msg.header.frame_id = stamp_from_seconds(stamp), frame_id
        msg.step = rgb.shape[1] * (rgb.shape[2] if rgb.ndim == 3 else 1) * rgb.itemsize
        msg.data = rgb.tobytes()
        self.image_pub.publish(msg)

    def send_compressed(self, stamp: float, data: bytes, fmt: str = "jpeg",
                        frame_id: str = "camera") -> None:
        msg = CompressedImage(format=fmt, data=data)
        msg.header.stamp, msg.header.frame_id = stamp_from_seconds(stamp), frame_id
        self.image_pub.publish(msg)

    def send_mapping_pose(self, stamp: float, map_from_cam: np.ndarray) -> None:
        msg = PoseStamped(pose=pose_to_msg(map_from_cam))
        msg.header.stamp, msg.header.frame_id = stamp_from_seconds(stamp), "map"
        self.mapping_pose_pub.publish(msg)

    def pose_at(self, stamp: float, timeout: float = 30.0) -> PoseStamped:
        """The pose the node published for the image of ``stamp``."""
        def find():
            for p in self.poses:
                if abs(p.header.stamp.sec + 1e-9 * p.header.stamp.nanosec - stamp) < 1e-6:
                    return p
            return None
        return wait_for(find, timeout, f"a pose stamped {stamp:.3f}")

    def frames_done(self, n: int, timeout: float = 60.0) -> dict:
        """Wait until the node accounted for ``n`` received frames (localized, rejected,
        dropped or skipped); returns that status."""
        def done():
            s = self.statuses[-1] if self.statuses else None
            if s is None:
                return None
            f = s["frames"]
            settled = f["localized"] + f["rejected"] + f["dropped_stale"] + f["skipped"]
            return s if f["received"] >= n and settled >= n else None
        try:
            return wait_for(done, timeout, f"the node to account for {n} frames")
        except ReplayError as exc:
            last = self.statuses[-1] if self.statuses else {}
            raise ReplayError(f"{exc}; its last status: frames {last.get('frames')}, last rejection "
                              f"'{last.get('last_rejection')}', last error '{last.get('last_error')}'"
                              ) from None
