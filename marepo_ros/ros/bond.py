"""nav2's bond with its lifecycle manager, where ``bondpy`` is installed (a full ROS 2 install
with ros-<distro>-bondpy; the PyPI wheels have none).

nav2's lifecycle_manager watches a heartbeat from each node it manages on the topic ``bond``,
with the node's name as the bond id (nav2_util's LifecycleNode: a 0.1 s period, a 4 s timeout),
and aborts the bring-up of a node that forms none unless its ``bond_timeout`` is 0. The node
forms the bond when it is activated and breaks it when it is deactivated or shut down; without
bondpy it says so once (the launch file then runs the manager with ``bond_timeout: 0.0``).
"""
from __future__ import annotations

try:  # ROS 2's bondpy (bond_core); absent from the PyPI wheels
    from bondpy.bondpy import Bond
except ImportError:
    Bond = None

BOND_TOPIC = "bond"
HEARTBEAT_PERIOD_S = 0.1     # nav2_util::LifecycleNode::createBond
HEARTBEAT_TIMEOUT_S = 4.0


def bond_available() -> bool:
    return Bond is not None


class ManagerBond:
    """The node's end of nav2's bond: ``form()`` on activate, ``release()`` on deactivate and
    shutdown; ``state`` for ~/status ("formed", "waiting", "off: ..." )."""

    def __init__(self, node):
        self._node, self._bond, self._formed = node, None, False

    @property
    def state(self) -> str:
        if Bond is None:
            return "off: bondpy is not installed (nav2's lifecycle_manager needs bond_timeout 0.0)"
        if self._bond is None:
            return "off: not active"
        return "formed" if self._formed else "waiting for the lifecycle manager"

    def form(self) -> None:
        if Bond is None:
            self._node.get_logger().info(f"no bond with nav2's lifecycle manager: {self.state[5:]}")
            return
        self.release()
        self._formed = False
        bond = Bond(BOND_TOPIC, self._node.get_name(), self._node,
                    on_broken=self._on_broken, on_formed=self._on_formed)
        bond.heartbeat_period = HEARTBEAT_PERIOD_S
        bond.heartbeat_timeout = HEARTBEAT_TIMEOUT_S
        bond.start()
        self._bond = bond
        self._node.get_logger().info(f"bond '{self._node.get_name()}' to the lifecycle manager started")

    def release(self) -> None:
        if self._bond is not None:
            self._bond.shutdown()
            self._bond, self._formed = None, False

    def _on_formed(self) -> None:
        self._formed = True
        self._node.get_logger().info("bond with the lifecycle manager formed")

    def _on_broken(self) -> None:
        self._formed = False
        self._node.get_logger().warning("bond with the lifecycle manager broken")
