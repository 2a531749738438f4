"""marepo_ros: visual relocalization (ACE-style scene coordinates, RANSAC / marepo) for ROS 2.

The core modules (everything except ``marepo_ros.ros``) never import rclpy.
"""
import os as _os
import sys as _sys

__version__ = "0.1.0"

# torch's OpenMP threads wait for the next parallel region by spinning 10k rounds, then sleep.
# Fully passive waiting made head training 2.8x slower on 2 cores (benchmarks/head_speed.py);
# endless spinning starves other processes on small shared machines. libgomp reads
# GOMP_SPINCOUNT once, when torch loads it, so this takes effect only where the package is
# imported before torch: `marepo-ros` and `relocalization_node` (the package loads before any
# of its modules), scripts/ and benchmarks/ (they import it first). Imported after torch, it is
# not set. The launch file sets it in the node's environment, whatever the import order. A
# caller's own OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
if "torch" not in _sys.modules and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "10000")
