"""The robot runtime's own pure logic, without ROS: ``tracking`` (prior, odometry propagation,
jump gating, still-standing skips), ``rep105`` (map -> odom and map -> base from a camera pose),
``planar`` (two_d_mode: up axis, planar poses and covariances), ``requests`` (which frames are
localized, which poses seed /initialpose), ``gaps`` (frames missing from a publisher's stream, from its stamps), ``streams`` (stamp
pairing, newest-only hand-off, input rate), ``mount`` (base_from_camera from TF or the parameter). Used by the ROS shell and by ``mapping.keyframes``.
May import: ``geometry``."""
