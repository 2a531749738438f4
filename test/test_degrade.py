"""Photometric degradations of query images (``evaluation.degrade``): shape and dtype kept,
deterministic per seed, each kind changes the image in its own way."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from marepo_ros.evaluation.degrade import KINDS, blur_kernel, degrade


def textured(grey: bool = False, h: int = 120, w: int = 160) -> np.ndarray:
    """A uint8 test image with edges and texture at mid brightness (a checkerboard plus smooth
    random blotches, a different pattern per channel)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:h, :w]
    checker = ((yy // 12 + xx // 12) % 2).astype(np.float64)
    channels = []
    for c in range(1 if grey else 3):
        blotch = cv2.GaussianBlur(rng.uniform(0, 1, (h, w)), (0, 0), 3.0)
        blotch = (blotch - blotch.min()) / np.ptp(blotch)
        channels.append(60 + 70 * checker + 60 * blotch + 10 * c)
    img = np.clip(np.rint(np.stack(channels, -1)), 0, 255).astype(np.uint8)
    return img[..., 0] if grey else img


def laplacian_var(img: np.ndarray) -> float:
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey.astype(np.float64), cv2.CV_64F).var())


def high_freq_energy(img: np.ndarray) -> float:
    """Mean squared difference between the image and its 5x5 box blur."""
    x = img.astype(np.float64)
    return float(np.mean((x - cv2.blur(x, (5, 5))) ** 2))


@pytest.mark.parametrize("grey", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_shape_dtype_and_determinism(kind, grey):
    img = textured(grey)
    a = degrade(img, kind, np.random.default_rng(7))
    b = degrade(img, kind, np.random.default_rng(7))
    c = degrade(img, kind, np.random.default_rng(8))
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)       # the seed draws the parameters
    assert not np.array_equal(a, img)
    assert np.array_equal(img, textured(grey))   # the input is left alone


@pytest.mark.parametrize("grey", [False, True])
def test_dim_lowers_mean_brightness_by_more_than_40_percent(grey):
    img = textured(grey)
    for seed in range(10):
        out = degrade(img, "dim", np.random.default_rng(seed))
        assert out.mean() < 0.6 * img.mean()


def test_colour_cast_changes_channel_ratios():
    img = textured()
    ratio = img[..., 0].mean() / img[..., 2].mean()
    warm = cool = 0
    for seed in range(10):
        out = degrade(img, "colour_cast", np.random.default_rng(seed)).astype(np.float64)
        r = out[..., 0].mean() / out[..., 2].mean()
        assert abs(np.log(r / ratio)) > np.log(1.3)    # gains of at least 1.2 / 0.8 apart
        warm += r > ratio
        cool += r < ratio
    assert warm and cool                               # both directions occur


def test_motion_blur_lowers_laplacian_variance():
    for grey in (False, True):
        img = textured(grey)
        for seed in range(5):
            out = degrade(img, "motion_blur", np.random.default_rng(seed))
            assert laplacian_var(out) < 0.5 * laplacian_var(img)
            assert abs(out.astype(float).mean() - img.mean()) < 3    # blur keeps brightness


@pytest.mark.parametrize("angle", [0.0, np.pi / 4, np.pi / 2, 2.0])
@pytest.mark.parametrize("length", [9, 14, 21])
def test_blur_kernel_is_a_normalised_line(length, angle):
    k = blur_kernel(length, angle)
    assert k.shape == (length, length) and abs(k.sum() - 1) < 1e-5
    ys, xs = np.nonzero(k > 0.2 * k.max())
    extent = max(np.ptp(xs), np.ptp(ys)) + 1
    assert extent >= 0.7 * length     # it spans the kernel, not a dot
    assert (k > 0).mean() < 0.5       # a line, not a box


def test_noise_raises_high_frequency_energy():
    for grey in (False, True):
        img = textured(grey)
        for seed in range(5):
            out = degrade(img, "noise", np.random.default_rng(seed))
            assert high_freq_energy(out) > high_freq_energy(img) + 25   # sigma >= 6 alone
            assert abs(out.astype(float).mean() - img.mean()) < 3       # zero-mean noise


def test_unknown_kind_names_the_kinds():
    with pytest.raises(ValueError, match="dim, colour_cast, motion_blur, noise"):
        degrade(textured(), "fog", np.random.default_rng(0))


def test_refuses_other_images():
    with pytest.raises(ValueError, match="uint8"):
        degrade(np.zeros((4, 4, 3), np.float32), "dim", np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        degrade(np.zeros((4, 4, 4), np.uint8), "dim", np.random.default_rng(0))
