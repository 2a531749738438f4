"""bag: scene folder -> rosbag2 -> frames round trip, stamp association, image decoding, ROS 1
bags, one-line errors for bad bags, and `marepo-ros eval` on a bag against the folder eval."""
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag1 import Writer as Writer1
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from marepo_ros import cli
from marepo_ros.io.bag import (BagError, BagFrames, associate, decode_image, export_bag, parse_gt_tf,
                            scene_stamps)
from marepo_ros.geometry import quat_from_pose
from marepo_ros.io.dataset import SceneDataset, read_image
from marepo_ros.synthetic.folders import write_scene_folder
from marepo_ros.synthetic.scene import random_scene

TS = get_typestore(Stores.ROS2_JAZZY)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """{"jpg": colour JPEG scene, "png": grey PNG scene}, 6 frames of 64x48 each."""
    root = tmp_path_factory.mktemp("scenes")
    return {ext: SceneDataset(write_scene_folder(random_scene(11), root / ext, n_mapping=4, n_query=2,
                                                 seed=2, width=64, height=48, with_depth=False,
                                                 grey=ext == "png", image_ext=f".{ext}"))
            for ext in ("jpg", "png")}


@pytest.fixture(scope="module")
def bag(scenes, tmp_path_factory):
    """A raw sqlite3 bag of the colour scene."""
    out = tmp_path_factory.mktemp("bags") / "raw"
    export_bag(scenes["jpg"], out, progress=False)
    return out


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_round_trip_keeps_images_intrinsics_poses(scenes, tmp_path, ext, compressed, storage):
    dataset = scenes[ext]
    assert export_bag(dataset, tmp_path / "b", split="all", compressed=compressed, storage=storage,
                      progress=False) == 6
    for gt in (dict(gt_topic="/camera/pose"), dict(gt_tf=("map", "camera_optical_frame"))):
        frames = list(BagFrames(tmp_path / "b", **gt).frames())
        assert len(frames) == 6
        for fr, src in zip(frames, dataset.frames("all")):
            assert fr.image.ndim == (2 if ext == "png" else 3)      # grey stays mono8
            assert np.array_equal(fr.image, src.load_image())
            assert np.array_equal(fr.camera.K, dataset.K)
            assert np.allclose(fr.map_from_cam, src.map_from_cam, atol=1e-8)
    stamps = np.array([fr.stamp for fr in frames])
    assert np.allclose(stamps, np.arange(6) / 30.0)


def test_compressed_carries_the_source_jpeg_bytes(scenes, tmp_path):
    export_bag(scenes["jpg"], tmp_path / "b", split="query", compressed=True, progress=False)
    with AnyReader([tmp_path / "b"]) as reader:
        msgs = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                if c.topic == "/camera/image_raw/compressed"]
    query = scenes["jpg"].frames("query")
    assert [m.format for m in msgs] == ["jpeg"] * len(query)
    assert all(bytes(m.data) == fr.image_path.read_bytes() for m, fr in zip(msgs, query))


def test_split_keeps_its_stamps(scenes):
    ds = scenes["jpg"]
    names = ds.split_names("query")
    assert list(scene_stamps(ds, names, 10.0)) == [ds.names.index(n) * 10**8 for n in names]


def test_associate_nearest_within_tolerance():
    ref = np.array([0, 100, 100, 200, 400]) * 10**6          # ns; 100 ms twice
    query = np.array([0, 49, 50, 51, 99, 150, 301, 600]) * 10**6
    # 50 is a tie between 0 and 100: the earlier wins; equal stamps: the first (index 1)
    assert associate(query, ref, 0.06).tolist() == [0, 0, 0, 1, 1, 1, -1, -1]
    assert associate(query, ref, 0.2).tolist() == [0, 0, 0, 1, 1, 1, 4, 4]
    assert associate(query, ref[[4, 3, 0]], 0.02).tolist() == [2, -1, -1, -1, -1, -1, -1, -1]
    assert associate(query, np.array([], dtype=np.int64), 1.0).tolist() == [-1] * 8


def rewrite(src: Path, dst: Path, *, drop=(), edit=None, extra=()) -> Path:
    """Copy a rosbag2 without the topics in ``drop``; ``edit(topic, msg)`` returns the message
    to write; ``extra``: (topic, msgtype, stamp ns, msg) added, or with msg None an empty topic."""
    with AnyReader([src]) as reader, Writer(dst, version=9) as writer:
        conns = {c.topic: writer.add_connection(c.topic, c.msgtype, typestore=TS)
                 for c in reader.connections if c.topic not in drop}
        for c, ns, raw in reader.messages():
            if c.topic in conns:
                msg = reader.deserialize(raw, c.msgtype)
                writer.write(conns[c.topic], ns, TS.serialize_cdr(edit(c.topic, msg) if edit else msg, c.msgtype))
        for topic, msgtype, ns, msg in extra:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=TS)
            if msg is not None:
                writer.write(conns[topic], ns, TS.serialize_cdr(msg, msgtype))
    return dst


