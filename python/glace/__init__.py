"""glace: GLACE visual relocalization (scene coordinate regression) from Python.

Map a scene from posed images, then localize camera frames in it::

    import glace
    glace.map_scene("scenes/desk", "maps/desk.glace")          # the cpu preset, with a progress bar
    loc = glace.Localizer(glace.Map.open("maps/desk.glace"))
    r = loc.localize(glace.read_image("frame.png"), K)          # K: 3x3
    if r.success:
        print(r.world_from_cam)                                 # 4x4 camera-to-world, float64

Everything runs in Rust with the GIL released; bad input raises ``glace.InputError`` (a
``ValueError``) with the message the ``glace`` command line prints.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Optional, Sequence, Union

from ._errors import Error, InputError
from ._glace import Localization, Localizer, LocalizerOptions, Map, Scene, read_image
from . import _glace

__all__ = [
    "Error",
    "InputError",
    "Localization",
    "Localizer",
    "LocalizerOptions",
    "Map",
    "Scene",
    "read_image",
    "map_scene",
    "convert_7scenes",
    "convert_12scenes",
    "convert_cambridge",
    "convert_aachen",
    "convert_rooms",
    "convert_colmap",
    "convert_tum",
    "convert_transforms",
]

PathLike = Union[str, "os.PathLike[str]"]


class _Bar:
    """A progress line on stderr: tqdm when it is installed, else a plain one."""

    def __init__(self) -> None:
        try:
            import tqdm  # type: ignore

            self._tqdm = tqdm.tqdm
        except ImportError:
            self._tqdm = None
        self._bar: Any = None
        self._name = ""
        self._total = 0

    def __call__(self, event: str, a: Any, b: Any) -> None:
        if event == "phase":
            self.close()
            self._name, self._total = a, b
            if self._tqdm is not None:
                self._bar = self._tqdm(total=b, desc=a, file=sys.stderr, leave=False)
            return
        done, status = a, b
        if self._bar is not None:
            self._bar.n = done
            self._bar.set_postfix_str(status, refresh=True)
        elif sys.stderr.isatty():
            width = 30
            filled = int(width * done / max(self._total, 1))
            line = f"\r{self._name} [{'=' * filled}{' ' * (width - filled)}] {done}/{self._total} {status}"
            sys.stderr.write(line[:120])
            sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._name and sys.stderr.isatty():
            sys.stderr.write("\r" + " " * 120 + "\r")
            sys.stderr.flush()


def map_scene(
    scene_dir: PathLike,
    map_path: PathLike,
    *,
    preset: str = "cpu",
    encoder: str = "xfeat",
    global_source: Optional[str] = None,
    skip_invalid_poses: bool = False,
    progress: Union[bool, Callable[[str, Any, Any], None]] = True,
    log: Optional[PathLike] = None,
    force: bool = False,
    **options: Any,
) -> dict:
    """Trains a map for the scene's training split and writes it to ``map_path`` (and its JSON
    log to ``<map>.json``, or ``log``). Returns the log as a dict.

    ``preset`` is ``cpu`` (default) or one of the reference's (``7scenes``, ``12scenes``,
    ``cambridge``, ``rooms``, ``aachen``); ``options`` override its fields by name
    (``iterations=5000``, ``buffer_size=...``, ``head_channels=...``; see ``glace map --help``).
    A stated ``iterations`` or ``buffer_size`` is used as given; otherwise the ``cpu`` preset
    sizes both by the number of training frames.
    ``global_source`` is ``builtin``, ``features``, ``none`` or ``r2former:<checkpoint>``.
    ``progress`` shows a bar on stderr (True), nothing (False), or calls ``progress(event, a, b)``.
    Ctrl-C stops mapping with ``KeyboardInterrupt``. An existing map or log is replaced only
    with ``force=True``; outputs that would overwrite an input are refused.
    """
    bar: Optional[_Bar] = None
    if progress is True:
        bar = _Bar()
        callback: Optional[Callable[[str, Any, Any], None]] = bar
    elif progress is False or progress is None:
        callback = None
    else:
        callback = progress
    try:
        return _glace.map_scene(
            os.fspath(scene_dir),
            os.fspath(map_path),
            preset,
            encoder,
            global_source,
            json.dumps(options),
            skip_invalid_poses,
            callback,
            None if log is None else os.fspath(log),
            force,
        )
    finally:
        if bar is not None:
            bar.close()


def _convert(fmt: str, input: PathLike, output: PathLike, force: bool, copy: bool, dry_run: bool, **options: Any) -> str:
    options = {k: (os.fspath(v) if isinstance(v, os.PathLike) else v) for k, v in options.items() if v is not None}
    return _glace.convert(fmt, os.fspath(input), os.fspath(output), json.dumps(options), force, copy, dry_run)


def convert_7scenes(
    input: PathLike,
    output: PathLike,
    *,
    poses: str = "calibrated",
    pgt_dir: Optional[PathLike] = None,
    skip_invalid_poses: bool = False,
    force: bool = False,
    copy: bool = False,
    dry_run: bool = False,
) -> str:
    """Microsoft 7-Scenes (one raw scene folder) to the scene layout; returns the plan's summary."""
    return _convert("7scenes", input, output, force, copy, dry_run, poses=poses, pgt_dir=pgt_dir,
                    skip_invalid_poses=skip_invalid_poses)


