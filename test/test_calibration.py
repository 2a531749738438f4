"""Calibrated confidence: the logistic fit, the model file, and the Pipeline applying it."""
import math

import numpy as np
import pytest

from marepo_ros.localization.calibration import (CUES, ConfidenceModel, cues, estimate_cues,
                                                 fit_logistic, load_model)
from marepo_ros.localization.estimate import Estimate


def test_the_fit_recovers_known_weights():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(20000), rng.normal(size=(20000, 3))])
    w_true = np.array([0.5, 2.0, -1.0, 0.0])
    y = rng.random(20000) < 1 / (1 + np.exp(-X @ w_true))
    np.testing.assert_allclose(fit_logistic(X, y, l2=0.0), w_true, atol=0.1)


def test_cues_of_an_estimate_and_a_model_round_trip(tmp_path):
    cov = np.diag([1e-4, 1e-4, 2e-4, 1e-5, 1e-5, 1e-5])
    est = Estimate(np.eye(4), cov, n_inliers=120, inlier_ratio=0.6, confidence=0.9,
                   evidence={"agreement": 1.0})
    x = estimate_cues(est)
    assert len(x) == len(CUES) and x[0] == 1.0 and x[1] == pytest.approx(math.log(121))
    assert x[3] == pytest.approx(math.log(100 * math.sqrt(4e-4)))     # position sigma, cm
    assert x[5] == 1.0 and x[6] == 1.0                                 # agreement, 2nd source
    assert cues(10, 0.1, float("inf"), float("inf"), None)[3] == pytest.approx(math.log(100.0))
    model = ConfidenceModel({"points": [2.0, 0, 0, 0, 0, 0, 0, 0]}, 0.4, "a test")
    model.save(tmp_path / "c.json")
    back = load_model(tmp_path / "c.json")
    assert back.min_confidence == 0.4 and back.note == "a test"
    assert back.probability("points", est) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert back.probability("ransac", est) is None                    # no model: own confidence
    (tmp_path / "old.json").write_text('{"cues": ["bias"], "weights": {}, "min_confidence": 0.5}')
    with pytest.raises(ValueError, match="cues"):
        load_model(tmp_path / "old.json")
    assert load_model(tmp_path / "missing.json") is None


def test_the_pipeline_reports_the_calibrated_probability(redkitchen, kitchen_map, tmp_path):
    from conftest import KITCHEN_QUERIES

    from marepo_ros.camera import Camera
    from marepo_ros.io.dataset import SceneDataset
    from marepo_ros.localization.pipeline import Pipeline, PipelineConfig

    ConfidenceModel({"points": [math.log(0.8 / 0.2), 0, 0, 0, 0, 0, 0, 0]}).save(tmp_path / "c.json")
    ds = SceneDataset(redkitchen)
    fr = ds.frame(KITCHEN_QUERIES[0])
    plain = Pipeline.from_file(kitchen_map, PipelineConfig("points", confidence_model=str(tmp_path / "none.json")))
    calibrated = Pipeline.from_file(kitchen_map, PipelineConfig("points", confidence_model=str(tmp_path / "c.json")))
    raw, est = (p.localize(fr.load_image(), Camera(ds.K)) for p in (plain, calibrated))
    assert est.confidence == pytest.approx(0.8) and est.evidence["raw_confidence"] == raw.confidence
    np.testing.assert_allclose(est.map_from_cam, raw.map_from_cam)