def shift_stamp(msg, seconds: int):
    stamp = replace(msg.header.stamp, sec=msg.header.stamp.sec + seconds)
    return replace(msg, header=replace(msg.header, stamp=stamp))


def header(ns: int, frame_id: str):
    g = TS.types
    return g["std_msgs/msg/Header"](stamp=g["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                    frame_id=frame_id)


def odometry(ns: int, T: np.ndarray):
    """nav_msgs/Odometry map -> cam carrying the pose T."""
    g = TS.types
    t, q = quat_from_pose(T)
    zero = g["geometry_msgs/msg/Vector3"](0.0, 0.0, 0.0)
    pose = g["geometry_msgs/msg/Pose"](position=g["geometry_msgs/msg/Point"](*t),
                                       orientation=g["geometry_msgs/msg/Quaternion"](*q))
    return g["nav_msgs/msg/Odometry"](
        header=header(ns, "map"), child_frame_id="cam",
        pose=g["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
        twist=g["geometry_msgs/msg/TwistWithCovariance"](
            twist=g["geometry_msgs/msg/Twist"](linear=zero, angular=zero), covariance=np.zeros(36)))


def static_tf(T: np.ndarray):
    """tf2_msgs/TFMessage with the one transform map -> cam."""
    g = TS.types
    t, q = quat_from_pose(T)
    tf = g["geometry_msgs/msg/Transform"](translation=g["geometry_msgs/msg/Vector3"](*t),
                                          rotation=g["geometry_msgs/msg/Quaternion"](*q))
    return g["tf2_msgs/msg/TFMessage"](transforms=[g["geometry_msgs/msg/TransformStamped"](
        header=header(0, "map"), child_frame_id="cam", transform=tf)])


def test_gt_from_odometry_and_tf_static(bag, scenes, tmp_path):
    ds = scenes["jpg"]
    poses = [fr.map_from_cam for fr in ds.frames("all")]
    odom = [("/odom", "nav_msgs/msg/Odometry", int(ns), odometry(int(ns), T))
            for ns, T in zip(scene_stamps(ds, ds.names), poses)]
    b = rewrite(bag, tmp_path / "b", drop=("/camera/pose", "/tf"),
                extra=[*odom, ("/tf_static", "tf2_msgs/msg/TFMessage", 0, static_tf(poses[2]))])
    from_odom = BagFrames(b, gt_topic="odom")          # the leading / is optional
    assert from_odom.n_matched == 6
    assert all(np.allclose(p, T, atol=1e-8) for p, T in zip(from_odom.map_from_cam, poses))
    static = BagFrames(b, gt_tf=parse_gt_tf("/map:cam"))  # static: every image, any stamp
    assert static.n_matched == 6 and all(np.allclose(p, poses[2]) for p in static.map_from_cam)


def test_gt_tf_chains_a_robot_tree_and_matches_the_pose_topic(scenes, tmp_path):
    """A bag recorded as robots record (``--tf-tree``: map -> odom drifting at 2 Hz on stamps of
    its own, odom -> base_link per image, static mount and optical rotation): the chained,
    interpolated map -> optical frame equals the pose topic at every image stamp."""
    ds = scenes["jpg"]
    out = tmp_path / "tree.mcap"
    export_bag(ds, out, storage="mcap", tf_tree=True, progress=False)
    by_topic = BagFrames(out, gt_topic="/camera/pose")
    by_tree = BagFrames(out, gt_tf=parse_gt_tf("map:camera_optical_frame"))
    assert by_tree.n_matched == by_topic.n_matched == 6
    for T, want in zip(by_tree.map_from_cam, by_topic.map_from_cam):
        np.testing.assert_allclose(T, want, atol=1e-9)
    odom = BagFrames(out, gt_tf=parse_gt_tf("odom:camera_optical_frame"))   # a part of the tree
    assert not np.allclose(odom.map_from_cam[3], by_topic.map_from_cam[3], atol=1e-3)
    with pytest.raises(BagError, match="transforms in the bag: .*odom:base_link"):
        BagFrames(out, gt_tf=parse_gt_tf("map:camera_color_optical_frame"))


def test_ros1_bag(scenes, tmp_path):
    ts1 = get_typestore(Stores.ROS1_NOETIC)
    ts1.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms", "tf2_msgs/msg/TFMessage"))
    g = ts1.types
    ds = scenes["jpg"]
    path = tmp_path / "cam.bag"
    with Writer1(path) as writer:
        conns = {t: writer.add_connection(t, m, typestore=ts1) for t, m in (
            ("/cam/image_raw", "sensor_msgs/msg/Image"), ("/cam/camera_info", "sensor_msgs/msg/CameraInfo"),
            ("/tf", "tf2_msgs/msg/TFMessage"))}
        for i, fr in enumerate(ds.frames("all")):
            ns = 10**9 + i * 10**8
            head = lambda frame: g["std_msgs/msg/Header"](  # noqa: E731
                seq=i, stamp=g["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame)
            px = fr.load_image()[..., ::-1].copy()
            image = g["sensor_msgs/msg/Image"](header=head("cam"), height=48, width=64, encoding="bgr8",
                                               is_bigendian=0, step=192, data=px.reshape(-1))
            info = g["sensor_msgs/msg/CameraInfo"](
                header=head("cam"), height=48, width=64, distortion_model="plumb_bob", D=np.zeros(5),
                K=ds.K.reshape(-1), R=np.eye(3).reshape(-1), P=np.zeros(12), binning_x=0, binning_y=0,
                roi=g["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                          do_rectify=False))
            t, q = quat_from_pose(fr.map_from_cam)
            tf = g["geometry_msgs/msg/TransformStamped"](
                header=head("/map"), child_frame_id="/cam", transform=g["geometry_msgs/msg/Transform"](
                    translation=g["geometry_msgs/msg/Vector3"](*t), rotation=g["geometry_msgs/msg/Quaternion"](*q)))
            for topic, msg in (("/cam/image_raw", image), ("/cam/camera_info", info),
                               ("/tf", g["tf2_msgs/msg/TFMessage"](transforms=[tf]))):
                writer.write(conns[topic], ns, ts1.serialize_ros1(msg, conns[topic].msgtype))
    frames = list(BagFrames(path, gt_tf=parse_gt_tf("map:cam")).frames())
    assert [round(f.stamp, 3) for f in frames] == [1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    for fr, src in zip(frames, ds.frames("all")):
        assert np.array_equal(fr.image, src.load_image()) and np.array_equal(fr.camera.K, ds.K)
        assert np.allclose(fr.map_from_cam, src.map_from_cam, atol=1e-8)


def test_decode_image_encodings():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    rgb8 = px[..., :3]

    def msg(encoding, data, big=0, pad=0):
        rows = data.reshape(5, -1)
        rows = np.hstack([rows, np.zeros((5, pad), np.uint8)])
        return SimpleNamespace(encoding=encoding, height=5, width=7, is_bigendian=big,
                               step=rows.shape[1], data=rows.reshape(-1))

    image = "sensor_msgs/msg/Image"
    assert np.array_equal(decode_image(msg("rgb8", rgb8, pad=3), image), rgb8)
    assert np.array_equal(decode_image(msg("bgr8", rgb8[..., ::-1].copy()), image), rgb8)
    assert np.array_equal(decode_image(msg("rgba8", px), image), rgb8)
    assert np.array_equal(decode_image(msg("bgra8", px[..., [2, 1, 0, 3]].copy()), image), rgb8)
    assert np.array_equal(decode_image(msg("mono8", px[..., 0].copy()), image), px[..., 0])
    grey16 = px[..., 0].astype(np.uint16) * 257
    for big in (0, 1):
        data = grey16.astype(">u2" if big else "<u2").view(np.uint8)
        assert np.array_equal(decode_image(msg("mono16", data, big), image), px[..., 0])
    with pytest.raises(BagError, match="encoding '32FC1' is not supported .*rgb8, bgr8"):
        decode_image(msg("32FC1", px), image)


def test_scene_files_and_compressed_messages_decode_alike(tmp_path):
    """One image convention: HxWx3 RGB or HxW grey uint8 from a file and from its bytes."""
    rng = np.random.default_rng(1)
    bgra = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    grey16 = rng.integers(0, 256, (5, 7)).astype(np.uint16) * 257
    for name, raw, want in (("c.png", bgra[..., :3], bgra[..., 2::-1]), ("a.png", bgra, bgra[..., 2::-1]),
                            ("g.png", grey16, (grey16 // 257).astype(np.uint8))):
        cv2.imwrite(str(tmp_path / name), raw)
        from_file = read_image(tmp_path / name)
        msg = SimpleNamespace(format="png", data=(tmp_path / name).read_bytes())
        assert np.array_equal(from_file, want) and from_file.dtype == np.uint8
        assert np.array_equal(decode_image(msg, "sensor_msgs/msg/CompressedImage"), from_file)


@pytest.mark.parametrize("case, kwargs, match", [
    ("missing topic", dict(image_topic="/nope"),
     r"no topic '/nope' \(--image-topic\); the bag has: /camera/camera_info \(sensor_msgs/msg/CameraInfo\)"),
    ("wrong type", dict(gt_topic="/camera/camera_info"),
     r"topic '/camera/camera_info' is sensor_msgs/msg/CameraInfo, but --gt-topic must be geometry_msgs/msg/PoseStamped or"),
    ("no camera_info", dict(drop=("/camera/camera_info",)), r"no topic '/camera/camera_info' \(camera_info, see --camera-info-topic\)"),
    ("empty camera_info", dict(drop=("/camera/camera_info",), extra=[
        ("/camera/camera_info", "sensor_msgs/msg/CameraInfo", 0, None)]), r"camera_info topic '/camera/camera_info' has no messages"),
    ("stamps never match", dict(gt_topic="/camera/pose", edit=lambda t, m: shift_stamp(m, 100) if t == "/camera/pose" else m),
     r"no image stamp of /camera/image_raw \(0.000–0.167 s\) has a ground truth stamp of /camera/pose "
     r"\(100.000–100.167 s\) within 0.02 s"),
    ("empty gt topic", dict(gt_topic="/camera/pose", drop=("/camera/pose",), extra=[
        ("/camera/pose", "geometry_msgs/msg/PoseStamped", 0, None)]), r"ground truth stamp of /camera/pose \(none\)"),
    ("no images", dict(drop=("/camera/image_raw",), extra=[("/camera/image_raw", "sensor_msgs/msg/Image", 0, None)]),
     r"image topic '/camera/image_raw' has no messages"),
    ("no such tf", dict(gt_tf=("map", "base_link")), r"no transform map -> base_link on /tf; transforms in the bag: map:camera_optical_frame"),
    ("no such bag", dict(path="missing"), r"no such bag"),
    ("not a bag", dict(path="folder"), r"cannot read the bag"),
])
def test_bad_bags_give_one_line_messages(bag, tmp_path, case, kwargs, match):
    path = bag
    if any(k in kwargs for k in ("drop", "edit", "extra")):
        path = rewrite(bag, tmp_path / "b", **{k: kwargs.pop(k) for k in ("drop", "edit", "extra") if k in kwargs})
    if "path" in kwargs:
        path = tmp_path / kwargs.pop("path")
        if path.name == "folder":
            path.mkdir()
    with pytest.raises(BagError, match=match) as err:
        BagFrames(path, **kwargs)
    assert "\n" not in str(err.value)


def test_eval_on_a_bag_matches_the_folder_eval(tmp_path, capsys):
    scene = write_scene_folder(random_scene(11), tmp_path / "scene", n_mapping=16, n_query=6, seed=2,
                               width=160, height=120, image_ext=".jpg", with_depth=False)
    assert cli.main(["map", "build", str(scene), "--out", str(tmp_path / "s.map"), "--epochs", "2",
                     "--short-side", "120"]) == 0
    bag_path = tmp_path / "query_bag"
    assert cli.main(["bag", "export", str(scene), "--split", "query", "--compressed", "--storage", "mcap",
                     "--out", str(bag_path)]) == 0
    assert "--image-topic /camera/image_raw/compressed --gt-topic /camera/pose" in capsys.readouterr().out
    common = ["--map", str(tmp_path / "s.map")]
    assert cli.main(["eval", str(scene), *common, "--out", str(tmp_path / "ev_folder")]) == 0
    assert cli.main(["eval", str(bag_path), *common, "--image-topic", "/camera/image_raw/compressed",
                     "--gt-topic", "/camera/pose", "--out", str(tmp_path / "ev_bag")]) == 0
    folder, from_bag = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("ev_folder", "ev_bag"))
    assert from_bag["n_frames"] == folder["n_frames"] == 6
    # the same numbers; the folder's ground truth went through "%.9f" text and the bag's
    # through a quaternion, which moves rotation errors by ~1e-8 deg at these error levels
    for key, value in folder.items():
        if isinstance(value, (int, float)) and key != "ms_per_frame":
            assert from_bag[key] == pytest.approx(value, abs=1e-6), key
    for name in ("estimate.tum", "groundtruth.tum"):
        a, b = (np.loadtxt(tmp_path / d / name) for d in ("ev_folder", "ev_bag"))
        assert np.allclose(a, b, atol=1e-8), name
    assert {"trajectory.png", "error_cdf.png", "error_over_time.png", "report.md"} <= {
        p.name for p in (tmp_path / "ev_bag").iterdir()}
    # the same frames with their ground truth only on a robot's TF tree: the same scores
    tree_bag = tmp_path / "tree_bag"
    assert cli.main(["bag", "export", str(scene), "--split", "query", "--tf-tree", "--storage", "mcap",
                     "--out", str(tree_bag)]) == 0
    assert cli.main(["eval", str(tree_bag), *common, "--gt-tf", "map:camera_optical_frame",
                     "--out", str(tmp_path / "ev_tree")]) == 0
    from_tree = json.loads((tmp_path / "ev_tree/metrics.json").read_text())
    for key, value in from_bag.items():
        if isinstance(value, (int, float)) and key != "ms_per_frame":
            assert from_tree[key] == pytest.approx(value, abs=1e-6), key
    capsys.readouterr()
    # errors on the command line: one line, exit status 2
    assert cli.main(["eval", str(bag_path), *common, "--gt-topic", "/nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no topic '/nope'" in err[0] and "/camera/pose" in err[0]
    assert cli.main(["eval", str(scene), *common, "--gt-topic", "/camera/pose", "--out", str(tmp_path / "x")]) == 2
    assert "not a bag" in capsys.readouterr().err


def test_eval_of_a_distorted_bag_scores_as_its_undistorted_frames(redkitchen, kitchen_map, tmp_path):
    """`eval` of a bag whose images come through a real lens (plumb_bob, a wide-angle webcam's
    D: pixels move up to 60 px) undistorts as the node does: the same frames score as the
    pinhole bag's, and far better than when the lens is ignored (D zeroed: what bag eval did
    before it used CameraInfo's D)."""
    from marepo_ros.camera import Camera
    from marepo_ros.geometry import Distortion
    from marepo_ros.localization.pipeline import Pipeline, PipelineConfig

    scene = tmp_path / "kitchen"                         # 10 real query frames, as a scene folder
    for sub in ("rgb", "poses"):
        (scene / sub).mkdir(parents=True)
    for i in range(150, 160):
        for sub, suffix in (("rgb", "color.jpg"), ("poses", "pose.txt")):
            (scene / sub / f"frame-{i:06d}.{suffix}").symlink_to(redkitchen / sub / f"frame-{i:06d}.{suffix}")
    (scene / "intrinsics.txt").symlink_to(redkitchen / "intrinsics.txt")
    lens = Distortion("plumb_bob", (-0.34, 0.11, -0.0002, -0.00003, 0.0))
    for name, options in (("pinhole", []), ("lens", ["--distortion", "plumb_bob:" + ",".join(map(str, lens.coefficients))])):
        assert cli.main(["bag", "export", str(scene), "--out", str(tmp_path / name), *options]) == 0
        assert cli.main(["eval", str(tmp_path / name), "--map", str(kitchen_map), "--gt-topic", "/camera/pose",
                         "--out", str(tmp_path / f"ev_{name}")]) == 0
    pinhole, lens_eval = (json.loads((tmp_path / f"ev_{n}/metrics.json").read_text()) for n in ("pinhole", "lens"))
    print({k: (pinhole[k], lens_eval[k]) for k in ("median_translation_cm", "pct_5cm_5deg")})
    assert pinhole["pct_5cm_5deg"] >= 80 and abs(lens_eval["pct_5cm_5deg"] - pinhole["pct_5cm_5deg"]) <= 10
    assert lens_eval["median_translation_cm"] < 1.5 * pinhole["median_translation_cm"] + 0.5
    bag = BagFrames(tmp_path / "lens", gt_topic="/camera/pose")
    assert all(fr.camera.distortion == lens for fr in bag.frames())
    pipeline = Pipeline.from_file(kitchen_map, PipelineConfig("points"))
    ignored = [pipeline.localize(fr.image, Camera(fr.camera.K)) for fr in bag.frames()]
    t_ignored = [np.linalg.norm(est.map_from_cam[:3, 3] - fr.map_from_cam[:3, 3]) if est else np.inf
                 for est, fr in zip(ignored, bag.frames())]
    assert np.median(t_ignored) * 100 > 3 * lens_eval["median_translation_cm"]
