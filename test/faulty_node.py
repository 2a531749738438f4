"""The relocalization node with one fault injected, for tests of its worker: the first pose
it publishes raises inside ``_publish`` (as a broken middleware or message would).

    python test/faulty_node.py --ros-args -p map_path:=...
"""
import sys

from marepo_ros.ros import node as node_module

_publish = node_module.RelocalizationNode._publish
_calls = []


def failing_publish(self, header, *args, **kwargs):
    _calls.append(header)
    if len(_calls) == 1:
        raise RuntimeError("injected publishing failure")
    return _publish(self, header, *args, **kwargs)


if __name__ == "__main__":
    node_module.RelocalizationNode._publish = failing_publish
    sys.exit(node_module.main(["faulty_node", *sys.argv[1:]]))
