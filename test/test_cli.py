"""`marepo-ros map build` and `eval` on rendered scenes in other formats (grey PNG without
depth, colour JPEG of another size): the same commands, unchanged."""
import json
from datetime import datetime, timezone

import pytest

from marepo_ros import cli
from marepo_ros.evaluation.metrics import THRESHOLDS
from marepo_ros.models.grr import GeometryRegressor
from marepo_ros.models.regressor_file import save_regressor
from marepo_ros.synthetic.folders import write_scene_folder
from marepo_ros.synthetic.scene import random_scene

KEYS = {"median_translation_cm", "median_rotation_deg", "ms_per_frame", "n_frames", "n_localized",
        *(name for name, _, _ in THRESHOLDS)}


@pytest.mark.parametrize("fmt", [dict(grey=True, image_ext=".png", with_depth=False, width=320, height=240),
                                 dict(grey=False, image_ext=".jpg", with_depth=True, width=200, height=260)])
def test_map_build_and_eval_on_other_layouts(tmp_path, fmt, capsys):
    scene = write_scene_folder(random_scene(11), tmp_path / "scene", n_mapping=24, n_query=6, seed=2, **fmt)
    map_path = tmp_path / "scene.map"
    assert cli.main(["map", "build", str(scene), "--out", str(map_path), "--epochs", "4"]) == 0
    out = capsys.readouterr().out
    assert "map written" in out and "frames            24" in out
    assert cli.main(["eval", str(scene), "--map", str(map_path), "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert KEYS <= set(metrics) and metrics["n_frames"] == 6
    tum = (tmp_path / "eval/estimate.tum").read_text().splitlines()
    assert len(tum) == metrics["n_localized"] and all(len(line.split()) == 8 for line in tum)
    assert all((tmp_path / "eval" / f).stat().st_size > 0 for f in
               ("report.md", "trajectory.png", "error_cdf.png", "error_over_time.png"))
    # a regressor file of the estimator's kind; a wrong kind or option is one clear line
    grr = tmp_path / "grr.pt"
    save_regressor(GeometryRegressor(), grr)
    assert cli.main(["eval", str(scene), "--map", str(map_path), "--out", str(tmp_path / "eval_grr"),
                     "--estimator", "grr+refine", "--regressor", str(grr),
                     "--grr-translation", "points"]) == 0
    meta = json.loads((tmp_path / "eval_grr/metrics.json").read_text())
    assert meta["n_frames"] == 6
    capsys.readouterr()
    for wrong, says in ((["--estimator", "marepo", "--regressor", str(grr)], "is a grr regressor"),
                        (["--estimator", "ransac", "--grr-translation", "rays"],
                         "estimator 'ransac' has no option 'translation'")):
        with pytest.raises(SystemExit, match=says):
            cli.main(["eval", str(scene), "--map", str(map_path), "--out", str(tmp_path / "x"), *wrong])


def test_eval_reports_missing_dataset_in_one_line(tmp_path, capsys):
    assert cli.main(["eval", str(tmp_path / "nowhere"), "--map", str(tmp_path / "x.map"),
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.map" in err[0] and "not found" in err[0]


def test_map_info_prints_the_header_and_refuses_a_damaged_file(tmp_path, capsys):
    import torch

    from marepo_ros.io.mapfile import SceneMap, save_map
    from marepo_ros.models.networks import Head

    stats = {"iterations": 40, "final_loss_px": 3.25, "frames": 24, "device": "cpu",
             "config": {"short_side": 240, "epochs": 4.0}, "marepo_s": {"steps": 10, "loss_after": 0.1}}
    created = datetime(2026, 11, 29, 12, tzinfo=timezone.utc).timestamp()
    path = tmp_path / "scene.map"
    save_map(SceneMap(head=Head(mean=torch.tensor([0.5, 0.0, 1.0])), encoder_id="abc123",
                      short_side=240, stats=stats, created=created,
                      extras={"regressor": {"w": torch.zeros(2)}}), path)
    assert cli.main(["map", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: format version 2, {path.stat().st_size / 1e6:.1f} MB" in out
    assert "created    2026-11-29 " in out
    assert "head       1 block(s) of 512 channels on encoder ace abc123; short side 240 px" in out
    assert "keyframes  none" in out and "centre     (0.50, 0.00, 1.00) m" in out
    assert "mapping    iterations=40, final_loss_px=3.25, frames=24, device=cpu" in out
    assert "config     short_side=240, epochs=4" in out and "marepo_s   steps=10" in out
    assert "extras     regressor" in out and len(out.splitlines()) == 9

    data = bytearray(path.read_bytes())
    data[-1000] ^= 0x01
    path.write_bytes(bytes(data))
    assert cli.main(["map", "info", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("marepo-ros: error: ") and "checksum mismatch" in captured.err
