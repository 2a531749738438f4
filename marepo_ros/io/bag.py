"""Rosbags without ROS: write a scene folder as a rosbag2, and read camera frames with their
intrinsics and ground-truth poses from any bag (rosbag2 sqlite3 or MCAP, ROS 1 ``.bag``).

``export_bag`` writes, per frame, all with the same stamp:
    /camera/image_raw             sensor_msgs/Image (rgb8, or mono8 for grey images; lossless)
    or /camera/image_raw/compressed  sensor_msgs/CompressedImage (the source JPEG/PNG bytes)
    /camera/camera_info           sensor_msgs/CameraInfo (K, P = [K|0], plumb_bob, zero D)
    /camera/pose                  geometry_msgs/PoseStamped, ground truth map_from_cam in ``map``
    /tf                           tf2_msgs/TFMessage, map -> camera_optical_frame (the same pose)
With ``tf_tree`` the ground truth goes on TF as a robot records it instead: /tf carries
map -> odom (a slow drift, at 2 Hz on stamps of its own) and odom -> base_link (at each image
stamp), /tf_static base_link -> camera_link (a mount) and camera_link -> camera_optical_frame
(REP-103's optical rotation); chained, they give the same map_from_cam. With ``distortion`` the
images are warped through that lens (pixels seen by the distorted camera; what falls outside the
pinhole image is black) and CameraInfo carries its D.
Stamps are synthesized: a frame's stamp is its index among all the scene's frames (sorted by
name) divided by ``rate_hz`` (default 30 Hz, the 7-Scenes Kinect rate), so a split keeps its
gaps in time; ``scene_stamps`` gives the same stamps to the folder evaluation.

``BagFrames`` reads an image topic back: each image decoded to uint8, its ``Camera`` (K, size,
distortion; P for rectified images: ``camera.camera_from_info``, as the node) from the
CameraInfo of the same stamp (else the latest before it, else the first), and its ground truth:
the pose nearest in time within ``max_dt`` on a pose topic, or the transform PARENT -> CHILD
chained through the TF tree (/tf and /tf_static, ``tf_tree.TransformTree``) and interpolated at
the image stamp; optionally the depth image of its stamp (registered to it). ``eval`` reads the
pose as ground truth, ``map build`` as the mapping pose. Every problem with a bag is a
``BagError`` with a one-line message.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from ..camera import Camera, CameraError, camera_from_info
from ..geometry import Distortion, invert_pose, make_pose, pose_from_quat, quat_from_pose, undistort_pixels
from .dataset import SceneDataset, read_image
from .images import DEPTH_MAX_DT_S, ImageError, decode_compressed, decode_depth, decode_raw, from_opencv
from .tf_tree import TransformError, TransformTree

IMAGE_TOPIC = "/camera/image_raw"
COMPRESSED_TOPIC = "/camera/image_raw/compressed"
CAMERA_INFO_TOPIC = "/camera/camera_info"
POSE_TOPIC = "/camera/pose"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"
MAP_FRAME = "map"
CAMERA_FRAME = "camera_optical_frame"
ODOM_FRAME, BASE_FRAME, CAMERA_LINK_FRAME = "odom", "base_link", "camera_link"   # tf_tree export
# camera_link (x forward, y left, z up) -> optical frame (x right, y down, z forward), REP-103
LINK_FROM_OPTICAL = make_pose(np.array([[0.0, 0, 1], [-1, 0, 0], [0, -1, 0]]), np.zeros(3))
BASE_FROM_LINK = make_pose(np.array([[np.cos(0.2), 0, np.sin(0.2)], [0, 1, 0],   # 0.2 rad down
                                     [-np.sin(0.2), 0, np.cos(0.2)]]), np.array([0.12, 0.0, 0.35]))
ODOM_DRIFT = (np.array([0.02, -0.01, 0.005]), 0.01)   # map -> odom: m/s and rad/s about z
ODOM_DRIFT_PERIOD_NS = 500_000_000
DEFAULT_RATE_HZ = 30.0
DEFAULT_MAX_DT = 0.02  # seconds, like evo's t_max_diff

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
GT_TYPES = ("geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/PoseWithCovarianceStamped",
            "nav_msgs/msg/Odometry", "geometry_msgs/msg/TransformStamped")
BAG_SUFFIXES = (".bag", ".mcap", ".db3")
STORAGES = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}

class BagError(ValueError):
    """A bag that cannot be used as asked; the message names the bag and the problem."""


# ---------------------------------------------------------------- export

def scene_stamps(dataset: SceneDataset, names: list[str], rate_hz: float = DEFAULT_RATE_HZ
                 ) -> np.ndarray:
    """(N,) int64 stamps in nanoseconds: each name's index among all frames / ``rate_hz``."""
    index = {name: i for i, name in enumerate(dataset.names)}
    return np.array([round(index[n] * 1e9 / rate_hz) for n in names], dtype=np.int64)


