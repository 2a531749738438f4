"""Decoding sensor_msgs Image / CompressedImage contents to numpy, without ROS or cv_bridge.

Works on any object with the messages' fields (rclpy messages, rosbags' deserialized ones).
Results are HxWx3 RGB or HxW grey uint8, the package's image convention (``from_opencv`` also
serves the scene folder reader); 16-bit data is divided by 257. Depth images (``decode_depth``)
become HxW float32 metres. Errors are ``ImageError`` (one
line); ``UnsupportedEncoding`` names the encoding, so each interface can word its own advice.
"""
from __future__ import annotations

import cv2
import numpy as np

# encoding -> (channels, little-endian dtype)
ENCODINGS = {"rgb8": (3, "u1"), "bgr8": (3, "u1"), "rgba8": (4, "u1"), "bgra8": (4, "u1"),
             "mono8": (1, "u1"), "8UC1": (1, "u1"), "mono16": (1, "u2")}


class ImageError(ValueError):
    """Image data that cannot be decoded; ``str()`` says why in one line."""


class UnsupportedEncoding(ImageError):
    def __init__(self, encoding: str):
        super().__init__(f"image encoding '{encoding}' is not supported "
                         f"(supported: {', '.join(ENCODINGS)})")
        self.encoding = encoding


def decode_raw(msg) -> np.ndarray:
    """sensor_msgs/Image fields (encoding, height, width, step, data, is_bigendian) -> pixels."""
    if msg.encoding not in ENCODINGS:
        raise UnsupportedEncoding(msg.encoding)
    channels, dtype = ENCODINGS[msg.encoding]
    dt = np.dtype(dtype).newbyteorder(">" if getattr(msg, "is_bigendian", 0) else "<")
    h, w, step = msg.height, msg.width, msg.step
    if h == 0 or w == 0:
        raise ImageError(f"empty image ({w}x{h})")
    if step < w * channels * dt.itemsize or len(msg.data) < h * step:
        raise ImageError(f"image data too short for {w}x{h} {msg.encoding} (step {step}, "
                         f"{len(msg.data)} bytes)")
    rows = np.frombuffer(bytes(msg.data[:h * step]), np.uint8).reshape(h, step)
    px = np.ascontiguousarray(rows[:, :w * channels * dt.itemsize]).view(dt).reshape(h, w, channels)
    if dt.itemsize == 2:
        px = (px / 257).astype(np.uint8)
    pixels = {"rgb8": px, "bgr8": px[..., ::-1], "rgba8": px[..., :3], "bgra8": px[..., 2::-1]
              }.get(msg.encoding, px[..., 0])
    return np.ascontiguousarray(pixels)


def decode_compressed(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage fields (format, data) -> pixels (whatever OpenCV reads)."""
    if "compresseddepth" in msg.format.lower():
        raise ImageError(f"CompressedImage format '{msg.format}' (depth) is not supported")
    data = np.frombuffer(bytes(msg.data), np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if len(data) else None
    if image is None:
        raise ImageError(f"cannot decode compressed image (format '{msg.format}', {len(data)} bytes)")
    return from_opencv(image)


def from_opencv(image: np.ndarray) -> np.ndarray:
    """What OpenCV decoded (BGR, BGRA or grey; 8 or 16 bit) as HxWx3 RGB or HxW grey uint8."""
    if image.dtype == np.uint16:
        image = (image / 257).astype(np.uint8)
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


DEPTH_ENCODINGS = {"16UC1": ("u2", 1e-3), "mono16": ("u2", 1e-3), "32FC1": ("f4", 1.0)}  # -> metres
DEPTH_MAX_DT_S = 0.005  # aligned depth carries its colour image's stamp: pairing tolerance (s)


def decode_depth(msg) -> np.ndarray:
    """A depth sensor_msgs/Image (16UC1 or mono16 in millimetres, as RealSense's
    aligned_depth_to_color; 32FC1 in metres) -> HxW float32 metres, 0 where invalid."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise ImageError(f"unsupported depth encoding '{msg.encoding}' (supported: "
                         f"{', '.join(DEPTH_ENCODINGS)})")
    kind, to_metres = DEPTH_ENCODINGS[msg.encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = msg.height, msg.width, msg.step
    if h == 0 or w == 0:
        raise ImageError(f"empty depth image ({w}x{h})")
    if step < w * dtype.itemsize or len(msg.data) < h * step:
        raise ImageError(f"depth data too short for {w}x{h} {msg.encoding} (step {step}, "
                         f"{len(msg.data)} bytes)")
    rows = np.frombuffer(bytes(msg.data[:h * step]), np.uint8).reshape(h, step)[:, :w * dtype.itemsize]
    depth = rows.copy().view(dtype).reshape(h, w).astype(np.float32) * np.float32(to_metres)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth
