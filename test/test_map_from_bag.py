"""`marepo-ros map build BAG`: a bag's posed images become the keyframes the node's mapping
would keep (poses from a topic or chained through TF, depth by stamp), then the folder build's
map; bad input gets one line."""
import numpy as np
import pytest

from marepo_ros import cli
from marepo_ros.camera import Camera
from marepo_ros.geometry import pose_error
from marepo_ros.io.bag import BagFrames, export_bag
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.mapfile import load_map
from marepo_ros.localization.pipeline import Pipeline, PipelineConfig
from marepo_ros.mapping.feature_map import select_keyframes
from marepo_ros.synthetic.folders import write_scene_folder
from marepo_ros.synthetic.scene import random_scene

from test_bag import TS, header, rewrite

TREE = ["--pose-tf", "map:camera_optical_frame"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """(scene folder with depth, its mapping split as a TF-tree bag): 16 + 6 frames of 160x120."""
    root = tmp_path_factory.mktemp("rendered")
    scene = write_scene_folder(random_scene(11), root / "scene", n_mapping=16, n_query=6, seed=2,
                               width=160, height=120, image_ext=".jpg")
    export_bag(SceneDataset(scene), root / "bag", split="mapping", tf_tree=True, progress=False)
    return scene, root / "bag"


def depth_msg(ns: int, depth_m: np.ndarray):
    """sensor_msgs/Image 16UC1 (millimetres) of a depth map in metres."""
    mm = np.round(depth_m * 1000).astype("<u2")
    h, w = mm.shape
    return TS.types["sensor_msgs/msg/Image"](header=header(ns, "camera_optical_frame"), height=h, width=w,
                                             encoding="16UC1", is_bigendian=0, step=2 * w,
                                             data=mm.view(np.uint8).reshape(-1))


def test_depth_by_stamp_and_the_node_keyframes(rendered, tmp_path, capsys):
    """Depth pairs with its image by stamp, also when it comes later in the bag; an image
    without depth keeps its keyframe (triangulated). The keyframes are the node's selection."""
    scene, bag = rendered
    ds = SceneDataset(scene)
    frames = BagFrames(bag, gt_tf=("map", "camera_optical_frame"))
    poses = [fr.map_from_cam for fr in frames.frames()]
    want = select_keyframes(poses, 0.1, 8.0)
    assert 2 < len(want) < 16
    depths = [fr.load_depth() for fr in ds.frames("mapping")]
    late, missing = 10**8, want[-1]      # frame 1's depth logged 0.1 s after its image; one without
    extra = [("/camera/depth", "sensor_msgs/msg/Image", int(ns) + (late if i == 1 else 0), depth_msg(int(ns), d))
             for i, (ns, d) in enumerate(zip(frames.stamps_ns, depths)) if i != missing]
    with_depth = rewrite(bag, tmp_path / "depth_bag", extra=extra)
    read = list(BagFrames(with_depth, gt_tf=("map", "camera_optical_frame"), depth_topic="/camera/depth").frames())
    assert len(read) == 16 and read[missing].depth is None
    for i, fr in enumerate(read):
        if i != missing:
            np.testing.assert_allclose(fr.depth, depths[i], atol=6e-4)     # mm rounding
    assert cli.main(["map", "build", str(with_depth), *TREE, "--depth-topic", "/camera/depth",
                     "--no-head", "--keyframe-min-translation", "0.1", "--keyframe-min-rotation", "8",
                     "--max-covered", "0", "--out", str(tmp_path / "d.map")]) == 0   # the spacing alone
    err = capsys.readouterr().err
    scene_map = load_map(tmp_path / "d.map")
    fm = scene_map.feature_map
    assert len(fm.map_from_cam_K44) == len(want)
    np.testing.assert_allclose(fm.map_from_cam_K44, np.stack([poses[i] for i in want]), atol=1e-9)
    assert scene_map.stats["feature_map"]["depth"] > 0
    assert f"1 of {len(want)} keyframes have no depth of their stamp on /camera/depth" in err


@pytest.mark.parametrize("argv, match", [
    ([], "mapping a bag needs the camera's poses: --pose-topic TOPIC or --pose-tf PARENT:CHILD"),
    (["--pose-topic", "/nope"], "no topic '/nope' (--pose-topic); the bag has: /camera/camera_info "
                                "(sensor_msgs/msg/CameraInfo), /camera/image_raw"),
    (["--pose-tf", "map:camera_link_x"], "no transform map -> camera_link_x on /tf, /tf_static; "
                                         "transforms in the bag: base_link:camera_link"),
    (["--pose-tf", "map-camera"], "--pose-tf must be PARENT:CHILD"),
    (["--pose-topic", "/camera/pose", "--split", "query"], "--split selects frames of a scene folder"),
])
def test_bad_input_one_line(rendered, tmp_path, capsys, argv, match):
    assert cli.main(["map", "build", str(rendered[1]), *argv, "--no-head", "--out", str(tmp_path / "x.map")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err
    assert not (tmp_path / "x.map").exists()


def test_missing_camera_info_disconnected_tf_and_unposed_images(rendered, tmp_path, capsys):
    scene, bag = rendered
    argv = ["--no-head", "--out", str(tmp_path / "x.map")]
    no_info = rewrite(bag, tmp_path / "no_info", drop=("/camera/camera_info",))
    assert cli.main(["map", "build", str(no_info), *TREE, *argv]) == 2
    assert "no topic '/camera/camera_info' (camera_info, see --camera-info-topic)" in capsys.readouterr().err
    # the mount (base_link -> camera_link) lost: two trees
    def drop_mount(topic, msg):
        if topic != "/tf_static":
            return msg
        return TS.types["tf2_msgs/msg/TFMessage"](transforms=[t for t in msg.transforms if t.child_frame_id != "camera_link"])
    split = rewrite(bag, tmp_path / "split", edit=drop_mount)
    assert cli.main(["map", "build", str(split), *TREE, *argv]) == 2
    err = capsys.readouterr().err
    assert "frames map and camera_optical_frame are not connected (trees rooted at map and camera_link)" in err
    # poses only for the first 10 images: the rest are skipped and counted
    ns = BagFrames(bag, gt_topic="/camera/pose").stamps_ns
    partial = rewrite(bag, tmp_path / "partial", edit=lambda t, m: m if t != "/camera/pose" or
                      m.header.stamp.sec * 10**9 + m.header.stamp.nanosec <= ns[9] else
                      type(m)(header=header(10**12, "map"), pose=m.pose))
    assert cli.main(["map", "build", str(partial), "--pose-topic", "/camera/pose", "--refine-poses",
                     "always", *argv]) == 0
    out = capsys.readouterr()
    assert "of 16 images on /camera/image_raw, skipped: 6 without a pose within 0.02 s" in out.err
    assert "keyframes of 10 images" in out.out
    refinement = load_map(tmp_path / "x.map").stats["feature_map"]["refinement"]     # always: used
    assert refinement["min_gain"] == 0.0 and refinement["applied"] and "refined poses used" in out.out
    assert cli.main(["map", "build", str(scene), "--pose-topic", "/camera/pose", *argv]) == 2
    assert "not a bag" in capsys.readouterr().err
    stray = rewrite(bag, tmp_path / "stray_depth", extra=[("/camera/depth", "sensor_msgs/msg/Image", 10**12,
                                                           depth_msg(10**12, np.ones((120, 160))))])
    assert cli.main(["map", "build", str(stray), *TREE, "--depth-topic", "/camera/depth", *argv]) == 2
    assert "has a depth stamp of /camera/depth (1000.000–1000.000 s) within 0.005 s" in capsys.readouterr().err


KITCHEN_BAG_MAPPING = [f"frame-{i:06d}" for i in range(100, 148)]
KITCHEN_BAG_QUERIES = ["frame-000150", "frame-000153", "frame-000156", "frame-000159"]


def test_tf_bag_maps_as_the_folder(redkitchen, tmp_path, capsys):
    """Real frames: a bag of 48 redkitchen mapping frames whose poses come only through a
    robot's TF tree (map -> drifting odom -> base_link -> camera_link -> optical frame), no
    depth, maps to the keyframes, poses and localization of the folder mapped with --no-depth."""
    scene = tmp_path / "kitchen"
    for sub in ("rgb", "poses", "splits"):
        (scene / sub).mkdir(parents=True)
    for name in KITCHEN_BAG_MAPPING + KITCHEN_BAG_QUERIES:
        for sub, suffix in (("rgb", "color.jpg"), ("poses", "pose.txt")):
            (scene / sub / f"{name}.{suffix}").symlink_to(redkitchen / sub / f"{name}.{suffix}")
    (scene / "intrinsics.txt").symlink_to(redkitchen / "intrinsics.txt")
    (scene / "splits/mapping.txt").write_text("\n".join(KITCHEN_BAG_MAPPING) + "\n")
    (scene / "splits/query.txt").write_text("\n".join(KITCHEN_BAG_QUERIES) + "\n")
    bag = tmp_path / "bag"              # `bag export --tf-tree --compressed`, without /camera/pose
    export_bag(SceneDataset(scene), bag, split="mapping", tf_tree=True, compressed=True,
               pose_topic=False, progress=False)
    assert "/camera/pose" not in BagFrames(bag).topics
    assert cli.main(["map", "build", str(bag), *TREE, "--no-head", "--out", str(tmp_path / "bag.map")]) == 0
    assert cli.main(["map", "build", str(scene), "--no-head", "--no-depth", "--out",
                     str(tmp_path / "folder.map")]) == 0
    capsys.readouterr()
    from_bag, from_folder = (load_map(tmp_path / f"{n}.map").feature_map for n in ("bag", "folder"))
    assert 10 <= len(from_bag.map_from_cam_K44) == len(from_folder.map_from_cam_K44) < 48
    np.testing.assert_allclose(from_bag.map_from_cam_K44, from_folder.map_from_cam_K44, atol=1e-6)
    assert abs(len(from_bag.points_P3) - len(from_folder.points_P3)) <= 0.02 * len(from_folder.points_P3)
    ds = SceneDataset(scene)
    errors = {}
    for n in ("bag", "folder"):
        pipeline = Pipeline.from_file(tmp_path / f"{n}.map", PipelineConfig("points"))
        estimates = [pipeline.localize(fr.load_image(), Camera(ds.K)) for fr in ds.frames("query")]
        errors[n] = [pose_error(est.map_from_cam, fr.map_from_cam) if est else (np.inf, np.inf)
                     for est, fr in zip(estimates, ds.frames("query"))]
    print(errors)
    for (t_bag, r_bag), (t_folder, r_folder) in zip(errors["bag"], errors["folder"]):
        assert t_bag < 0.1 and r_bag < 5 and t_folder < 0.1 and r_folder < 5
        assert abs(t_bag - t_folder) < 0.01 and abs(r_bag - r_folder) < 1
