"""ROS message <-> numpy conversions (messages built in memory, no DDS)."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from geometry_msgs.msg import Pose
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from marepo_ros.camera import CameraError, camera_from_info
from marepo_ros.geometry import pose_from_quat
from marepo_ros.ros.conversions import (InputError, image_from_compressed, image_from_msg,
                                        pose_from_msg, pose_to_msg, seconds, stamp_from_seconds)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


def image_msg(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1)
    rows = np.hstack([rows, np.zeros((h, pad), np.uint8)])
    return Image(height=h, width=w, encoding=encoding, step=rows.shape[1], data=rows.tobytes())


@pytest.mark.parametrize("encoding, pixels", [
    ("rgb8", RGB), ("bgr8", RGB[..., ::-1]), ("rgba8", np.dstack([RGB, RGB[..., :1]])),
    ("bgra8", np.dstack([RGB[..., ::-1], RGB[..., :1]]))])
@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings_give_rgb(encoding, pixels, pad):
    np.testing.assert_array_equal(image_from_msg(image_msg(np.ascontiguousarray(pixels), encoding, pad)), RGB)


def test_mono_and_bad_images():
    grey = RGB[..., 0].copy()
    np.testing.assert_array_equal(image_from_msg(image_msg(grey, "mono8", pad=2)), grey)
    with pytest.raises(InputError, match="unsupported image encoding '16UC1'"):
        image_from_msg(image_msg(grey, "16UC1"))
    short = image_msg(RGB, "rgb8")
    short.data = short.data[:-1]
    with pytest.raises(InputError, match="too short"):
        image_from_msg(short)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_images_decode_like_opencv(ext):
    ok, data = cv2.imencode(ext, RGB[..., ::-1])
    msg = CompressedImage(format=ext[1:], data=data.tobytes())
    expected = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    np.testing.assert_array_equal(image_from_compressed(msg), expected)
    with pytest.raises(InputError, match="cannot decode"):
        image_from_compressed(CompressedImage(format="jpeg", data=b"not an image"))


def test_camera_info_checks():
    info = CameraInfo(width=640, height=480)
    info.k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    camera = camera_from_info(info)
    assert (camera.width, camera.height) == (640, 480) and camera.K[1, 1] == 510
    assert camera.distortion is None
    camera.check_image(np.zeros((480, 640), np.uint8))
    with pytest.raises(CameraError, match="is 320x240 but its CameraInfo is 640x480"):
        camera.check_image(np.zeros((240, 320), np.uint8))
    info.k = [0.0] * 9
    with pytest.raises(CameraError, match="K all zeros"):
        camera_from_info(info)
    info.k = [500.0, 0.0, 900.0, 0.0, 500.0, 240.0, 0.0, 0.0, 1.0]
    with pytest.raises(CameraError, match="outside"):
        camera_from_info(info)


def test_rectified_images_use_the_3x3_part_of_p():
    info = CameraInfo(width=640, height=480)
    info.k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]  # the raw camera
    info.d = [-0.3, 0.1, 0.0, 0.0, 0.0]
    info.p = [480.0, 0.0, 318.0, 0.0, 0.0, 480.0, 236.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert camera_from_info(info).K[0, 0] == 500.0
    rectified = camera_from_info(info, rectified=True)
    np.testing.assert_array_equal(rectified.K, [[480, 0, 318], [0, 480, 236], [0, 0, 1]])
    assert rectified.distortion is None                           # rectified: no distortion
    info.p = [0.0] * 12
    with pytest.raises(CameraError, match="P all zeros"):
        camera_from_info(info, rectified=True)
    info.p = [480.0, 0.0, math.nan, 0.0, 0.0, 480.0, 236.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    with pytest.raises(CameraError, match="P contains NaN"):
        camera_from_info(info, rectified=True)


def test_raw_images_with_distortion_carry_the_model_and_unknown_models_are_refused():
    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob")
    info.k = [500.0, 0.0, 320.0, 0.0, 510.0, 240.0, 0.0, 0.0, 1.0]
    info.d = [-0.3, 0.1, 0.001, 0.0, 0.0]
    distortion = camera_from_info(info).distortion
    assert distortion.model == "plumb_bob" and distortion.coefficients == (-0.3, 0.1, 0.001, 0.0, 0.0)
    info.distortion_model = "equidistant"
    info.d = [0.1, 0.01, 0.0, 0.0]
    assert camera_from_info(info).distortion.model == "equidistant"
    info.distortion_model = "double_sphere"
    with pytest.raises(CameraError, match="model 'double_sphere' is not supported"):
        camera_from_info(info)
    info.distortion_model, info.d = "plumb_bob", [0.1, math.nan, 0.0, 0.0, 0.0]
    with pytest.raises(CameraError, match="not finite"):
        camera_from_info(info)


def test_pose_and_stamp_round_trips():
    T = pose_from_quat([1.0, -2.0, 0.5], [0.1, 0.7, -0.2, 0.5] / np.linalg.norm([0.1, 0.7, -0.2, 0.5]))
    np.testing.assert_allclose(pose_from_msg(pose_to_msg(T)), T, atol=1e-12)
    bad = Pose()
    bad.position.x = float("nan")
    bad.orientation.w = 1.0
    with pytest.raises(InputError, match="NaN"):
        pose_from_msg(bad)
    bad.position.x, bad.orientation.w = 0.0, 0.5
    with pytest.raises(InputError, match="norm 0.5"):
        pose_from_msg(bad)
    for t in (0.0, 1.5, 1795251538.443834202):
        assert seconds(stamp_from_seconds(t)) == pytest.approx(t, abs=1e-9)


def test_depth_images_in_metres():
    from marepo_ros.ros.conversions import depth_from_msg
    mm = np.array([[0, 1500], [2000, 65535]], np.uint16)
    msg = Image(height=2, width=2, encoding="16UC1", step=4, data=mm.tobytes())
    np.testing.assert_allclose(depth_from_msg(msg), [[0.0, 1.5], [2.0, 65.535]], rtol=1e-6)
    metres = np.array([[1.25, np.nan]], np.float32)
    msg = Image(height=1, width=2, encoding="32FC1", step=8, data=metres.tobytes())
    np.testing.assert_array_equal(depth_from_msg(msg), [[1.25, 0.0]])  # NaN: invalid
    with pytest.raises(InputError, match="unsupported depth encoding 'rgb8'"):
        depth_from_msg(Image(height=1, width=1, encoding="rgb8", step=3, data=b"abc"))
    with pytest.raises(InputError, match="depth data too short"):
        depth_from_msg(Image(height=2, width=2, encoding="16UC1", step=4, data=b"\0" * 6))