def export_bag(dataset: SceneDataset, out: str | Path, *, split: str = "all",
               compressed: bool = False, storage: str = "sqlite3",
               rate_hz: float = DEFAULT_RATE_HZ, tf_tree: bool = False,
               distortion: Distortion | None = None, pose_topic: bool = True,
               progress: bool = True) -> int:
    """Write the frames of ``split`` as a rosbag2 folder ``out`` (see the module docstring).

    storage: "sqlite3" or "mcap"; tf_tree: ground truth on TF through map -> odom -> base_link
    -> camera_link -> optical frame; distortion: images as a camera with this lens sees them;
    pose_topic: False leaves out /camera/pose (the poses only on TF). Returns the number of
    frames written.
    """
    if storage not in STORAGES:
        raise BagError(f"unknown storage '{storage}' (choose from {', '.join(STORAGES)})")
    frames = dataset.frames(split)
    stamps = scene_stamps(dataset, [fr.name for fr in frames], rate_hz)
    ts = get_typestore(Stores.ROS2_JAZZY)
    try:
        writer = Writer(out, version=9, storage_plugin=STORAGES[storage])
    except WriterError as exc:
        raise BagError(f"cannot write the bag: {exc}") from None
    warp = None
    with writer:
        conns = {topic: writer.add_connection(topic, msgtype, typestore=ts) for topic, msgtype in (
            (COMPRESSED_TOPIC, COMPRESSED) if compressed else (IMAGE_TOPIC, IMAGE),
            (CAMERA_INFO_TOPIC, CAMERA_INFO), *([(POSE_TOPIC, GT_TYPES[0])] if pose_topic else []),
            (TF_TOPIC, TF_MESSAGE),
            *([(TF_STATIC_TOPIC, TF_MESSAGE)] if tf_tree else []))}
        def write(ns: int, topic: str, msg) -> None:
            writer.write(conns[topic], ns, ts.serialize_cdr(msg, conns[topic].msgtype))

        drift = []                        # map -> odom stamps, written in time order with frames
        if tf_tree and len(stamps):
            write(int(stamps[0]), TF_STATIC_TOPIC, _tf_msg(ts, int(stamps[0]), [
                (BASE_FRAME, CAMERA_LINK_FRAME, BASE_FROM_LINK),
                (CAMERA_LINK_FRAME, CAMERA_FRAME, LINK_FROM_OPTICAL)]))
            drift = list(range(max(int(stamps[0]) - ODOM_DRIFT_PERIOD_NS, 0),
                               int(stamps[-1]) + 2 * ODOM_DRIFT_PERIOD_NS, ODOM_DRIFT_PERIOD_NS))

        def write_drift(until_ns: float) -> None:
            while drift and drift[0] <= until_ns:
                ns = drift.pop(0)
                write(ns, TF_TOPIC, _tf_msg(ts, ns, [(MAP_FRAME, ODOM_FRAME, map_from_odom_drift(ns))]))

        for fr, ns in zip(tqdm(frames, desc="export", unit="img", dynamic_ncols=True,
                               disable=not progress), stamps):
            ns = int(ns)
            write_drift(ns)
            pixels = read_image(fr.image_path)
            if distortion is not None:
                warp = warp if warp is not None else _distortion_warp(dataset.K, pixels.shape, distortion)
                pixels = cv2.remap(pixels, *warp, cv2.INTER_LINEAR)
            write(ns, COMPRESSED_TOPIC if compressed else IMAGE_TOPIC,
                  _compressed_msg(ts, ns, fr.image_path, pixels) if compressed
                  else _image_msg(ts, ns, pixels))
            write(ns, CAMERA_INFO_TOPIC, _camera_info_msg(ts, ns, dataset.K, pixels.shape[1],
                                                          pixels.shape[0], distortion))
            if pose_topic:
                write(ns, POSE_TOPIC, _pose_msg(ts, ns, fr.map_from_cam))
            if tf_tree:
                odom_from_base = (invert_pose(map_from_odom_drift(ns)) @ fr.map_from_cam
                                  @ invert_pose(BASE_FROM_LINK @ LINK_FROM_OPTICAL))
                write(ns, TF_TOPIC, _tf_msg(ts, ns, [(ODOM_FRAME, BASE_FRAME, odom_from_base)]))
            else:
                write(ns, TF_TOPIC, _tf_msg(ts, ns, [(MAP_FRAME, CAMERA_FRAME, fr.map_from_cam)]))
        write_drift(np.inf)
    return len(frames)


