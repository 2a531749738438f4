"""Mapping trainer: augmentation geometry, the loss, cancellation, and a tiny map on a render."""
import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from marepo_ros.geometry import backproject, make_pose, transform_points
from marepo_ros.io.feature_map import FeatureMap
from marepo_ros.mapping.build import (MappingConfig, _augment, _point_targets, _reprojection_loss,
                                      build_map, keyframe_points, preset)
from marepo_ros.mapping.frames import MappingCancelled, PosedImage
from marepo_ros.models.networks import Encoder
from marepo_ros.models.preprocess import GREY_MEAN, GREY_STD


@pytest.mark.parametrize("seed", range(4))
def test_augmented_pixels_map_back_to_original_pixels(seed):
    rng = np.random.default_rng(seed)
    grey = (np.kron(rng.integers(0, 255, (60, 80)), np.ones((8, 8)))).astype(np.uint8)  # 480x640
    import cv2
    grey = cv2.GaussianBlur(grey, (0, 0), 3)
    cfg = MappingConfig(photometric=0.0)
    x, mask, A = _augment(grey, 240, cfg, np.random.default_rng(seed))
    aug = x[0, 0].numpy() * GREY_STD + GREY_MEAN
    H, W = aug.shape
    v, u = np.mgrid[20:H - 20:7, 20:W - 20:7]
    uv = np.stack([u.ravel(), v.ravel()], 1).astype(float)
    keep = mask[uv[:, 1].astype(int), uv[:, 0].astype(int)] > 0
    uv = uv[keep]
    orig = uv @ A[:, :2].T + A[:, 2]
    inside = (orig[:, 0] > 2) & (orig[:, 0] < 637) & (orig[:, 1] > 2) & (orig[:, 1] < 477)
    want = map_coordinates(grey.astype(float) / 255, [orig[inside, 1], orig[inside, 0]], order=1)
    got = aug[uv[inside, 1].astype(int), uv[inside, 0].astype(int)]
    assert inside.sum() > 100
    assert np.median(np.abs(got - want)) < 0.02


def test_reprojection_loss_is_zero_at_truth_and_proxy_behind_camera():
    K = torch.tensor([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    cam_from_map = torch.eye(4)[:3]
    pts = torch.tensor([[0.1, -0.2, 2.0], [0.0, 0.0, -1.0]])
    uv = torch.tensor([[345.0, 190.0], [320.0, 240.0]])
    loss, valid = _reprojection_loss(pts, uv, cam_from_map.expand(2, 3, 4), K.expand(2, 3, 3), tau=10.0)
    assert loss[0].item() == pytest.approx(0.0, abs=1e-4)
    assert valid.item() == 0.5
    # behind the camera: L1 distance to the point 10 m along the pixel's ray
    assert loss[1].item() == pytest.approx(11.0, abs=1e-4)


def _tiny_scene(n=8):
    rng = np.random.default_rng(0)
    K = np.array([[200.0, 0, 79.5], [0, 200, 59.5], [0, 0, 1]])
    images = []
    for i in range(n):
        T = np.eye(4)
        T[:3, 3] = [0.05 * i, 0, 0]
        img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        images.append(PosedImage(lambda img=img: img, K, T))
    return images


def test_build_map_runs_and_cancels():
    torch.manual_seed(0)
    images = _tiny_scene()
    cfg = preset("fast", short_side=120, samples_per_image=64, buffer_size=512, batch_size=128, epochs=2.0)
    calls = []
    m = build_map(images, Encoder(), cfg, progress=lambda *a: calls.append(a[0]))
    assert {"buffer", "head"} <= set(calls)
    assert m.stats["frames"] == 8 and m.stats["buffer_features"] == 512
    assert m.scene_centre == pytest.approx([0.175, 0.0, 0.0], abs=1e-6)
    with pytest.raises(MappingCancelled):
        build_map(images, Encoder(), cfg, cancel=lambda: True)
    with pytest.raises(ValueError, match="at least 2"):
        build_map(images[:1], Encoder(), cfg)


def test_min_iterations_floor_and_explicit_epochs():
    images = _tiny_scene()
    small = dict(short_side=120, samples_per_image=64, buffer_size=512, batch_size=128)
    # 12 epochs of 512 features in batches of 128 are 48 steps; the floor lifts them to 60
    assert build_map(images, Encoder(), preset("fast", **small, min_iterations=60)
                     ).stats["iterations"] == 60
    assert preset("fast").min_iterations == 3000
    assert preset("fast", epochs=2.0).min_iterations == 0  # an explicit schedule, no floor


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset"):
        preset("turbo")


def test_images_without_depth_get_3d_targets_from_keyframe_points_on_their_own_rays():
    """A sample near a keypoint gets the point on the sample's ray at the keypoint's depth."""
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    map_from_cam = make_pose(np.eye(3), [1.0, 2.0, 0.5])
    kp_uv = np.array([[100.0, 100.0], [400.0, 300.0]])
    kp_xyz = transform_points(map_from_cam, backproject(K, kp_uv, np.array([2.0, 3.0])))
    images = [PosedImage(lambda: None, K, make_pose(np.eye(3), [0.0, 0, 0])),
              PosedImage(lambda: None, K, map_from_cam)]
    fm = FeatureMap(map_from_cam_K44=map_from_cam[None], K_K33=K[None],
                    image_size_K2=np.array([[640, 480]], np.int32), global_KG=np.zeros((1, 4), np.float32),
                    vocabulary_CD=np.zeros((1, 4), np.float32), offsets_K1=np.array([0, 2]),
                    keypoints_P2=kp_uv.astype(np.float32), descriptors_PD=np.zeros((2, 4), np.int8),
                    points_P3=kp_xyz.astype(np.float32), source_P=np.ones(2, np.uint8),
                    extractor="xfeat", extractor_id="x")
    points = keyframe_points(images, fm)
    assert list(points) == [1]                                    # found by its pose
    uv = np.array([[105.0, 98.0], [395.0, 309.0], [250.0, 250.0]])
    xyz = _point_targets(images[1], (480, 640), uv, points[1], radius_px=12.0)
    want = transform_points(map_from_cam, backproject(K, uv[:2], np.array([2.0, 3.0])))
    assert np.allclose(xyz[:2], want, atol=1e-5) and np.isnan(xyz[2]).all()
    assert np.isnan(_point_targets(images[0], (480, 640), uv, None, 12.0)).all()
