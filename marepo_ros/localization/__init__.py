"""Image -> pose at run time: the ``Localizer``, the estimator interface and registry, RANSAC
(P3P), the marepo estimator, stream pairing. May import: ``geometry``, ``models``, ``io``."""
