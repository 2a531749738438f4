"""Image -> pose at run time: the ``Pipeline`` (the one way to build a localizer), the estimate
types, the table of estimators (``registry``), RANSAC (P3P, poselib), the regressors' estimator,
the keyframe estimators. May import: ``geometry``, ``camera``, ``models``, ``io``."""
