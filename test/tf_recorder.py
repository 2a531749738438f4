"""Records /tf (tf2_msgs/TFMessage) for SECONDS and prints one JSON line per transform. Runs in
a process of its own, started with a tf2_msgs build on LD_LIBRARY_PATH and PYTHONPATH
(scripts/build_tf2_msgs.py): the type support libraries are found through LD_LIBRARY_PATH as
it was when the process started.

    python test/tf_recorder.py SECONDS
"""
import json
import sys
import time

import rclpy
from tf2_msgs.msg import TFMessage


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("tf_recorder")

    def on_tf(msg: TFMessage) -> None:
        for t in msg.transforms:
            tr, q = t.transform.translation, t.transform.rotation
            print(json.dumps({"parent": t.header.frame_id, "child": t.child_frame_id,
                              "stamp": t.header.stamp.sec + 1e-9 * t.header.stamp.nanosec,
                              "t": [tr.x, tr.y, tr.z], "q": [q.x, q.y, q.z, q.w]}), flush=True)

    node.create_subscription(TFMessage, "/tf", on_tf, 100)
    print(json.dumps({"ready": True}), flush=True)
    end = time.monotonic() + float(sys.argv[1])
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    rclpy.shutdown()


if __name__ == "__main__":
    main()
