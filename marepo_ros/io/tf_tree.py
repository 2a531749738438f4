"""The TF tree of a recording, as tf2's buffer holds it, for offline lookups.

``TransformTree.add(parent, child, parent_from_child, stamp_ns)`` records one transform from
/tf (``stamp_ns`` in integer nanoseconds) or /tf_static (``stamp_ns=None``);
``lookup(target, source, stamp_ns)`` chains the edges between the two frames, in any
direction, into ``target_from_source`` at that time.

Conventions: poses are 4x4 float64 rigid transforms named ``<to>_from_<from>``
(``parent_from_child`` maps points in the child frame to the parent frame, which is what a
``TransformStamped`` with ``header.frame_id = parent`` and ``child_frame_id = child`` holds);
translations in metres; stamps in integer nanoseconds. Frame ids lose a leading "/".
Like tf2, a frame has one parent; a static edge holds at every time; a dynamic edge is
interpolated between the two samples that bracket the stamp (translation linear, rotation
slerp) and does not extrapolate beyond ``max_extrapolation_ns``, where it holds the end sample.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from ..geometry import invert_pose, pose_from_quat


class TransformError(LookupError):
    """A transform that the tree cannot give (unknown frame, no path, stamp out of range)."""


def _frame_id(frame: str) -> str:
    return frame.lstrip("/")


def _seconds(stamp_ns: int) -> str:
    """A nanosecond stamp as exact decimal seconds."""
    sign = "-" if stamp_ns < 0 else ""
    sec, ns = divmod(abs(int(stamp_ns)), 1_000_000_000)
    return f"{sign}{sec}.{ns:09d}"


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Unit quaternion a of the way from q0 to q1 along the shorter arc (x, y, z, w order)."""
    d = float(q0 @ q1)
    if d < 0.0:
        q1, d = -q1, -d
    if d > 1.0 - 1e-12:  # (nearly) the same rotation: the arc is a line
        q = (1.0 - a) * q0 + a * q1
    else:
        theta = np.arccos(d)
        q = (np.sin((1.0 - a) * theta) * q0 + np.sin(a * theta) * q1) / np.sin(theta)
    return q / np.linalg.norm(q)


class _Edge:
    """One parent -> child edge: a static pose, or time-sorted samples."""

    def __init__(self, parent: str, child: str, static: bool):
        self.parent, self.child, self.static = parent, child, static
        self._new_stamps: list[int] = []
        self._new_poses: list[np.ndarray] = []
        self.stamps_ns = np.zeros(0, np.int64)
        self.poses = np.zeros((0, 4, 4))
        self.quats = np.zeros((0, 4))

    def add(self, parent_from_child: np.ndarray, stamp_ns: int | None) -> None:
        if self.static:
            self.poses = parent_from_child[None]  # a newer static transform replaces the older
        else:
            self._new_stamps.append(int(stamp_ns))
            self._new_poses.append(parent_from_child)

    def _sort(self) -> None:
        """Merge the pending samples in: sorted by stamp, the first of equal stamps kept (tf2
        ignores repeated data)."""
        stamps = np.concatenate([self.stamps_ns, np.asarray(self._new_stamps, np.int64)])
        poses = np.concatenate([self.poses, np.stack(self._new_poses)])
        order = np.argsort(stamps, kind="stable")
        self.stamps_ns, first = np.unique(stamps[order], return_index=True)
        self.poses = poses[order][first]
        self.quats = Rotation.from_matrix(self.poses[:, :3, :3]).as_quat()
        self._new_stamps, self._new_poses = [], []

    def span(self) -> str:
        return (f"its {len(self.stamps_ns)} samples span {_seconds(self.stamps_ns[0])} .. "
                f"{_seconds(self.stamps_ns[-1])} s")

    def at(self, stamp_ns: int, max_extrapolation_ns: int) -> np.ndarray:
        """``parent_from_child`` at ``stamp_ns``."""
        if self.static:
            return self.poses[0]
        if self._new_stamps:
            self._sort()
        stamps = self.stamps_ns
        i = int(np.searchsorted(stamps, stamp_ns, side="right"))  # stamps[i - 1] <= stamp_ns
        if i > 0 and stamps[i - 1] == stamp_ns:
            return self.poses[i - 1]
        if i == 0 or i == len(stamps):
            end = 0 if i == 0 else -1
            if abs(stamp_ns - int(stamps[end])) > max_extrapolation_ns:
                raise TransformError(
                    f"no transform {self.parent} -> {self.child} at t={_seconds(stamp_ns)} s: "
                    f"{self.span()} (max extrapolation {max_extrapolation_ns} ns)")
            return self.poses[end]
        t0, t1 = int(stamps[i - 1]), int(stamps[i])
        a = (stamp_ns - t0) / (t1 - t0)
        p0, p1 = self.poses[i - 1], self.poses[i]
        return pose_from_quat((1.0 - a) * p0[:3, 3] + a * p1[:3, 3],
                              _slerp(self.quats[i - 1], self.quats[i], a))