def map_from_odom_drift(ns: int) -> np.ndarray:
    """The ``tf_tree`` export's map -> odom at a stamp: ``ODOM_DRIFT``'s constant velocity and
    yaw rate from time 0 (linear and slerp interpolation between its samples are exact)."""
    t = ns / 1e9
    velocity, yaw_rate = ODOM_DRIFT
    c, s = np.cos(yaw_rate * t), np.sin(yaw_rate * t)
    return make_pose(np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]), velocity * t)


def _distortion_warp(K: np.ndarray, shape: tuple, distortion: Distortion) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps (x, y: H x W float32) that render the distorted camera's image from the
    pinhole image of intrinsics K: each distorted pixel samples its undistorted position."""
    h, w = shape[:2]
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    src = undistort_pixels(np.stack([u.ravel(), v.ravel()], 1), K, distortion).astype(np.float32)
    return src[:, 0].reshape(h, w), src[:, 1].reshape(h, w)


def _header(ts, ns: int, frame_id: str):
    t = ts.types["builtin_interfaces/msg/Time"](sec=int(ns // 10**9), nanosec=int(ns % 10**9))
    return ts.types["std_msgs/msg/Header"](stamp=t, frame_id=frame_id)


def _image_msg(ts, ns: int, pixels: np.ndarray):
    """sensor_msgs/Image of HxWx3 RGB (rgb8) or HxW grey (mono8) uint8 pixels."""
    grey = pixels.ndim == 2
    data = np.ascontiguousarray(pixels)
    h, w = data.shape[:2]
    return ts.types[IMAGE](header=_header(ts, ns, CAMERA_FRAME), height=h, width=w,
                           encoding="mono8" if grey else "rgb8", is_bigendian=0,
                           step=w * (1 if grey else 3), data=data.reshape(-1))


def _compressed_msg(ts, ns: int, path: Path, pixels: np.ndarray):
    """sensor_msgs/CompressedImage: the file's own JPEG/PNG bytes when they decode to exactly
    ``pixels`` (HxWx3 RGB or HxW grey), else a lossless PNG of them."""
    data = np.fromfile(path, dtype=np.uint8)
    fmt = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png"}.get(path.suffix.lower())
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if fmt else None
    if decoded is None or not np.array_equal(from_opencv(decoded), pixels):
        _, png = cv2.imencode(".png", pixels if pixels.ndim == 2 else pixels[..., ::-1])
        data, fmt = png.reshape(-1), "png"
    return ts.types[COMPRESSED](header=_header(ts, ns, CAMERA_FRAME), format=fmt, data=data)


def _camera_info_msg(ts, ns: int, K: np.ndarray, width: int, height: int,
                     distortion: Distortion | None = None):
    """sensor_msgs/CameraInfo of a pinhole camera (plumb_bob, D of ``distortion`` or zeros)."""
    P = np.hstack([K, np.zeros((3, 1))])
    roi = ts.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                       do_rectify=False)
    model, d = (distortion.model, distortion.coefficients) if distortion else ("plumb_bob", (0.0,) * 5)
    return ts.types[CAMERA_INFO](
        header=_header(ts, ns, CAMERA_FRAME), height=height, width=width,
        distortion_model=model, d=np.asarray(d, np.float64), k=K.reshape(-1).astype(np.float64),
        r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)


def _pose_msg(ts, ns: int, map_from_cam: np.ndarray):
    """geometry_msgs/PoseStamped of the camera in the map frame."""
    t, q = quat_from_pose(map_from_cam)
    g = ts.types
    pose = g["geometry_msgs/msg/Pose"](position=g["geometry_msgs/msg/Point"](x=t[0], y=t[1], z=t[2]),
                                       orientation=g["geometry_msgs/msg/Quaternion"](*q))
    return g[GT_TYPES[0]](header=_header(ts, ns, MAP_FRAME), pose=pose)


def _tf_msg(ts, ns: int, transforms: list[tuple[str, str, np.ndarray]]):
    """tf2_msgs/TFMessage of (parent, child, parent_from_child) transforms, all at ``ns``."""
    g = ts.types
    stamped = []
    for parent, child, T in transforms:
        t, q = quat_from_pose(T)
        tf = g["geometry_msgs/msg/Transform"](translation=g["geometry_msgs/msg/Vector3"](*t),
                                              rotation=g["geometry_msgs/msg/Quaternion"](*q))
        stamped.append(g["geometry_msgs/msg/TransformStamped"](header=_header(ts, ns, parent),
                                                               child_frame_id=child, transform=tf))
    return g[TF_MESSAGE](transforms=stamped)


# ---------------------------------------------------------------- reading

def is_bag(path: str | Path) -> bool:
    """True for a rosbag2 folder (with metadata.yaml) or a .bag, .mcap or .db3 file name."""
    path = Path(path)
    return (path / "metadata.yaml").is_file() or path.suffix in BAG_SUFFIXES


def parse_gt_tf(spec: str, flag: str = "--gt-tf") -> tuple[str, str]:
    """(parent, child) frame ids from "PARENT:CHILD" (``flag`` names the option in errors)."""
    parent, sep, child = spec.partition(":")
    if not (sep and parent and child) or ":" in child:
        raise BagError(f"{flag} must be PARENT:CHILD (e.g. map:camera_optical_frame), got '{spec}'")
    return parent.strip("/"), child.strip("/")


def associate(stamps_ns: np.ndarray, ref_ns: np.ndarray, max_dt: float) -> np.ndarray:
    """(N,) int index into ``ref_ns`` of the nearest reference stamp to each of ``stamps_ns``
    (both in nanoseconds), -1 where none lies within ``max_dt`` seconds. Ties go to the earlier
    reference stamp, and among equal reference stamps to the first: deterministic."""
    stamps_ns = np.asarray(stamps_ns, dtype=np.int64)
    if len(ref_ns) == 0:
        return np.full(len(stamps_ns), -1)
    ref, first = np.unique(np.asarray(ref_ns, dtype=np.int64), return_index=True)
    pos = np.searchsorted(ref, stamps_ns)
    lo, hi = np.clip(pos - 1, 0, len(ref) - 1), np.clip(pos, 0, len(ref) - 1)
    d_lo, d_hi = np.abs(stamps_ns - ref[lo]), np.abs(ref[hi] - stamps_ns)
    best = np.where(d_lo <= d_hi, lo, hi)
    return np.where(np.minimum(d_lo, d_hi) <= round(max_dt * 1e9), first[best], -1)


def decode_image(msg, msgtype: str) -> np.ndarray:
    """HxWx3 uint8 RGB, or HxW uint8 grey, from a sensor_msgs Image or CompressedImage (see
    ``images``); BagError when it cannot be decoded."""
    try:
        return decode_compressed(msg) if msgtype == COMPRESSED else decode_raw(msg)
    except ImageError as exc:
        raise BagError(str(exc)) from None


def stamp_ns(header) -> int:
    """A std_msgs/Header's stamp as int nanoseconds."""
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def _pose_of(msg, msgtype: str) -> np.ndarray:
    """4x4 pose (header frame from child frame) carried by a message of one of GT_TYPES."""
    if msgtype == "geometry_msgs/msg/TransformStamped":
        return pose_from_transform(msg.transform)
    pose = msg.pose if msgtype == GT_TYPES[0] else msg.pose.pose
    p, q = pose.position, pose.orientation
    return pose_from_quat([p.x, p.y, p.z], [q.x, q.y, q.z, q.w])


