"""XFeat features, the keyframe feature map (depth lifting, triangulation, retrieval), PnP and
the ``points`` estimator."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import KITCHEN_MAPPING, KITCHEN_QUERIES
from scipy.spatial.transform import Rotation

from marepo_ros.geometry import invert_pose, make_pose, pose_error, project, transform_points
from marepo_ros.io.dataset import SceneDataset
from marepo_ros.io.feature_map import FeatureMap
from marepo_ros.io.mapfile import MapFileError, SceneMap, load_map, save_map
from marepo_ros.localization.registry import make_estimator
from marepo_ros.localization import matching
from marepo_ros.localization.matching import match_points
from marepo_ros.localization.pnp import solve_pnp
from marepo_ros.localization.retrieval import learn_vocabulary, top_k, vlad
from marepo_ros.mapping.feature_map import FeatureMapConfig, build_feature_map, select_keyframes
from marepo_ros.mapping.views import triangulate_rays
from marepo_ros.mapping.frames import PosedImage, posed_images_from_dataset
from marepo_ros.models.xfeat import XFeatExtractor
from marepo_ros.synthetic import paths, raycast, scene as S


@pytest.fixture(scope="module")
def xfeat():
    return XFeatExtractor(top_k=1024)


@pytest.fixture(scope="module")
def kitchen_frames(redkitchen):
    ds = SceneDataset(redkitchen)
    by_name = {fr.name: (im, fr) for im, fr in zip(posed_images_from_dataset(ds, "all"), ds.frames("all"))}
    return ds, by_name


def _random_pose(rng) -> np.ndarray:
    return make_pose(Rotation.from_rotvec(rng.normal(0, 0.3, 3)).as_matrix(), rng.normal(0, 0.5, 3))


def test_xfeat_keypoints_lie_in_the_image_and_descriptors_are_unit(xfeat, kitchen_frames):
    ds, frames = kitchen_frames
    grey = frames[KITCHEN_QUERIES[0]][1].load_image().mean(2).astype(np.uint8)
    f = xfeat.extract(grey)
    assert 500 < len(f.keypoints_N2) <= 1024
    assert (f.keypoints_N2 >= -0.5).all() and (f.keypoints_N2[:, 0] <= 639.5).all()
    assert (f.keypoints_N2[:, 1] <= 479.5).all()
    assert np.allclose(np.linalg.norm(f.descriptors_ND, axis=1), 1, atol=1e-4)
    assert (np.diff(f.scores_N) <= 1e-6).all()           # best first
    assert len(xfeat.extract(np.zeros((480, 640), np.uint8)).keypoints_N2) == 0


def test_extraction_at_a_smaller_short_side_gives_pixels_of_the_input_image(xfeat, kitchen_frames):
    """The same image at 2x and shrunk back to 480: keypoints land at twice the 1x positions."""
    ds, frames = kitchen_frames
    grey = frames[KITCHEN_QUERIES[0]][1].load_image().mean(2).astype(np.uint8)
    big = np.repeat(np.repeat(grey, 2, axis=0), 2, axis=1)
    small, shrunk = xfeat.extract(grey), xfeat.extract(big, short_side=480)
    assert shrunk.dense_1Chw is None and len(shrunk.keypoints_N2) == len(small.keypoints_N2)
    d = np.linalg.norm(shrunk.keypoints_N2[:, None] - (2 * small.keypoints_N2 + 0.5)[None], axis=2)
    assert np.median(d.min(1)) < 0.1


@pytest.mark.parametrize("bf16", [True, False])
def test_nearest_neighbours_give_exact_distances_on_either_path(bf16, monkeypatch):
    """The bf16 product only proposes candidates: distances are the fp32 ones, nearest first."""
    monkeypatch.setattr(matching, "cpu_has_bf16", lambda: bf16)
    rng = np.random.default_rng(5)
    q, m = rng.normal(size=(300, 64)), rng.normal(size=(2000, 64))
    q, m = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (q, m))
    idx, dist = matching.nearest_neighbours(q, m, 8)
    exact = np.linalg.norm(q[:, None] - m[idx], axis=2)
    assert np.allclose(dist, exact, atol=1e-5) and (np.diff(dist, axis=1) >= 0).all()
    true_nn = np.argmin(np.linalg.norm(q[:, None] - m[None], axis=2), axis=1)
    assert (idx[:, 0] == true_nn).mean() > 0.99


def test_rays_meet_at_the_point_they_were_cast_from():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (50, 3)) + [0, 0, 5]
    centres = np.stack([np.zeros(3), [0.5, 0.1, 0], [-0.3, 0.2, 0.1]])
    rays = X[:, None] - centres[None]
    rays /= np.linalg.norm(rays, axis=2, keepdims=True)
    used = np.ones((50, 3), bool)
    used[:10, 2] = False                                   # some points seen twice only
    used[40:, 1:] = False                                  # ... and some once: no point
    pts = triangulate_rays(np.broadcast_to(centres, rays.shape), rays, used)
    assert np.allclose(pts[:40], X[:40], atol=1e-6) and np.isnan(pts[40:]).all()


def test_pnp_recovers_a_skewed_camera_among_outliers():
    rng = np.random.default_rng(1)
    K = np.array([[500.0, 4.0, 320], [0, 520, 240], [0, 0, 1]])
    map_from_cam = _random_pose(rng)
    X_cam = rng.uniform(-1.5, 1.5, (300, 3)) + [0, 0, 4]
    pixels = project(K, X_cam)
    pixels[:90] += rng.uniform(-80, 80, (90, 2))            # 30 % wrong matches
    result = solve_pnp(transform_points(map_from_cam, X_cam), pixels, K, threshold_px=3.0)
    t_err, r_err = pose_error(result.map_from_cam, map_from_cam)
    assert t_err < 1e-3 and r_err < 0.05
    assert result.inliers_N[90:].all() and result.inliers_N[:90].mean() < 0.1
    assert result.covariance.shape == (6, 6) and np.all(np.linalg.eigvalsh(result.covariance) > -1e-12)
    assert solve_pnp(X_cam[:3], pixels[:3], K) is None


def test_ratio_test_counts_a_point_seen_by_several_keyframes_once():
    rng = np.random.default_rng(2)
    desc = rng.normal(size=(6, 64)).astype(np.float32)
    desc /= np.linalg.norm(desc, axis=1, keepdims=True)
    # map: point 0 seen twice (near-identical descriptors, same 3D point), points 1..5 once
    map_desc = np.concatenate([desc[:1], desc[:1] + 0.01, desc[1:]])
    map_desc /= np.linalg.norm(map_desc, axis=1, keepdims=True)
    points = np.concatenate([np.zeros((2, 3)), rng.uniform(1, 2, (5, 3))])
    query = desc[:1] + 0.05 * rng.normal(size=(1, 64)).astype(np.float32)
    qi, mi = match_points(query / np.linalg.norm(query), map_desc, points)
    assert qi.tolist() == [0] and mi[0] in (0, 1)
    far = points.copy()
    far[1] = [5, 5, 5]                                      # the twin is elsewhere: ambiguous
    assert len(match_points(query / np.linalg.norm(query), map_desc, far)[0]) == 0


def test_vlad_retrieves_the_image_itself(xfeat, kitchen_frames):
    ds, frames = kitchen_frames
    feats = [xfeat.extract(frames[n][1].load_image().mean(2).astype(np.uint8)).descriptors_ND
             for n in KITCHEN_MAPPING[::4]]
    vocabulary = learn_vocabulary(np.concatenate(feats), 16)
    database = np.stack([vlad(f, vocabulary) for f in feats])
    assert np.allclose(np.linalg.norm(database, axis=1), 1, atol=1e-5)
    for i, f in enumerate(feats):
        assert top_k(vlad(f[::2], vocabulary), database, 1)[0] == i
    with pytest.raises(ValueError, match="at least 16 descriptors"):
        learn_vocabulary(feats[0][:5], 16)


def test_triangulated_points_lie_on_the_rendered_surfaces(xfeat):
    """Without depth, keypoints are triangulated across keyframes: compare with exact depth."""
    scene = S.random_scene(11)
    K = paths.default_intrinsics(320, 240)
    poses = paths.random_camera_path(scene, 24, 3, step_m=0.08)
    views = [raycast.render(scene, K, T, 320, 240) for T in poses]
    images = [PosedImage(lambda rgb=rgb: rgb, K, T) for (rgb, _), T in zip(views, poses)]
    fm, stats = build_feature_map(images, xfeat, FeatureMapConfig(top_k=1024))
    assert stats["depth"] == 0 and stats["triangulated"] == fm.n_points > 2000
    assert fm.short_side == 240            # extracted at full size, and says so (queries follow)
    relative = []
    for k, (rgb, depth) in enumerate(views):
        sl = slice(fm.offsets_K1[k], fm.offsets_K1[k + 1])
        cam = transform_points(invert_pose(poses[k]), fm.points_P3[sl].astype(np.float64))
        uv = np.rint(fm.keypoints_P2[sl]).astype(int)
        true_z = depth[uv[:, 1], uv[:, 0]]
        relative.append(np.abs(cam[:, 2] - true_z) / true_z)
    relative = np.concatenate(relative)
    print(f"triangulated depth error: median {100 * np.median(relative):.1f} %, 90th percentile "
          f"{100 * np.quantile(relative, 0.9):.1f} % of the depth over {len(relative)} points")
    # 320x240 (f = 262 px), baselines of 0.1-0.6 m at 1-4 m: ~1 px of matching noise is a few %
    assert np.median(relative) < 0.05 and np.quantile(relative, 0.9) < 0.2


def test_mapping_that_cannot_triangulate_says_why(xfeat):
    scene = S.random_scene(12)
    K = paths.default_intrinsics(320, 240)
    T = paths.random_camera_path(scene, 1, 0)[0]
    rgb, _ = raycast.render(scene, K, T, 320, 240)
    turned = T.copy()
    turned[:3, :3] = T[:3, :3] @ Rotation.from_euler("y", 8, degrees=True).as_matrix()
    rgb2, _ = raycast.render(scene, K, turned, 320, 240)
    rotation_only = [PosedImage(lambda: rgb, K, T), PosedImage(lambda: rgb2, K, turned)]
    with pytest.raises(ValueError, match="must move, not only rotate"):
        build_feature_map(rotation_only, xfeat)
    with pytest.raises(ValueError, match="must move, not only rotate"):
        build_feature_map(rotation_only[:1], xfeat)


def test_keyframe_selection_by_pose():
    poses = [make_pose(np.eye(3), [0.0101 * i, 0, 0]) for i in range(20)]
    assert select_keyframes(poses, 0.05, 90) == [0, 5, 10, 15]
    assert select_keyframes(poses, 0.0, 0.0) == list(range(20))


def test_points_estimator_localizes_real_frames_from_a_map_file(kitchen_frames, xfeat, tmp_path):
    """Feature map of 25 real frames with depth, saved without a head, loaded, localizes queries."""
    ds, frames = kitchen_frames
    images = [frames[n][0] for n in KITCHEN_MAPPING]
    fm, stats = build_feature_map(images, XFeatExtractor(),
                                  FeatureMapConfig(min_translation_m=0.0, min_rotation_deg=0.0))
    assert stats["depth"] == fm.n_points and stats["keyframes"] == 25
    assert fm.short_side == 360            # with depth, keyframes are extracted at 360 px
    path = tmp_path / "points.map"
    save_map(SceneMap(head=None, encoder_id="", short_side=480, feature_map=fm), path)
    scene_map = load_map(path)
    assert scene_map.head is None and scene_map.feature_map.n_points == fm.n_points
    assert np.array_equal(scene_map.feature_map.descriptors_PD, fm.descriptors_PD)
    estimator = make_estimator("points", scene_map=scene_map)
    for name in KITCHEN_QUERIES:
        frame = frames[name][1]
        est = estimator.localize(frame.load_image(), ds.K)
        t_err, r_err = pose_error(est.map_from_cam, frame.map_from_cam)
        print(f"{name}: {100 * t_err:.1f} cm, {r_err:.2f} deg, {est.n_inliers} inliers, "
              f"{ {k: round(v) for k, v in est.timings_ms.items()} }")
        assert t_err < 0.05 and r_err < 2.0 and est.confidence > 0.5
    assert estimator.localize(np.zeros((480, 640, 3), np.uint8), ds.K) is None
    with pytest.raises(ValueError, match="needs a map with a scene-coordinate head"):
        make_estimator("ransac", scene_map=scene_map)


def test_feature_map_round_trip_and_damaged_arrays():
    rng = np.random.default_rng(3)
    fm = FeatureMap(map_from_cam_K44=np.stack([np.eye(4)] * 2), K_K33=np.stack([np.eye(3)] * 2),
                    image_size_K2=np.array([[640, 480]] * 2, np.int32),
                    global_KG=rng.normal(size=(2, 8)).astype(np.float32),
                    vocabulary_CD=rng.normal(size=(2, 4)).astype(np.float32),
                    offsets_K1=np.array([0, 3, 5]), keypoints_P2=rng.uniform(0, 9, (5, 2)).astype(np.float32),
                    descriptors_PD=rng.integers(-127, 128, (5, 4)).astype(np.int8),
                    points_P3=rng.normal(size=(5, 3)).astype(np.float32),
                    source_P=np.array([0, 0, 1, 1, 1], np.uint8), extractor="xfeat", extractor_id="abc")
    back = FeatureMap.from_dict(fm.to_dict())
    assert back.short_side == 0                             # full-size extraction
    fm.short_side = 360
    assert FeatureMap.from_dict(fm.to_dict()).short_side == 360
    assert back.source_counts() == {"depth": 2, "triangulated": 3, "head": 0}
    assert np.array_equal(back.keyframe_of_points(), [0, 0, 0, 1, 1])
    broken = fm.to_dict()
    broken["points_P3"] = broken["points_P3"][:4]
    with pytest.raises(ValueError, match="disagree"):
        FeatureMap.from_dict(broken)


def test_old_map_files_load_without_a_feature_map(kitchen_map, tmp_path, monkeypatch):
    import marepo_ros.io.mapfile as mapfile
    scene_map = load_map(kitchen_map)
    scene_map.feature_map = None
    monkeypatch.setattr(mapfile, "FORMAT_VERSION", 1)
    save_map(scene_map, tmp_path / "v1.map")
    monkeypatch.undo()
    old = load_map(tmp_path / "v1.map")
    assert old.feature_map is None and old.head is not None
    with pytest.raises(ValueError, match="needs a map with a keyframe feature map"):
        make_estimator("points", scene_map=old)
    monkeypatch.setattr(mapfile, "FORMAT_VERSION", 9)
    save_map(scene_map, tmp_path / "v9.map")
    monkeypatch.undo()
    with pytest.raises(MapFileError, match="version 9 is not supported"):
        load_map(tmp_path / "v9.map")


def test_confidence_rises_with_inliers():
    from marepo_ros.localization.points import inlier_confidence
    assert inlier_confidence(5, 12) == 0.0
    assert 0.4 < inlier_confidence(32, 12) < 0.6 < inlier_confidence(100, 12) < 1.0
    assert math.isclose(inlier_confidence(12, 12), 0.0)


def test_distorted_images_localize_once_their_pixels_are_undistorted(kitchen_frames, kitchen_map):
    """Real queries warped through strong barrel distortion (plumb_bob k1 -0.4, k2 0.15: pixels
    move up to 135 px at the corners): with their Distortion the Pipeline's poses (it undistorts
    the image) are as good as the pinhole images'; used as if pinhole they are worse. With the
    keyframes (points) and with the head (ransac).

    The head of this 25-frame map is itself good to about 5 cm, and its figures move by a few
    centimetres between CPUs (fp32 and bf16 kernels), so the comparison is of the mean over three
    queries, with a margin (asserted > 1.5x)."""
    import cv2

    from marepo_ros.camera import Camera
    from marepo_ros.geometry import Distortion, undistort_pixels
    from marepo_ros.localization.pipeline import Pipeline, PipelineConfig

    ds, frames = kitchen_frames
    distortion = Distortion("plumb_bob", (-0.4, 0.15, 0.0, 0.0, 0.0))
    u, v = np.meshgrid(np.arange(640, dtype=np.float64), np.arange(480, dtype=np.float64))
    source = undistort_pixels(np.stack([u.ravel(), v.ravel()], 1), ds.K, distortion).astype(np.float32)
    scene_map = load_map(kitchen_map)
    warped = {name: cv2.remap(frames[name][1].load_image(), source[:, 0].reshape(480, 640),
                              source[:, 1].reshape(480, 640), cv2.INTER_LINEAR)
              for name in KITCHEN_QUERIES}
    for estimator, limit_cm in (("points", 3.0), ("ransac", 15.0)):
        pipeline = Pipeline(scene_map, PipelineConfig(estimator))
        ok, bad = [], []
        for name in KITCHEN_QUERIES:
            gt = frames[name][1].map_from_cam
            est = pipeline.localize(warped[name], Camera(ds.K, 640, 480, distortion))
            assert "undistort" in est.timings_ms
            ok.append(pose_error(est.map_from_cam, gt))
            as_pinhole = pipeline.localize(warped[name], Camera(ds.K, 640, 480))
            bad.append(pose_error(as_pinhole.map_from_cam, gt) if as_pinhole else (np.inf, np.inf))
            print(f"{estimator} {name}: undistorted {100 * ok[-1][0]:.1f} cm / {ok[-1][1]:.2f} deg, "
                  f"as pinhole {100 * bad[-1][0]:.1f} cm / {bad[-1][1]:.2f} deg")
            assert 100 * ok[-1][0] < limit_cm and ok[-1][1] < 2.5
        assert np.mean([b[0] for b in bad]) > 1.5 * np.mean([o[0] for o in ok])


def test_undistort_pixels_inverts_opencv_projection():
    from marepo_ros.geometry import Distortion, undistort_pixels
    K = np.array([[500.0, 0, 320], [0, 510, 240], [0, 0, 1]])
    rng = np.random.default_rng(1)
    X = np.column_stack([rng.uniform(-0.5, 0.5, (50, 2)), np.ones(50)])
    ideal = project(K, X)
    for d in (Distortion("plumb_bob", (-0.2, 0.05, 0.001, -0.001, 0.0)),
              Distortion("equidistant", (0.05, 0.01, 0.0, 0.0))):
        import cv2
        D = np.array(d.coefficients)
        if d.model == "equidistant":
            seen = cv2.fisheye.projectPoints(X.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, D)[0]
        else:
            seen = cv2.projectPoints(X, np.zeros(3), np.zeros(3), K, D)[0]
        assert np.abs(undistort_pixels(seen.reshape(-1, 2), K, d) - ideal).max() < 0.01
    assert np.array_equal(undistort_pixels(ideal, K, None), ideal)


def test_covisible_groups_split_keyframes_that_see_different_places():
    from marepo_ros.geometry import make_pose
    from marepo_ros.localization.retrieval import covisible_groups

    def look(x, yaw_deg):
        c, s = np.cos(np.radians(yaw_deg)), np.sin(np.radians(yaw_deg))
        R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])       # optical z turned about y
        return make_pose(R, np.array([x, 0.0, 0.0]))
    poses = np.stack([look(0, 0), look(5, 0), look(0.5, 10), look(5.4, 20), look(0.2, 180)])
    assert covisible_groups(poses).tolist() == [0, 1, 0, 1, 2]    # near and alike: one group
    assert covisible_groups(poses[:1]).tolist() == [0]


def test_points_reports_the_runner_up_of_its_pose(kitchen_frames, kitchen_map):
    """A real query: no rival pose from another group of keyframes (``runner_up`` 0 or small),
    and the verification's time is reported."""
    ds, frames = kitchen_frames
    points = make_estimator("points", scene_map=load_map(kitchen_map))
    for name in KITCHEN_QUERIES:
        est = points.localize(frames[name][1].load_image(), ds.K)
        assert 0.0 <= est.evidence["runner_up"] < 0.5 and "verification" in est.timings_ms