def convert_12scenes(
    input: PathLike, output: PathLike, *, pgt_dir: Optional[PathLike] = None, full_k: bool = False,
    force: bool = False, copy: bool = False, dry_run: bool = False,
) -> str:
    """Stanford 12-Scenes (one raw room) to the scene layout."""
    return _convert("12scenes", input, output, force, copy, dry_run, pgt_dir=pgt_dir, full_k=full_k)


def convert_cambridge(
    input: PathLike, output: PathLike, *, height: int = 480, force: bool = False, copy: bool = False,
    dry_run: bool = False,
) -> str:
    """Cambridge Landmarks (one raw scene) to the scene layout, resized to shorter side ``height``."""
    return _convert("cambridge", input, output, force, copy, dry_run, height=height)


def convert_aachen(
    input: PathLike, output: PathLike, *, height: int = 480, force: bool = False, copy: bool = False,
    dry_run: bool = False,
) -> str:
    """Aachen Day-Night to the scene layout (test poses are placeholders)."""
    return _convert("aachen", input, output, force, copy, dry_run, height=height)


def convert_rooms(input: PathLike, output: PathLike, *, force: bool = False, copy: bool = False,
                  dry_run: bool = False) -> str:
    """An integrated-rooms list file to one scene."""
    return _convert("rooms", input, output, force, copy, dry_run)


def convert_colmap(
    model: PathLike,
    output: PathLike,
    *,
    images: Optional[PathLike] = None,
    test_every: int = 8,
    test_offset: int = 0,
    test_list: Optional[PathLike] = None,
    force: bool = False,
    copy: bool = False,
    dry_run: bool = False,
) -> str:
    """A COLMAP sparse model (text or binary) to the scene layout; every ``test_every``-th image
    (sorted by name) is a test image unless ``test_list`` names them."""
    return _convert("colmap", model, output, force, copy, dry_run, images=images, test_every=test_every,
                    test_offset=test_offset, test_list=test_list)


def convert_tum(
    input: PathLike,
    output: PathLike,
    *,
    camera: Optional[str] = None,
    intrinsics: Optional[Sequence[float]] = None,
    test_every: int = 4,
    test_offset: int = 2,
    max_gap: float = 0.05,
    force: bool = False,
    copy: bool = False,
    dry_run: bool = False,
) -> str:
    """A TUM RGB-D sequence to the scene layout; ``camera`` is fr1, fr2 or fr3 (default: from
    the folder name) unless ``intrinsics`` gives (fx, fy, cx, cy)."""
    return _convert("tum", input, output, force, copy, dry_run, camera=camera,
                    intrinsics=None if intrinsics is None else [float(v) for v in intrinsics],
                    test_every=test_every, test_offset=test_offset, max_gap=max_gap)


def convert_transforms(
    input: PathLike, output: PathLike, *, test_every: int = 8, test_offset: int = 0, force: bool = False,
    copy: bool = False, dry_run: bool = False,
) -> str:
    """A NeRF transforms.json (instant-ngp, nerfstudio) to the scene layout."""
    return _convert("transforms", input, output, force, copy, dry_run, test_every=test_every,
                    test_offset=test_offset)
