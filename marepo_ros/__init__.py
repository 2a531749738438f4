"""marepo_ros: visual relocalization (ACE-style scene coordinates, RANSAC / marepo) for ROS 2.

The core modules (everything except ``marepo_ros.ros``) never import rclpy.
"""
import os as _os

__version__ = "0.1.0"

# torch's OpenMP threads wait for the next parallel region by spinning 10k rounds, then sleep.
# Fully passive waiting made head training 2.8x slower on 2 cores (benchmarks/head_speed.py);
# endless spinning starves other processes on small shared machines. It must be set before
# torch loads libgomp, so every entry point imports this package first; a caller's own
# OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "10000")
