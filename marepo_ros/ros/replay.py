"""Live evaluation: play a bag to the relocalization node over DDS, record what it publishes,
and score the poses against the bag's ground truth.

    RosSession      an rclpy context, node and executor thread in one ROS domain
    NodeProcess     ``marepo-ros node`` as a child process (own log file)
    NodeLink        the node's ~/status (latest JSON) and its Trigger services
    BagPlayer       publishes a bag's raw CDR messages at the recorded timing scaled by a rate
    OutputRecorder  the node's ~/pose, ~/pose_with_covariance and ~/status into a rosbag2;
                    keeps each pose with its wall-clock arrival time, keyed by image stamp

``replay`` runs it end to end (starting the node unless attaching to a running one);
``play_and_score`` is the part that needs a node already up (the demo reuses it). The
scoring itself (frame tally, metrics, report) is ``evaluation.scoring``, without ROS.
Stamps are int nanoseconds as in the bag; latency is wall time (the bag's stamps are not).
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped
from rosgraph_msgs.msg import Clock
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import String
from std_srvs.srv import Trigger
from tqdm import tqdm

from ..evaluation.scoring import FrameTally, score
from ..io.bag import COMPRESSED, IMAGE, BagError, BagFrames, stamp_ns
from .conversions import pose_from_msg
from .node import NODE_NAME

NODE = f"/{NODE_NAME}"
QOS_DEPTH = 100  # the node's largest qos_depth: a burst of frames waits in DDS, not lost
STATUS_PERIOD_S = 0.2  # of a node started here
SETTLE_S = 3.0  # after playing, frames the node never received are given up after this long


class ReplayError(BagError):
    """A replay that cannot go on (no node, a node that died, a refused service call); one
    line, like every BagError."""


def wait_for(predicate, timeout: float, what: str, poll: float = 0.05):
    """Poll ``predicate`` until truthy (returns its value); ReplayError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise ReplayError(f"timed out after {timeout:.0f} s waiting for {what}")


MAX_DOMAIN = 101  # above it, DDS ports (7400 + 250 x domain + ...) reach Linux's ephemeral range


def fresh_domain_id() -> int:
    """A ROS domain for a node started here (91-101, by process id): away from the default
    domain 0 and from the test harness's 1-90, and at most MAX_DOMAIN."""
    return 91 + os.getpid() % (MAX_DOMAIN - 90)


class RosSession:
    """An rclpy context with one node (``self.node``), spun by an executor thread.

    domain_id: None uses ROS_DOMAIN_ID from the environment (attaching to a running node).
    """

    def __init__(self, name: str = "marepo_replay", *, domain_id: int | None = None):
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


