"""Encoder/head compatibility with ACE's state dicts, and the map file's checks."""
import io
import subprocess
import sys

import pytest
import torch

from marepo_ros.io.mapfile import MapFileError, SceneMap, load_map, read_header, save_map
from marepo_ros.models.identity import state_dict_hash
from marepo_ros.models.networks import Encoder, EncoderError, Head, load_encoder

# Niantic's ace_encoder_pretrained.pt: exactly these keys and shapes, no prefix.
ACE_ENCODER_SHAPES = {
    "conv1": (32, 1, 3, 3), "conv2": (64, 32, 3, 3), "conv3": (128, 64, 3, 3),
    "conv4": (256, 128, 3, 3), "res1_conv1": (256, 256, 3, 3), "res1_conv2": (256, 256, 1, 1),
    "res1_conv3": (256, 256, 3, 3), "res2_conv1": (512, 256, 3, 3), "res2_conv2": (512, 512, 1, 1),
    "res2_conv3": (512, 512, 3, 3), "res2_skip": (512, 256, 1, 1)}


def ace_format_state_dict():
    g = torch.Generator().manual_seed(0)
    sd = {}
    for name, shape in ACE_ENCODER_SHAPES.items():
        sd[f"{name}.weight"] = torch.randn(shape, generator=g) * 0.05
        sd[f"{name}.bias"] = torch.randn(shape[0], generator=g) * 0.01
    return sd


def test_ace_format_encoder_loads_unchanged(tmp_path):
    sd = ace_format_state_dict()
    path = tmp_path / "ace_encoder_pretrained.pt"
    torch.save({k: v.half() for k, v in sd.items()}, path)  # Niantic ships fp16
    enc = load_encoder(path)
    assert set(enc.state_dict()) == set(sd)
    for k, v in sd.items():
        torch.testing.assert_close(enc.state_dict()[k], v.half().float())
    n_params = sum(p.numel() for p in enc.parameters())
    assert 5.5e6 < n_params < 5.65e6  # ~5.57 M as in the paper's encoder
    out = enc(torch.zeros(1, 1, 480, 640))
    assert out.shape == (1, 512, 60, 80)


def test_encoder_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(EncoderError, match="bad.pt"):
        load_encoder(bad)
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv1.weight": torch.zeros(3)}, wrong)
    with pytest.raises(EncoderError, match="wrong.pt: not an ACE-format"):
        load_encoder(wrong)


def test_head_homogeneous_output_and_centre():
    torch.manual_seed(0)
    head = Head(mean=torch.tensor([1.0, -2.0, 3.0]))
    feats = torch.randn(2, 512, 4, 5)
    out = head(feats)
    assert out.shape == (2, 3, 4, 5)
    # recompute the homogeneous division by hand from the last layer's raw output
    x = torch.relu(head.res3_conv3(torch.relu(head.res3_conv2(torch.relu(head.res3_conv1(feats))))))
    res = feats + x
    c0, c1, c2 = head.res_blocks[0]
    res = res + torch.relu(c2(torch.relu(c1(torch.relu(c0(res))))))
    raw = head.fc3(torch.relu(head.fc2(torch.relu(head.fc1(res)))))
    beta = torch.log(torch.tensor(2.0)) / (1 - 0.25)
    h = (torch.nn.functional.softplus(raw[:, 3:], beta=float(beta)) + 0.25).clamp(max=100)
    torch.testing.assert_close(out, raw[:, :3] / h + torch.tensor([1.0, -2.0, 3.0]).view(1, 3, 1, 1))
    assert {"res3_conv1.weight", "0c0.weight", "fc3.weight", "mean", "h_beta"} <= set(head.state_dict())


@pytest.fixture
def saved_map(tmp_path):
    torch.manual_seed(1)
    m = SceneMap(head=Head(mean=torch.tensor([0.5, 0.0, 1.0])), encoder_id="abc123", short_side=480,
                 stats={"frames": 3})
    path = tmp_path / "scene.map"
    size = save_map(m, path)
    assert path.stat().st_size == size
    return m, path


def test_map_round_trip(saved_map):
    m, path = saved_map
    loaded = load_map(path)
    assert loaded.encoder_id == "abc123" and loaded.short_side == 480 and loaded.stats == {"frames": 3}
    assert loaded.scene_centre == pytest.approx([0.5, 0.0, 1.0])
    feats = torch.randn(1, 512, 2, 2)
    torch.testing.assert_close(loaded.head(feats), m.head.half().float()(feats), atol=1e-3, rtol=1e-3)
    hdr = read_header(path)
    assert hdr["format_version"] == 2 and "created" in hdr and hdr["encoder_id"] == "abc123"
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temp file


def test_map_size_is_about_4mb(saved_map):
    _, path = saved_map
    assert 3.5e6 < path.stat().st_size < 5e6


@pytest.mark.parametrize("damage", ["truncate", "flip_payload", "flip_header", "flip_magic", "empty"])
def test_damaged_map_refused_with_reason(saved_map, damage):
    _, path = saved_map
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip_payload":
        data[len(data) - 1000] ^= 0x01
    elif damage == "flip_header":
        data[40] ^= 0x04
    elif damage == "flip_magic":
        data[0] ^= 0x01
    else:
        data = bytearray()
    path.write_bytes(bytes(data))
    with pytest.raises(MapFileError) as info:
        load_map(path)
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    assert any(w in msg for w in ("truncated", "damaged", "not a marepo_ros map"))


def test_missing_map_file(tmp_path):
    with pytest.raises(MapFileError, match="not found"):
        load_map(tmp_path / "nope.map")


def test_cli_refuses_damaged_map_in_one_line(saved_map, tmp_path):
    _, path = saved_map
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    scene = tmp_path / "scene"
    (scene / "rgb").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "marepo_ros.cli", "eval", str(scene), "--map", str(path),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and "checksum" in lines[0]


def test_state_dict_hash_identifies_weights():
    a, b = Encoder(), Encoder()
    assert state_dict_hash(a) == state_dict_hash(a)
    assert state_dict_hash(a) != state_dict_hash(b)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    c = Encoder()
    c.load_state_dict(torch.load(buf))
    assert state_dict_hash(c) == state_dict_hash(a)
