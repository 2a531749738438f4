"""marepo_ros: visual relocalization (ACE-style scene coordinates, RANSAC / marepo) for ROS 2.

The core modules (everything except ``marepo_ros.ros``) never import rclpy.
"""
__version__ = "0.1.0"
