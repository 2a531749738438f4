"""Keyframes chosen by what they add: the overlap rule of ``select_keyframes``."""
import numpy as np
import pytest

from marepo_ros.mapping.feature_map import (FeatureMapConfig, KeptViews, coarse_view,
                                            keyframe_views, select_keyframes)
from marepo_ros.mapping.frames import PosedImage
from marepo_ros.synthetic.paths import default_intrinsics, random_camera_path
from marepo_ros.synthetic.raycast import render
from marepo_ros.synthetic.scene import random_scene

W, H = 160, 120


@pytest.fixture(scope="module")
def back_and_forth():
    """A room and a walk of 40 poses done forth, back and forth again (120 poses), with the
    depth of each pose."""
    scene = random_scene(4)
    walk = random_camera_path(scene, 40, 1)
    poses = walk + walk[::-1] + walk
    K = default_intrinsics(W, H)
    depths = {}
    for i, T in enumerate(walk):
        depths[i] = render(scene, K, T, W, H)[1]
    index = list(range(40)) + list(range(39, -1, -1)) + list(range(40))
    return poses, [depths[j] for j in index], K


def test_coarse_view_keeps_pixels_and_intrinsics():
    K = default_intrinsics(64, 48)
    depth = np.arange(48 * 64, dtype=np.float32).reshape(48, 64)
    small, K_small = coarse_view(depth, K, stride=8)
    assert small.shape == (6, 8) and small[1, 2] == depth[12, 20]
    # pixel (20, 12) of the full image is cell (2, 1) of the grid
    ray = np.linalg.inv(K) @ [20, 12, 1]
    assert np.allclose((K_small @ ray)[:2], [2, 1])


def test_overlap_keeps_fewer_keyframes_going_back_and_forth(back_and_forth):
    poses, depths, K = back_and_forth
    spacing = select_keyframes(poses, 0.03, 3.0)
    overlap = select_keyframes(poses, 0.03, 3.0, view_of=lambda i: coarse_view(depths[i], K, 4),
                               max_covered=0.9, angle_deg=1.0)
    first_pass = [i for i in spacing if i < 40]
    assert len(spacing) > 2.5 * len(first_pass) - 3          # the spacing keeps every pass
    assert len(overlap) < 0.6 * len(spacing)
    assert set(first_pass) <= set(overlap)                   # the first pass is all new view
    assert sum(i >= 40 for i in overlap) <= 0.25 * len(first_pass)


def test_overlap_without_depth_is_the_spacing(back_and_forth):
    poses, _, _ = back_and_forth
    spacing = select_keyframes(poses, 0.03, 3.0)
    assert select_keyframes(poses, 0.03, 3.0, max_covered=0.5) == spacing
    assert select_keyframes(poses, 0.03, 3.0, view_of=lambda i: None, max_covered=0.5) == spacing


def test_covered_share_of_a_new_and_a_seen_view(back_and_forth):
    poses, depths, K = back_and_forth
    kept = KeptViews(2.0, 6.0)
    assert kept.covered_share(poses[0], coarse_view(depths[0], K, 4)) == 0.0
    kept.add(poses[0], coarse_view(depths[0], K, 4))
    assert kept.covered_share(poses[0], coarse_view(depths[0], K, 4)) > 0.95
    turned = poses[0].copy()
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    turned[:3, :3] = turned[:3, :3] @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    assert kept.covered_share(turned, coarse_view(depths[0], K, 4)) == 0.0


def test_config_and_views_from_depth(back_and_forth):
    poses, depths, K = back_and_forth
    assert keyframe_views([], FeatureMapConfig(max_covered=0.0)) == {}
    assert keyframe_views([], FeatureMapConfig(min_translation_m=0, min_rotation_deg=0)) == {}
    images = [PosedImage(lambda: None, K, T, lambda d=d: d) for T, d in zip(poses, depths)]
    options = keyframe_views(images, FeatureMapConfig(max_covered=0.8))
    depth, K_small = options["view_of"](3)
    assert depth.shape == (H // 8, W // 8) and options["max_covered"] == 0.8
    no_depth = keyframe_views(images, FeatureMapConfig(max_covered=0.8, depth=False))
    assert no_depth["view_of"](3) is None
