"""Calibrated confidence: one meaning for every estimator, the probability that a pose is within
10 cm and 5° of the truth.

Each estimator's own score (inlier counts, ratios, its covariance, the agreement of two sources)
means something different per estimator; a logistic model per estimator maps those cues to one
probability, fitted on evaluation rows that the benchmark does not report on
(benchmarks/fit_confidence.py) and shipped with the package (``confidence.json``, with a note
of what it was fitted on). Scale: the target is metric (10 cm), and so is the position sigma
among the cues; a scene much larger than a room keeps the meaning ("within 10 cm") but the
model was not fitted there.

Cues (``cues``): log(1 + inliers), inlier ratio, log of the position and rotation sigma (cm,
degrees; from the covariance), for estimators with two sources the agreement (1 agree, 0.5
one source, 0 disagree) and whether the second source was consulted, and for the keyframes the
runner-up: a rival pose's inliers from another covisibility group over the pose's (0: none).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .estimate import MIN_CONFIDENCE, Estimate

CUES = ("bias", "log_inliers", "inlier_ratio", "log_sigma_cm", "log_sigma_deg", "agreement",
        "second_source", "runner_up")
SIGMA_FLOOR = (0.01, 0.001)   # cm, degrees: a floor under the sigmas before the log


def cues(n_inliers: float, inlier_ratio: float, sigma_cm: float, sigma_deg: float,
         agreement: float | None, runner_up: float = 0.0) -> np.ndarray:
    """The model's input vector (``CUES``) from an estimate's figures; a non-finite sigma (no
    covariance) is taken as 1 m / 10°."""
    sigma_cm = sigma_cm if math.isfinite(sigma_cm) else 100.0
    sigma_deg = sigma_deg if math.isfinite(sigma_deg) else 10.0
    return np.array([1.0, math.log1p(max(n_inliers, 0.0)), float(inlier_ratio),
                     math.log(max(sigma_cm, SIGMA_FLOOR[0])), math.log(max(sigma_deg, SIGMA_FLOOR[1])),
                     0.0 if agreement is None else float(agreement),
                     0.0 if agreement is None else 1.0, float(runner_up)])


def estimate_cues(est: Estimate) -> np.ndarray:
    """``cues`` of an Estimate."""
    sigma_m, sigma_rad = est.sigmas()
    return cues(est.n_inliers, est.inlier_ratio, 100 * sigma_m, math.degrees(sigma_rad),
                est.evidence.get("agreement"), est.evidence.get("runner_up", 0.0))


def fit_logistic(X: np.ndarray, y: np.ndarray, *, l2: float = 1e-2, iterations: int = 50) -> np.ndarray:
    """Weights (D,) of P(y = 1 | x) = sigmoid(x . w) by Newton's method on the L2-penalised log
    likelihood (the bias, column 0, unpenalised). X: (N, D) cues, y: (N,) 0/1."""
    X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
    w = np.zeros(X.shape[1])
    penalty = np.full(X.shape[1], l2)
    penalty[0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -30, 30)))
        grad = X.T @ (p - y) + penalty * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + np.diag(penalty) + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


@dataclass
class ConfidenceModel:
    """Per estimator name, the logistic weights over ``CUES``; ``note``: what it was fitted on;
    ``min_confidence``: the probability threshold chosen for at most 0.5 % wrong among published
    poses on the fit rows."""
    weights: dict[str, list[float]] = field(default_factory=dict)
    min_confidence: float = 0.5
    note: str = ""

    def probability(self, name: str, est: Estimate) -> float | None:
        """P(within 10 cm/5°) of an estimate of estimator ``name``; None without a model for it."""
        w = self.weights.get(name)
        if w is None:
            return None
        z = float(np.clip(estimate_cues(est) @ np.asarray(w), -30, 30))
        return 1.0 / (1.0 + math.exp(-z))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"cues": CUES, "weights": self.weights,
                                          "min_confidence": self.min_confidence,
                                          "note": self.note}, indent=1) + "\n")


def shipped_model_path() -> Path:
    return Path(str(resources.files("marepo_ros.localization") / "confidence.json"))


def load_model(path: str | Path | None = None) -> ConfidenceModel | None:
    """The model at ``path`` (default: the shipped one); None when there is none. ValueError
    when its cues are not this version's."""
    path = Path(path) if path is not None else shipped_model_path()
    if not path.is_file():
        return None
    content = json.loads(path.read_text())
    if tuple(content.get("cues", ())) != CUES:
        raise ValueError(f"{path}: confidence model over cues {content.get('cues')}, not {CUES}")
    return ConfidenceModel(content["weights"], float(content["min_confidence"]), content.get("note", ""))


def default_min_confidence() -> float:
    """The publishing threshold a user gets by default: the shipped model's ``min_confidence``
    (a probability, chosen on the fit rows), else ``estimate.MIN_CONFIDENCE`` (no model)."""
    model = load_model()
    return model.min_confidence if model is not None else MIN_CONFIDENCE
