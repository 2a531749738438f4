"""Build a map in a separate process, so the caller (e.g. the ROS node) stays responsive.

``BackgroundMapBuild(keyframes, out_path, config).start()`` spawns a fresh Python process that
loads the encoder, runs ``mapping.build_map`` and writes the map atomically to ``out_path``.
With a feature map in the config, it first writes the keyframe-only map (``keyframes_path``,
seconds after the start, announced on ``BuildStatus.keyframes_map_path``), then trains the head
and writes the full map (same keyframes, plus the head).
``poll()`` drains its progress messages and returns a ``BuildStatus``; ``cancel()`` stops it at
the next iteration (nothing is written). The child runs at a lower CPU priority with
``threads`` torch threads, leaving the rest of the machine to localization.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

import numpy as np

from .build import MappingConfig
from .keyframes import Keyframe

# share of the build each stage takes, in the order they run
STAGE_WEIGHT = {"features": 0.1, "tracks": 0.05, "refinement": 0.05, "triangulation": 0.1,
                "buffer": 0.2, "head": 0.5}


class BuildState(str, Enum):
    """Where a build stands: RUNNING until it ends in one of the others."""
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass
class BuildStatus:
    """progress in [0, 1]; message says what happens or happened; map_path is set when done;
    keyframes_map_path as soon as the keyframe-only map is written (before the head)."""
    state: BuildState
    progress: float = 0.0
    stage: str = ""
    message: str = ""
    map_path: str | None = None
    stats: dict = field(default_factory=dict)
    keyframes_map_path: str | None = None


def keyframes_path(out_path: str) -> str:
    """Where a build writes its keyframe-only map before the full one."""
    return str(Path(out_path).with_suffix(".keyframes.map"))


MAP_SUFFIX = ".map"
DEFAULT_MAP_NAME = "map-%Y%m%d-%H%M%S"  # time.strftime format, local time


def map_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a new map (one line), or None: a relative name must stay inside
    its folder (no '..'), and a name must name a file (not end with '/')."""
    if "\x00" in name:
        return f"mapping_map_name must not contain NUL characters (got {name!r})"
    path = Path(name).expanduser()
    if name and (name.endswith(("/", os.sep)) or path.name in ("", ".", "..")):
        return f"mapping_map_name must name a file, not a folder (got '{name}')"
    if not path.is_absolute() and ".." in path.parts:
        return (f"mapping_map_name '{name}' leaves map_dir ('..'): give a name inside map_dir, "
                f"or an absolute path to write elsewhere")
    return None


def map_output_path(map_dir: str, name: str) -> Path:
    """Where a map named ``name`` goes: inside ``map_dir`` (both ~-expanded) unless ``name`` is
    absolute, with '.map' added when missing; an empty name: map-<local date>-<time>.map.
    ValueError (``map_name_problem``'s line) for a name that is not allowed."""
    problem = map_name_problem(name)
    if problem:
        raise ValueError(problem)
    path = Path(map_dir).expanduser() / Path(name or time.strftime(DEFAULT_MAP_NAME)).expanduser()
    return path if path.suffix == MAP_SUFFIX else path.with_name(path.name + MAP_SUFFIX)


def refinement_note(stats: dict) -> str:
    """'; poses refined ...' / '; poses kept ...' of a build's statistics ('' without one)."""
    r = (stats.get("feature_map") or {}).get("refinement")
    if not r:
        return ""
    if "skipped" in r:
        return f"; pose refinement skipped: {r['skipped']}"
    verdict = "refined" if r["applied"] else "kept as given"
    return (f"; poses {verdict}: track reprojection median {r['before']['median_px']} -> "
            f"{r['after']['median_px']} px ({r['gain']}x)")


def posed_images(keyframes: list[tuple]) -> list:
    """PosedImages of (grey, K, map_from_cam, depth or None) keyframes: the depth is used like
    a dataset's (3D points lifted from it; triangulated where it is None)."""
    from .frames import PosedImage
    return [PosedImage(lambda g=g: g, K, pose, lambda d=d: d) for g, K, pose, d in keyframes]