def pose_from_transform(tf) -> np.ndarray:
    """4x4 pose (parent from child) of a geometry_msgs/Transform (rclpy's or rosbags')."""
    t, q = tf.translation, tf.rotation
    return pose_from_quat([t.x, t.y, t.z], [q.x, q.y, q.z, q.w])


@dataclass(frozen=True)
class BagFrame:
    """One camera image from a bag.

    stamp: header stamp in seconds; image: HxWx3 RGB or HxW grey uint8; camera: its Camera
    (K, size, distortion); map_from_cam: 4x4 float64 ground truth (camera to the ground truth's
    parent frame), or None when the image has none; depth: HxW float32 metres on the image's
    pixels (0 = invalid), or None (no depth topic, or no depth of its stamp).
    """
    stamp: float
    image: np.ndarray
    camera: Camera
    map_from_cam: np.ndarray | None
    depth: np.ndarray | None = None


class BagFrames:
    """The images of one topic of a bag, with intrinsics and ground truth.

    path: rosbag2 folder, .mcap or .db3 file, or ROS 1 .bag.
    image_topic: Image or CompressedImage topic; None takes the bag's only image topic.
    camera_info_topic: default ``camera_info`` beside the image topic (``/cam/image_raw`` and
        ``/cam/image_raw/compressed`` -> ``/cam/camera_info``).
    gt_topic: PoseStamped, PoseWithCovarianceStamped, Odometry or TransformStamped topic (the
        pose nearest to an image's stamp within ``max_dt``); or gt_tf: (parent, child) frames,
        chained through the TF tree of /tf and /tf_static and interpolated at the image's stamp
        (images up to ``max_dt`` outside a transform's recorded span get its end value).
        Neither: no ground truth.
    max_dt: seconds.
    rectified: the images are rectified: their camera is CameraInfo's P (``camera_from_info``).
    depth_topic: a depth Image topic registered to the images (16UC1/mono16 mm, 32FC1 m): each
        image gets the depth of its stamp (within ``DEPTH_MAX_DT_S``), of its size.
    gt_role: what the ground truth is and the option that named ``gt_topic``, for messages
        (``map build``: ("pose", "--pose-topic")).

    Construction reads everything but the pixels and raises BagError for missing topics, wrong
    types, a missing camera_info, ground truth or depth that never matches in time. ``len()`` is
    the number of images; ``stamps_ns``: (N,) int64 their header stamps; ``map_from_cam``: per
    image the 4x4 ground truth or None; ``n_matched``: how many have one; ``frames()`` decodes
    the images (and depth) in bag order.
    """

    def __init__(self, path: str | Path, *, image_topic: str | None = None,
                 camera_info_topic: str | None = None, gt_topic: str | None = None,
                 gt_tf: tuple[str, str] | None = None, max_dt: float = DEFAULT_MAX_DT,
                 rectified: bool = False, depth_topic: str | None = None,
                 gt_role: tuple[str, str] = ("ground truth", "--gt-topic")):
        self.path = Path(path)
        self.max_dt, self.rectified, self._gt_word = max_dt, rectified, gt_role[0]
        with self._open() as reader:
            self.topics = {name: info.msgtype for name, info in reader.topics.items()}
            self.depth_topic = depth_topic and self._topic(depth_topic, "--depth-topic", (IMAGE,))
            self.image_topic = self._image_topic(image_topic)
            self.camera_info_topic = self._topic(camera_info_topic or _camera_info_beside(
                self.image_topic), "camera_info, see --camera-info-topic", (CAMERA_INFO,))
            self.gt_source = gt_topic or (f"TF {gt_tf[0]} -> {gt_tf[1]}" if gt_tf else None)
            gt_topic = gt_topic and self._topic(gt_topic, gt_role[1], GT_TYPES)
            self._read_metadata(reader, gt_topic, gt_tf)
        self._match_ground_truth(gt_tf)

    def __len__(self) -> int:
        return len(self.stamps_ns)

    @contextmanager
    def _open(self) -> Iterator[AnyReader]:
        """The open bag, as a context."""
        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag (a rosbag2 folder, .mcap, .db3 or ROS 1 .bag)")
        try:
            reader = AnyReader([self.path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
            reader.open()
        except Exception as exc:  # rosbags raises several types for unreadable files
            raise BagError(f"{self.path}: cannot read the bag ({type(exc).__name__}: {exc})") from None
        try:
            yield reader
        finally:
            reader.close()

    def _listing(self) -> str:
        return ", ".join(f"{n} ({t})" for n, t in sorted(self.topics.items())) or "no topics"

    def _topic(self, name: str, role: str, types: tuple[str, ...]) -> str:
        """The bag's topic ``name`` (a missing leading / is added), checked against ``types``."""
        found = name if name in self.topics else "/" + name.lstrip("/")
        if found not in self.topics:
            raise BagError(f"{self.path}: no topic '{name}' ({role}); the bag has: {self._listing()}")
        if self.topics[found] not in types:
            raise BagError(f"{self.path}: topic '{found}' is {self.topics[found]}, but {role} must "
                           f"be {' or '.join(types)}")
        return found

    def _image_topic(self, name: str | None) -> str:
        if name is not None:
            return self._topic(name, "--image-topic", (IMAGE, COMPRESSED))
        images = sorted(n for n, t in self.topics.items()
                        if t in (IMAGE, COMPRESSED) and n != self.depth_topic)
        if len(images) != 1:
            raise BagError(f"{self.path}: {len(images)} image topics ({', '.join(images) or 'none'}): "
                           f"choose one with --image-topic; the bag has: {self._listing()}")
        return images[0]

    def _read_metadata(self, reader: AnyReader, gt_topic: str | None,
                       gt_tf: tuple[str, str] | None) -> None:
        """One pass over all but the image pixels: image stamps, cameras, ground truth."""
        tf_topics = [n for n, t in self.topics.items() if t == TF_MESSAGE] if gt_tf else []
        wanted = {self.image_topic, self.camera_info_topic, gt_topic, self.depth_topic, *tf_topics}
        stamps, infos, gt, depth_stamps = [], [], [], []
        self._tree = TransformTree(max_extrapolation_ns=round(self.max_dt * 1e9))
        for conn, _, raw in reader.messages([c for c in reader.connections if c.topic in wanted]):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == self.image_topic:
                stamps.append(stamp_ns(msg.header))
            elif conn.topic == self.depth_topic:
                depth_stamps.append(stamp_ns(msg.header))
            elif conn.topic == self.camera_info_topic:
                infos.append((stamp_ns(msg.header), self._camera(msg)))
            elif conn.topic == gt_topic:
                gt.append((stamp_ns(msg.header), _pose_of(msg, conn.msgtype)))
            else:
                static = conn.topic.endswith("tf_static")
                for tf in msg.transforms:
                    try:
                        self._tree.add(tf.header.frame_id, tf.child_frame_id,
                                       pose_from_transform(tf.transform),
                                       None if static else stamp_ns(tf.header))
                    except TransformError as exc:
                        raise BagError(f"{self.path}: {conn.topic}: {exc}") from None
        if not stamps:
            raise BagError(f"{self.path}: image topic '{self.image_topic}' has no messages")
        if not infos:
            raise BagError(f"{self.path}: camera_info topic '{self.camera_info_topic}' has no messages")
        if gt_tf and not {*gt_tf} <= set(self._tree.frames()):
            raise BagError(f"{self.path}: no transform {gt_tf[0]} -> {gt_tf[1]} on "
                           f"{', '.join(tf_topics) or 'any TF topic'}; transforms in the bag: "
                           f"{', '.join(f'{p}:{c}' for p, c in self._tree.edges()) or 'none'}")
        self.stamps_ns = np.array(stamps, dtype=np.int64)
        # per image the index of its depth message among the depth topic's, -1 for none
        self._depth_of = associate(self.stamps_ns, np.array(depth_stamps, dtype=np.int64), DEPTH_MAX_DT_S)
        if self.depth_topic and not (self._depth_of >= 0).any():
            raise BagError(f"{self.path}: no image stamp of {self.image_topic} ({_span(self.stamps_ns)}) "
                           f"has a depth stamp of {self.depth_topic} ({_span(depth_stamps)}) within "
                           f"{DEPTH_MAX_DT_S:g} s: --depth-topic must carry depth registered to the "
                           f"images, with their stamps")
        infos.sort(key=lambda item: item[0])
        self._info_stamps = np.array([s for s, _ in infos], dtype=np.int64)
        self._cameras = [camera for _, camera in infos]
        self._gt = gt
        if all(isinstance(camera, CameraError) for camera in self._cameras):
            raise BagError(f"{self.path}: {self.camera_info_topic}: {self._cameras[0]}")

    def _camera(self, msg) -> Camera | CameraError:
        """The Camera of a CameraInfo message, or the CameraError that says why it is unusable."""
        try:
            return camera_from_info(msg, rectified=self.rectified)
        except CameraError as exc:
            return exc

    def _match_ground_truth(self, gt_tf: tuple[str, str] | None) -> None:
        """self.map_from_cam: per image a 4x4 pose or None."""
        if gt_tf:
            self.map_from_cam = [self._tree.lookup(*gt_tf, int(ns))
                                 if self._tree.can_transform(*gt_tf, int(ns)) else None
                                 for ns in self.stamps_ns]
            gt_stamps = []
        else:
            gt_stamps = [s for s, _ in self._gt]
            idx = associate(self.stamps_ns, np.array(gt_stamps, dtype=np.int64), self.max_dt)
            self.map_from_cam = [self._gt[i][1] if i >= 0 else None for i in idx]
        self.n_matched = sum(T is not None for T in self.map_from_cam)
        if self.gt_source and self.n_matched == 0:
            why = (f"a {self._gt_word} stamp of {self.gt_source} ({_span(gt_stamps)}) within "
                   f"{self.max_dt:g} s (--max-dt)" if not gt_tf else
                   f"a {self._gt_word} of {self.gt_source}: {self._why_not(gt_tf, int(self.stamps_ns[0]))}")
            raise BagError(f"{self.path}: no image stamp of {self.image_topic} "
                           f"({_span(self.stamps_ns)}) has {why}")

    def _why_not(self, gt_tf: tuple[str, str], ns: int) -> str:
        try:
            self._tree.lookup(*gt_tf, ns)
        except TransformError as exc:
            return str(exc)
        return "ok"

    def _camera_for(self, ns: int, image: np.ndarray) -> Camera:
        """The Camera of the CameraInfo with stamp ``ns``, else the latest before it, else the
        first; BagError when it is unusable or does not fit the image."""
        i = max(int(np.searchsorted(self._info_stamps, ns, side="right")) - 1, 0)
        camera = self._cameras[i]
        try:
            if isinstance(camera, CameraError):
                raise camera
            camera.check_image(image)
        except CameraError as exc:
            raise BagError(f"{self.path}: {self.camera_info_topic} at {ns / 1e9:.3f} s: {exc}") from None
        return camera

    def frames(self, *, only_with_gt: bool = False) -> Iterator[BagFrame]:
        """BagFrames in bag order; ``only_with_gt`` skips (without decoding) images that have
        no ground truth. An image whose depth comes later in the bag waits for it."""
        topics = {self.image_topic, self.depth_topic}
        wanted = [not (only_with_gt and T is None) for T in self.map_from_cam]
        last_use = {int(d): i for i, d in enumerate(self._depth_of) if d >= 0 and wanted[i]}
        with self._open() as reader:
            conns = [c for c in reader.connections if c.topic in topics]
            waiting: deque[tuple[int, object, bytes]] = deque()  # images, oldest first
            depths: dict[int, tuple[object, bytes]] = {}        # depth index -> message
            n_images = n_depths = 0
            for conn, _, raw in reader.messages(conns):
                if conn.topic == self.image_topic:
                    if wanted[n_images]:
                        waiting.append((n_images, conn, raw))
                    n_images += 1
                else:
                    if n_depths in last_use:
                        depths[n_depths] = (conn, raw)
                    n_depths += 1
                while waiting and (self._depth_of[waiting[0][0]] < 0
                                   or self._depth_of[waiting[0][0]] in depths):
                    yield self._frame(reader, *waiting.popleft(), depths, last_use)

    def _frame(self, reader: AnyReader, i: int, conn, raw: bytes, depths: dict, last_use: dict
               ) -> BagFrame:
        """The BagFrame of image ``i`` (its message ``raw`` on ``conn``) and the depth in
        ``depths`` it pairs with (dropped from ``depths`` after its last image)."""
        ns = int(self.stamps_ns[i])
        where = f"{self.path}: {self.image_topic} at {ns / 1e9:.3f} s"
        try:
            image = decode_image(reader.deserialize(raw, conn.msgtype), conn.msgtype)
        except BagError as exc:
            raise BagError(f"{where}: {exc}") from None
        depth, d = None, int(self._depth_of[i])
        if d in depths:
            depth_conn, depth_raw = depths.pop(d) if last_use[d] == i else depths[d]
            try:
                depth = decode_depth(reader.deserialize(depth_raw, depth_conn.msgtype))
            except ImageError as exc:
                raise BagError(f"{self.path}: {self.depth_topic} at {ns / 1e9:.3f} s: {exc}") from None
            if depth.shape != image.shape[:2]:
                raise BagError(f"{where}: its depth on {self.depth_topic} is {depth.shape[1]}x"
                               f"{depth.shape[0]} but the image is {image.shape[1]}x{image.shape[0]} "
                               f"(the depth must be registered to the image, e.g. "
                               f"aligned_depth_to_color)")
        return BagFrame(ns / 1e9, image, self._camera_for(ns, image), self.map_from_cam[i], depth)


def _camera_info_beside(image_topic: str) -> str:
    """``/ns/image_raw[/compressed]`` -> ``/ns/camera_info`` (image_transport's convention)."""
    base = image_topic.removesuffix("/compressed")
    return base.rsplit("/", 1)[0] + "/camera_info"


def _span(stamps_ns) -> str:
    """"a–b s" range of stamps in nanoseconds, or "none"."""
    if len(stamps_ns) == 0:
        return "none"
    return f"{min(stamps_ns) / 1e9:.3f}–{max(stamps_ns) / 1e9:.3f} s"
