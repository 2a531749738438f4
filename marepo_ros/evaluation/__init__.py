"""Scoring: pose errors and metrics, reports and plots, live-replay scoring, the classical SIFT
baseline. May import: ``geometry``, ``models``, ``io``, ``localization``, ``runtime``, ``mapping``."""