def test_a_repeated_texture_gives_a_rival_among_the_left_out_matches():
    """A wall whose texture repeats every 64 cm: 150 matches say the true pose, 120 say the
    pose one period along the wall. The matches the first pose leaves out hold the rival, so
    ``points`` makes the place ambiguous (runner-up 0.8 >= AMBIGUOUS_SHARE); with only 10 such
    matches (clutter) there is no rival."""
    from marepo_ros.localization.points import AMBIGUOUS_SHARE, rival_inliers

    rng = np.random.default_rng(3)
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    cam_true = make_pose(np.eye(3), np.array([0.0, 0.0, -2.0]))
    period = np.array([0.64, 0.0, 0.0])
    wall = np.column_stack([rng.uniform(-1.5, 1.5, 270), rng.uniform(-1, 1, 270), np.zeros(270)])
    pixels = project(K, transform_points(invert_pose(cam_true), wall))
    # the last 120 pixels matched to the same texture one period over: their 3D points shifted
    points = wall.copy()
    points[150:] += period
    truth = solve_pnp(points, pixels, K)
    assert pose_error(truth.map_from_cam, cam_true)[0] < 0.01 and truth.inliers_N.sum() == 150
    rival = rival_inliers(points, pixels, K, truth.map_from_cam, [~truth.inliers_N],
                          min_inliers=20, threshold_px=6.0)
    assert rival == 120 and rival / 150 >= AMBIGUOUS_SHARE
    few = np.r_[np.ones(150, bool), np.zeros(110, bool), np.ones(10, bool)]
    assert rival_inliers(points[few], pixels[few], K, truth.map_from_cam,
                         [~solve_pnp(points[few], pixels[few], K).inliers_N],
                         min_inliers=20, threshold_px=6.0) == 0
