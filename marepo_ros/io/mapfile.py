"""Map files: the scene-specific head plus everything needed to use it, versioned and checked.

Layout (all integers little-endian):

    b"MAREPOMAP\\n"                      magic (10 bytes)
    u32 header_length, header           UTF-8 JSON: format_version, created, encoder (name, id),
                                        scene_centre, head config, feature map summary,
                                        preprocessing, statistics, payload_length
    payload                             torch.save of {"head": fp16 state dict or absent,
                                        "feature_map": its arrays or absent, extras...}
    sha256(header + payload)            32 bytes: any damaged byte is detected on load

Files are written atomically (temporary file in the same folder, then rename), so a reader
never sees half a map. Version 2 added the encoder's name and the keyframe feature map; a map
may hold a head, a feature map, or both. Version 1 files (ACE head only) still load.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..models.networks import Head
from .feature_map import FeatureMap

MAGIC = b"MAREPOMAP\n"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class MapFileError(ValueError):
    """A map file that cannot be used; ``str()`` is one line naming the file and the problem."""


@dataclass
class SceneMap:
    """A mapped scene: a scene-coordinate head, a keyframe feature map, or both.

    head: the scene-coordinate head, or None (a map of keyframes only).
    encoder / encoder_id: name and weights hash of the encoder the head was trained on
        (``models.identity.state_dict_hash``); empty without a head.
    short_side: image short side (pixels) used for mapping; localization uses the same.
    feature_map: the keyframe feature map, or None (maps of format version 1).
    stats: mapping statistics (frames, iterations, final loss, seconds, device, ...).
    """
    head: Head | None
    encoder_id: str
    short_side: int
    stats: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    extras: dict = field(default_factory=dict)  # optional further state dicts (e.g. a regressor)
    feature_map: FeatureMap | None = None
    encoder: str = "ace"

    @property
    def scene_centre(self) -> list[float]:
        """Mean mapping camera centre (metres): the head's offset, else the keyframes' mean."""
        if self.head is not None:
            return self.head.mean.flatten().tolist()
        return self.feature_map.map_from_cam_K44[:, :3, 3].mean(0).tolist()


def _head_config(head: Head | None) -> dict | None:
    if head is None:
        return None
    return {"num_head_blocks": len(head.res_blocks), "channels": head.fc1.out_channels,
            "in_channels": head.res3_conv1.in_channels}


def _feature_map_summary(fm: FeatureMap | None) -> dict | None:
    if fm is None:
        return None
    return {"extractor": fm.extractor, "extractor_id": fm.extractor_id, "short_side": fm.short_side,
            "keyframes": fm.n_keyframes,
            "points": fm.n_points, **fm.source_counts(), "megabytes": round(fm.nbytes() / 1e6, 2)}


def save_map(scene_map: SceneMap, path: str | Path) -> int:
    """Write ``scene_map`` to ``path`` atomically; returns the file size in bytes."""
    path = Path(path)
    buf = io.BytesIO()
    if scene_map.head is None and scene_map.feature_map is None:
        raise ValueError("a map needs a head, a feature map, or both")
    content = dict(scene_map.extras)
    if scene_map.head is not None:
        content["head"] = {k: v.half() if v.is_floating_point() else v
                           for k, v in scene_map.head.state_dict().items()}
    if scene_map.feature_map is not None:
        content["feature_map"] = scene_map.feature_map.to_dict()
    torch.save(content, buf)
    payload = buf.getvalue()
    header = json.dumps({
        "format_version": FORMAT_VERSION,
        "package_version": __version__,
        "created": scene_map.created,
        "encoder": scene_map.encoder,
        "encoder_id": scene_map.encoder_id,
        "scene_centre": scene_map.scene_centre,
        "head": _head_config(scene_map.head),
        "feature_map": _feature_map_summary(scene_map.feature_map),
        "short_side": scene_map.short_side,
        "stats": scene_map.stats,
        "extras": sorted(scene_map.extras),
        "payload_length": len(payload),
    }, indent=1).encode()
    body = struct.pack("<I", len(header)) + header + payload
    digest = hashlib.sha256(header + payload).digest()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + body + digest)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(MAGIC) + len(body) + len(digest)


def read_header(path: str | Path) -> dict:
    """The verified JSON header of a map file (raises MapFileError)."""
    return _read(Path(path))[0]


def _read(path: Path) -> tuple[dict, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MapFileError(f"{path}: map file not found") from None
    except OSError as exc:
        raise MapFileError(f"{path}: cannot read map file ({exc.strerror})") from None
    if not data.startswith(MAGIC):
        raise MapFileError(f"{path}: not a marepo_ros map file (bad magic bytes)")
    pos = len(MAGIC)
    if len(data) < pos + 4 + 32:
        raise MapFileError(f"{path}: map file is truncated ({len(data)} bytes)")
    (hlen,) = struct.unpack_from("<I", data, pos)
    header_bytes = data[pos + 4: pos + 4 + hlen]
    try:
        header = json.loads(header_bytes)
        plen = int(header["payload_length"])
    except (ValueError, KeyError, TypeError):
        raise MapFileError(f"{path}: map file header is damaged or truncated") from None
    expected = pos + 4 + hlen + plen + 32
    if len(data) != expected:
        raise MapFileError(f"{path}: map file is truncated or has trailing bytes "
                           f"({len(data)} bytes, expected {expected})")
    payload = data[pos + 4 + hlen: pos + 4 + hlen + plen]
    if hashlib.sha256(header_bytes + payload).digest() != data[-32:]:
        raise MapFileError(f"{path}: map file is damaged (checksum mismatch)")
    version = header.get("format_version")
    if version not in READABLE_VERSIONS:
        raise MapFileError(f"{path}: map format version {version} is not supported "
                           f"(this marepo_ros reads versions {', '.join(map(str, READABLE_VERSIONS))})")
    return header, payload


def load_map(path: str | Path, device: str | torch.device = "cpu") -> SceneMap:
    """Read and verify a map file; raises MapFileError with a one-line reason."""
    path = Path(path)
    header, payload = _read(path)
    try:
        content = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        head = None
        if header.get("head") is not None:
            config = header["head"]
            head = Head(num_head_blocks=int(config["num_head_blocks"]),
                        channels=int(config.get("channels", 512)),
                        in_channels=int(config.get("in_channels", 512)))
            head.load_state_dict({k: v.float() for k, v in content.pop("head").items()})
            head = head.to(device).eval()
        feature_map = (FeatureMap.from_dict(content.pop("feature_map"))
                       if header.get("feature_map") is not None else None)
    except Exception as exc:  # a verified payload that still fails: incompatible contents
        raise MapFileError(f"{path}: map contents are incompatible ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return SceneMap(head=head, encoder_id=header["encoder_id"],
                    short_side=int(header["short_side"]), stats=header.get("stats", {}),
                    created=float(header.get("created", 0.0)), extras=content,
                    feature_map=feature_map, encoder=header.get("encoder", "ace"))