class NodeProcess:
    """``marepo-ros node`` in a child process, in ROS domain ``domain_id``.

    cli_args: before the ROS arguments (e.g. --params-file FILE); params: node parameters
    (name -> value); remaps: ROS remappings (from -> to); the node's stdout and stderr go to
    ``log_path`` (``log`` reads it). discovery_range: the node's ROS_AUTOMATIC_DISCOVERY_RANGE;
    SUBNET (ROS 2's default) keeps the node's transport profile, which rmw_fastrtps replaces
    under LOCALHOST (see ``transport``); clients on LOCALHOST still find it. program: the
    command before ``cli_args`` (default ``python -m marepo_ros.cli node``); env: more
    environment variables.
    """

    def __init__(self, log_path: Path, *cli_args: str, domain_id: int, params: dict,
                 remaps: dict[str, str] | None = None, discovery_range: str = "SUBNET",
                 program: list[str] | None = None, env: dict[str, str] | None = None):
        program = program or [sys.executable, "-m", "marepo_ros.cli", "node"]
        args = [*program, *cli_args, "--ros-args"]
        for name, value in params.items():
            args += ["-p", f"{name}:={json.dumps(value) if isinstance(value, (bool, list)) else value}"]
        for src, dst in (remaps or {}).items():
            args += ["-r", f"{src}:={dst}"]
        self.domain_id = domain_id
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id), "PYTHONUNBUFFERED": "1",
               "ROS_AUTOMATIC_DISCOVERY_RANGE": discovery_range, **(env or {})}
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def last_line(self) -> str:
        lines = self.log.strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def stop(self) -> None:
        """SIGINT (the node shuts down cleanly), then kill after 15 s."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class NodeLink:
    """The relocalization node as seen from ``session``: its latest ~/status and its
    Trigger services. ``process``: the child process, when started here (its death is an
    error while waiting)."""

    def __init__(self, session: RosSession, *, node: str = NODE, process: NodeProcess | None = None):
        self.session, self.name, self.process = session, node, process
        self._status: dict | None = None
        self._seq = 0
        session.node.create_subscription(String, f"{node}/status", self._on_status, 10)

    def _on_status(self, msg: String) -> None:
        self._status, self._seq = json.loads(msg.data), self._seq + 1

    def wait(self, predicate, timeout: float, what: str):
        """Wait until ``predicate(status)`` is truthy for a status message; returns it."""
        def check():
            if self.process is not None and not self.process.alive():
                raise ReplayError(f"the node exited ({self.process.last_line()}); its log: "
                                  f"{self.process.log_path}")
            return self._status is not None and predicate(self._status) and self._status
        return wait_for(check, timeout, what)

    def next_status(self, timeout: float = 30.0) -> dict:
        """The first status published after this call."""
        seq = self._seq
        return self.wait(lambda s: self._seq > seq, timeout, f"a status message from {self.name}")

    def trigger(self, service: str, timeout: float = 30.0) -> str:
        """Call ``<node>/<service>`` (std_srvs/Trigger); its message, or ReplayError when
        refused."""
        client = self.session.node.create_client(Trigger, f"{self.name}/{service}")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise ReplayError(f"service {self.name}/{service} not available")
            future = client.call_async(Trigger.Request())
            wait_for(future.done, timeout, f"an answer from {self.name}/{service}")
            response = future.result()
        finally:
            self.session.node.destroy_client(client)
        if not response.success:
            raise ReplayError(f"{self.name}/{service} refused: {response.message}")
        return response.message


def _message_class(msgtype: str):
    """The rclpy message class of "pkg/msg/Name"; BagError when this environment lacks it."""
    pkg, _, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.msg"), name)
    except (ImportError, AttributeError):
        raise BagError(f"cannot publish {msgtype}: its Python package '{pkg}' is not installed "
                       f"in this ROS 2 environment") from None


def reliable_qos(depth: int = QOS_DEPTH) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE)


class BagPlayer:
    """Publishes ``topics`` of a bag (their raw CDR bytes, no decoding) under the same names,
    each message at its recorded time (the bag's log time) divided by ``rate`` (> 0), with
    reliable QoS. Image messages are recorded as they go: ``sent_at`` maps each image's header stamp
    (int ns) to the wall time (``time.monotonic()`` s) of its publishing; ``n_images``
    counts them. ``clock``: publish the bag's time on /clock (rosgraph_msgs/Clock) every
    CLOCK_PERIOD_S of wall time from a thread, from construction to ``close()``: the bag's first
    log time until playing starts, then advancing at ``rate``, also after the last message (so
    that nodes with ``use_sim_time:=true`` keep running on it)."""

    CLOCK_PERIOD_S = 0.01

    def __init__(self, session: RosSession, bag_path: str | Path, topics: list[str], *,
                 rate: float = 1.0, clock: bool = False):
        self.path, self.rate = Path(bag_path), rate
        self._typestore = get_typestore(Stores.ROS2_JAZZY)
        with AnyReader([self.path], default_typestore=self._typestore) as reader:
            kinds = {name: info.msgtype for name, info in reader.topics.items() if name in topics}
        self.publishers = {name: session.node.create_publisher(_message_class(msgtype), name,
                                                               reliable_qos())
                           for name, msgtype in kinds.items()}
        self._image_topics = {name for name, msgtype in kinds.items() if msgtype in (IMAGE, COMPRESSED)}
        self.sent_at: dict[int, float] = {}
        self.n_images = 0
        self._clock_origin: tuple[float, int] | None = None  # (wall, bag ns) when play began
        self._clock_stop = threading.Event()
        if clock:
            with AnyReader([self.path], default_typestore=self._typestore) as reader:
                self._first_ns = reader.start_time
            self._clock_pub = session.node.create_publisher(Clock, "/clock", reliable_qos(10))
            threading.Thread(target=self._run_clock, daemon=True).start()

    def bag_time_ns(self) -> int:
        """The bag's time now (ns): its start before playing, then advancing at ``rate``."""
        if self._clock_origin is None:
            return self._first_ns
        wall, bag_ns = self._clock_origin
        return bag_ns + int((time.monotonic() - wall) * self.rate * 1e9)

    def _run_clock(self) -> None:
        while not self._clock_stop.wait(self.CLOCK_PERIOD_S):
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = divmod(self.bag_time_ns(), 1_000_000_000)
            self._clock_pub.publish(msg)

    def close(self) -> None:
        """Stop the /clock thread."""
        self._clock_stop.set()

    def wait_for_subscribers(self, timeout: float = 30.0) -> None:
        """Wait until every topic has a subscriber, so that no frame is sent into the void."""
        def missing():
            return [t for t, p in self.publishers.items() if p.get_subscription_count() == 0]
        try:
            wait_for(lambda: not missing(), timeout, "subscribers")
        except ReplayError:
            raise ReplayError(f"nobody subscribes to {', '.join(missing())} (is the node running "
                              f"in this ROS domain, and its inputs remapped to these topics?)") from None

    def play(self, progress: tqdm | None = None) -> None:
        """Publish everything in bag order at the bag's timing / rate; ``progress`` is
        advanced by one per image."""
        with AnyReader([self.path], default_typestore=self._typestore) as reader:
            conns = [c for c in reader.connections if c.topic in self.publishers]
            start_wall, start_bag = time.monotonic(), None
            for conn, log_ns, raw in reader.messages(conns):
                start_bag = log_ns if start_bag is None else start_bag
                if self._clock_origin is None:
                    self._clock_origin = (start_wall, start_bag)
                delay = start_wall + (log_ns - start_bag) / 1e9 / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                cdr = raw if reader.is2 else self._typestore.ros1_to_cdr(raw, conn.msgtype)
                if conn.topic in self._image_topics:
                    header = reader.deserialize(raw, conn.msgtype).header
                    self.sent_at[stamp_ns(header)] = time.monotonic()
                    self.n_images += 1
                    if progress is not None:
                        progress.update()
                self.publishers[conn.topic].publish(bytes(cdr))


class OutputRecorder:
    """Records the node's ~/pose, ~/pose_with_covariance and ~/status (raw, as published),
    and keeps ``poses``: image stamp (int ns) -> (4x4 map_from_cam, arrival
    ``time.monotonic()`` s). ``save(bag_path)`` writes what arrived as a rosbag2 folder
    (sqlite3, log time = wall clock at arrival; written by the calling thread, because
    sqlite3 objects stay in the thread that made them)."""

    TOPICS = (("pose", PoseStamped, "geometry_msgs/msg/PoseStamped"),
              ("pose_with_covariance", PoseWithCovarianceStamped,
               "geometry_msgs/msg/PoseWithCovarianceStamped"),
              ("status", String, "std_msgs/msg/String"))

    def __init__(self, session: RosSession, *, node: str = NODE):
        self.node = node
        self.poses: dict[int, tuple[np.ndarray, float]] = {}
        self._messages: list[tuple[str, int, bytes]] = []  # (topic, wall ns, CDR)
        self._lock = threading.Lock()
        self._subs = [session.node.create_subscription(
            cls, f"{node}/{name}", lambda raw, name=name: self._on_message(name, raw),
            reliable_qos(), raw=True) for name, cls, _ in self.TOPICS]

    def wait_for_publishers(self, timeout: float = 30.0) -> None:
        """Wait until the node's outputs are matched, so that no pose goes unrecorded."""
        wait_for(lambda: all(s.get_publisher_count() for s in self._subs), timeout,
                 f"the node's outputs ({', '.join(s.topic_name for s in self._subs)})")

    def _on_message(self, name: str, raw: bytes) -> None:
        arrived = time.monotonic()
        pose = None
        if name == "pose":
            msg = deserialize_message(raw, PoseStamped)
            pose = (stamp_ns(msg.header),
                    (pose_from_msg(msg.pose), arrived))
        with self._lock:
            self._messages.append((name, time.time_ns(), raw))
            if pose is not None:
                self.poses[pose[0]] = pose[1]

    def save(self, bag_path: str | Path) -> None:
        typestore = get_typestore(Stores.ROS2_JAZZY)
        with self._lock:
            messages = list(self._messages)
        with Writer(Path(bag_path), version=9) as writer:
            conns = {name: writer.add_connection(f"{self.node}/{name}", msgtype, typestore=typestore)
                     for name, _, msgtype in self.TOPICS}
            for name, ns, raw in messages:
                writer.write(conns[name], ns, raw)


def wait_until_accounted(link: NodeLink, before: dict, played: int, *, timeout: float) -> dict:
    """The first status in which the node has accounted for every frame it received since
    ``before`` (its ``frames`` dict), and received all ``played`` or nothing new for
    SETTLE_S seconds (the rest is lost in transport)."""
    last = {"received": -1, "since": time.monotonic()}

    def done(status):
        f = status["frames"]
        received = f["received"] - before["received"]
        if received != last["received"]:
            last.update(received=received, since=time.monotonic())
        accounted = sum(f[k] - before[k] for k in ("localized", "rejected", "dropped_stale"))
        settled = received >= played or time.monotonic() - last["since"] > SETTLE_S
        return accounted >= received and settled
    return link.wait(done, timeout, f"the node to finish the {played} frames played")


def play_and_score(session: RosSession, link: NodeLink, bag: BagFrames, out: Path, *,
                   rate: float, meta: dict, progress: bool = True, clock: bool = False) -> dict:
    """Play ``bag``'s images and camera_info to the running node (and the bag's time on
    /clock with ``clock``), record its outputs into ``out/outputs``, wait until it has
    finished the last frame, and score (see ``score``)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "outputs", ignore_errors=True)  # a previous replay's recording
    player = BagPlayer(session, bag.path, [bag.image_topic, bag.camera_info_topic], rate=rate,
                       clock=clock)
    recorder = OutputRecorder(session, node=link.name)
    try:
        player.wait_for_subscribers()
        recorder.wait_for_publishers()
        before = link.next_status()["frames"]
        with tqdm(total=len(bag), desc="replay", unit="img", dynamic_ncols=True,
                  disable=not progress) as bar:
            player.play(bar)
        after = wait_until_accounted(link, before, player.n_images, timeout=120)["frames"]
        tally = FrameTally.between(player.n_images, before, after)
        if tally.localized:
            wait_for(lambda: len(recorder.poses) >= tally.localized, 10, "the last poses")
    finally:
        player.close()
        recorder.save(out / "outputs")
    meta = {"bag": str(bag.path), "image_topic": bag.image_topic,
            "camera_info_topic": bag.camera_info_topic, "ground_truth": bag.gt_source,
            "max_dt_s": bag.max_dt, "rate": rate, "images_in_bag": len(bag), **meta}
    return score(bag, recorder.poses, player.sent_at, tally, out, meta)


def node_inputs(bag: BagFrames) -> tuple[dict, dict]:
    """(parameters, remappings) that point a node started here at the bag's topics, with
    reliable QoS deep enough for bursts."""
    compressed = bag.topics[bag.image_topic] == COMPRESSED
    params = {"qos_reliability": "reliable", "qos_depth": QOS_DEPTH, "status_period": STATUS_PERIOD_S,
              "image_transport": "compressed" if compressed else "raw",
              "rectified_images": bag.rectified}
    remaps = {"image/compressed" if compressed else "image": bag.image_topic,
              "camera_info": bag.camera_info_topic}
    return params, remaps


def replay(bag_path: str | Path, map_path: str | Path | None, out: str | Path, *,
           rate: float = 1.0, image_topic: str | None = None, camera_info_topic: str | None = None,
           gt_topic: str | None = None, gt_tf: tuple[str, str] | None = None,
           max_dt: float = 0.02, attach: bool = False, progress: bool = True,
           node_timeout: float | None = None, clock: bool = False, rectified: bool = False) -> dict:
    """Live evaluation of a bag (see the module docstring): by default a node is started with
    ``map_path`` in a fresh ROS domain (log in ``out/node.log``); with ``attach`` the running
    /relocalization_node of the current domain is used as it is (``map_path``, if given, must
    be the map it has loaded). ``node_timeout``: seconds to wait for the node's first status
    (default 120 for a node started here, which loads torch and the map; 30 when attaching,
    a running node publishes one every ``status_period``). ``clock``: publish the bag's time on
    /clock (a node started here gets use_sim_time). ``rectified``: the bag's images are
    rectified (their camera is CameraInfo's P; a node started here gets rectified_images).
    Returns the metrics."""
    if not (gt_topic or gt_tf):
        raise BagError(f"{bag_path}: scoring a replay needs ground truth: --gt-topic TOPIC or "
                       f"--gt-tf PARENT:CHILD")
    if not rate > 0:
        raise BagError(f"--rate must be positive, got {rate}")
    bag = BagFrames(bag_path, image_topic=image_topic, camera_info_topic=camera_info_topic,
                    gt_topic=gt_topic, gt_tf=gt_tf, max_dt=max_dt, rectified=rectified)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if node_timeout is None:
        node_timeout = 30.0 if attach else 120.0
    process = None
    if attach:
        session = RosSession()
    else:
        if map_path is None or not Path(map_path).is_file():
            raise BagError(f"map file not found: {map_path} (--map)")
        domain = fresh_domain_id()
        params, remaps = node_inputs(bag)
        process = NodeProcess(out / "node.log", domain_id=domain,
                              params={"map_path": str(Path(map_path).resolve()), **params,
                                      **({"use_sim_time": True} if clock else {})}, remaps=remaps)
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        session = RosSession(domain_id=domain)
    try:
        link = NodeLink(session, process=process)
        status = link.wait(lambda s: True, node_timeout, f"{NODE} (its ~/status)" + (
            "; is it running in this ROS_DOMAIN_ID?" if attach else ""))
        if not status["map_loaded"]:
            raise ReplayError(f"{NODE} has no map loaded"
                              + (f": {status['map_error']}" if status["map_error"] else ""))
        if attach and map_path and Path(status["map_path"]).resolve() != Path(map_path).resolve():
            raise ReplayError(f"{NODE} localizes in {status['map_path']}, not in {map_path}: set "
                              f"its map_path parameter, or leave out --map")
        meta = {"map": status["map_path"], "estimator": status["estimator"],
                "node": "attached" if attach else "started by replay"}
        metrics = play_and_score(session, link, bag, out, rate=rate, meta=meta, progress=progress,
                                 clock=clock)
    finally:
        session.close()
        if process is not None:
            process.stop()
    return metrics