class TransformTree:
    """Transforms of a recording (/tf and /tf_static) for lookups at any stamp they cover.

    ``max_extrapolation_ns``: how far before the first or after the last sample of a dynamic
    edge a lookup may ask (it then gets that end sample); 0, the default, allows exactly the
    samples' span, like tf2.
    """

    def __init__(self, max_extrapolation_ns: int = 0):
        self.max_extrapolation_ns = int(max_extrapolation_ns)
        self._edges: dict[str, _Edge] = {}  # by child frame: a frame has one parent

    def add(self, parent: str, child: str, parent_from_child: np.ndarray,
            stamp_ns: int | None) -> None:
        """Record ``parent_from_child`` (4x4) at ``stamp_ns`` (ns), or static when None."""
        parent, child = _frame_id(parent), _frame_id(child)
        pose = np.asarray(parent_from_child, dtype=np.float64)
        if not parent or not child or parent == child:
            raise TransformError(f"invalid transform '{parent}' -> '{child}': frame ids must "
                                 f"be non-empty and differ")
        if pose.shape != (4, 4) or not np.all(np.isfinite(pose)):
            raise TransformError(f"transform {parent} -> {child} must be a finite 4x4 matrix, "
                                 f"got shape {pose.shape}")
        static = stamp_ns is None
        edge = self._edges.get(child)
        if edge is None:
            frame = parent
            while frame in self._edges:  # the new edge must not close a loop
                frame = self._edges[frame].parent
                if frame == child:
                    raise TransformError(f"transform {parent} -> {child} would make a loop: "
                                         f"{child} is already an ancestor of {parent}")
            edge = self._edges[child] = _Edge(parent, child, static)
        elif edge.parent != parent:
            raise TransformError(f"frame {child} has parent {edge.parent}; it cannot also be a "
                                 f"child of {parent} (a frame has one parent)")
        elif edge.static != static:
            kinds = ("static (/tf_static)", "dynamic (/tf)")
            raise TransformError(f"transform {parent} -> {child} is {kinds[not edge.static]}; "
                                 f"it cannot also be {kinds[not static]}")
        edge.add(pose.copy(), stamp_ns)

    def frames(self) -> list[str]:
        """All frame ids, sorted."""
        return sorted({f for e in self._edges.values() for f in (e.parent, e.child)})

    def edges(self) -> list[tuple[str, str]]:
        """(parent, child) of every edge, in the order they were first added."""
        return [(e.parent, e.child) for e in self._edges.values()]

    def _path_to_root(self, frame: str) -> list[str]:
        path = [frame]
        while path[-1] in self._edges:
            path.append(self._edges[path[-1]].parent)
        return path

    def _top_from_bottom(self, path: list[str], stamp_ns: int) -> np.ndarray:
        """``path[-1]_from_path[0]`` along a path up the tree."""
        top_from_frame = np.eye(4)
        for frame in path[:-1]:
            top_from_frame = self._edges[frame].at(stamp_ns, self.max_extrapolation_ns) @ top_from_frame
        return top_from_frame

    def lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray:
        """``target_from_source`` (4x4) at ``stamp_ns`` (ns)."""
        target, source = _frame_id(target), _frame_id(source)
        known = self.frames()
        for frame in (target, source):
            if frame not in known:
                raise TransformError(f"unknown frame '{frame}'; known frames: {', '.join(known)}")
        up_source, up_target = self._path_to_root(source), self._path_to_root(target)
        if up_source[-1] != up_target[-1]:
            raise TransformError(f"frames {target} and {source} are not connected (trees rooted "
                                 f"at {up_target[-1]} and {up_source[-1]}); known frames: "
                                 f"{', '.join(known)}")
        on_target_path = set(up_target)
        common = next(f for f in up_source if f in on_target_path)
        up_source = up_source[:up_source.index(common) + 1]
        up_target = up_target[:up_target.index(common) + 1]
        stamp_ns = int(stamp_ns)
        common_from_target = self._top_from_bottom(up_target, stamp_ns)
        return invert_pose(common_from_target) @ self._top_from_bottom(up_source, stamp_ns)

    def can_transform(self, target: str, source: str, stamp_ns: int) -> bool:
        """Whether ``lookup(target, source, stamp_ns)`` would succeed."""
        try:
            self.lookup(target, source, stamp_ns)
        except TransformError:
            return False
        return True
