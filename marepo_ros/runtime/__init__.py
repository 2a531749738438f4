"""The robot runtime's own pure logic, without ROS: ``tracking`` (prior, odometry propagation,
jump gating, still-standing skips), ``rep105`` (map -> odom and map -> base from a camera pose),
``gaps`` (frames missing from a publisher's stream, from its stamps), ``streams`` (stamp
pairing, newest-only hand-off, input rate). Used by the ROS shell and by ``mapping.keyframes``.
May import: ``geometry``."""
