"""The ROS 2 shell around the core: relocalization node, message conversions, parameters.

Only this subpackage imports rclpy and ROS message types.
"""