def _child(keyframes: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]], out_path: str,
           config: MappingConfig, encoder_path: str | None, device: str, threads: int,
           nice: int, messages, cancel_event) -> None:
    """Process body: map the keyframes, write the map, report through ``messages``."""
    try:
        if nice:
            os.nice(nice)
        import torch

        from ..io.mapfile import save_map
        from ..models.networks import load_encoder
        from .build import build_map
        from .frames import MappingCancelled

        torch.set_num_threads(threads)
        images = posed_images(keyframes)
        last = [0.0]

        def progress(stage, done, total, info):
            now = time.monotonic()
            if now - last[0] > 0.25 or done >= total:
                last[0] = now
                messages.put(("progress", stage, done, total, {k: float(v) for k, v in info.items()}))

        t0 = time.time()
        feature_map = None
        if config.features is not None and config.head:
            # first the keyframe map alone (seconds): the node localizes in it while the head trains
            try:
                quick = build_map(images, None, replace(config, head=False, features=replace(
                                      config.features, refine=False)), device=device,
                                  progress=progress, cancel=cancel_event.is_set)
            except ValueError as exc:
                messages.put(("keyframes_failed", str(exc)))
            else:
                save_map(quick, keyframes_path(out_path))
                feature_map = quick.feature_map, quick.stats["feature_map"]
                messages.put(("keyframes", keyframes_path(out_path), feature_map[1]))
            if feature_map is None or not config.features.refine:
                config = replace(config, features=None)     # built, or failed: not again
            else:                                            # again, on refined poses
                feature_map = None
        encoder = load_encoder(encoder_path, device) if config.head else None
        scene_map = build_map(images, encoder, config, device=device, progress=progress,
                              cancel=cancel_event.is_set, feature_map=feature_map)
        size = save_map(scene_map, out_path)
        messages.put(("done", out_path, {**{k: v for k, v in scene_map.stats.items() if k != "config"},
                                         "bytes": size, "seconds": round(time.time() - t0, 1)}))
    except MappingCancelled:
        messages.put(("cancelled",))
    except BaseException as exc:  # report, never die silently
        messages.put(("failed", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=5)))


class BackgroundMapBuild:
    """One map build in a child process. Not restartable: make a new one per build."""

    def __init__(self, keyframes: list[Keyframe], out_path: str | Path, config: MappingConfig, *,
                 encoder_path: str | Path | None = None, device: str = "cpu", threads: int = 1,
                 nice: int = 5):
        if len(keyframes) < 2:
            raise ValueError(f"mapping needs at least 2 keyframes, got {len(keyframes)}")
        self.out_path = str(out_path)
        ctx = mp.get_context("spawn")  # never fork a process that runs DDS and torch threads
        self._messages = ctx.Queue()
        self._cancel = ctx.Event()
        self._process = ctx.Process(
            target=_child, name="marepo-map-build", daemon=True,
            args=([(k.grey, k.K, k.map_from_cam, k.depth) for k in keyframes], self.out_path, config,
                  None if encoder_path is None else str(encoder_path), device, threads, nice,
                  self._messages, self._cancel))
        self.status = BuildStatus(BuildState.RUNNING,
                                  message=f"starting ({len(keyframes)} keyframes)")

    def start(self) -> "BackgroundMapBuild":
        Path(self.out_path).parent.mkdir(parents=True, exist_ok=True)
        self._process.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def finished(self) -> bool:
        return self.status.state != BuildState.RUNNING

    def poll(self) -> BuildStatus:
        """Drain the child's messages; detect a child that died without a word."""
        while not self.finished:
            try:
                msg = self._messages.get_nowait()
            except queue.Empty:
                if not self._process.is_alive() and self._messages.empty():
                    code = self._process.exitcode
                    self.status = BuildStatus(
                        BuildState.FAILED, self.status.progress, self.status.stage,
                        f"mapping process exited unexpectedly (exit code {code})")
                break
            self._apply(msg)
        return self.status

    def join(self, timeout: float | None = None) -> BuildStatus:
        """Wait for the build to finish (or ``timeout`` seconds) and return its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll().state == BuildState.RUNNING:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return self.status

    def terminate(self) -> None:
        """Stop the child now (shutdown path)."""
        if self._process.is_alive():
            self._cancel.set()
            self._process.join(2.0)
            if self._process.is_alive():
                self._process.kill()

    def _apply(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "progress":
            _, stage, done, total, info = msg
            stages = list(STAGE_WEIGHT)
            before = sum(STAGE_WEIGHT[s] for s in stages[:stages.index(stage)]) if stage in stages else 0.0
            progress = max(self.status.progress,      # the full map's stages may come again
                           before + STAGE_WEIGHT.get(stage, 0.0) * done / max(total, 1))
            detail = f", loss {info['loss']:.2f} px" if "loss" in info else ""
            self.status = BuildStatus(BuildState.RUNNING, progress, stage,
                                      f"{stage} {done}/{total}{detail}",
                                      keyframes_map_path=self.status.keyframes_map_path)
        elif kind == "keyframes":
            _, path, stats = msg
            self.status = replace(self.status, keyframes_map_path=path, message=(
                f"keyframe map written ({stats['keyframes']} keyframes, {stats['points']} points); "
                f"training the head"))
        elif kind == "keyframes_failed":
            self.status = replace(self.status, message=f"no keyframe map ({msg[1]}); training the head")
        elif kind == "done":
            _, path, stats = msg
            self.status = BuildStatus(BuildState.DONE, 1.0, "", f"map written to {path} in "
                                      f"{stats['seconds']:.0f} s ({stats['frames']} keyframes"
                                      f"{refinement_note(stats)})",
                                      map_path=path, stats=stats,
                                      keyframes_map_path=self.status.keyframes_map_path)
        elif kind == "cancelled":
            self.status = BuildStatus(BuildState.CANCELLED, self.status.progress, self.status.stage,
                                      "mapping cancelled, no map written")
        elif kind == "failed":
            self.status = BuildStatus(BuildState.FAILED, self.status.progress, self.status.stage,
                                      f"mapping failed: {msg[1]}")
        if self.finished:
            self._process.join(5.0)
