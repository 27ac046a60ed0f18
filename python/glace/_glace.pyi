"""Type stubs of glace's native module (re-exported by ``glace``)."""

import os
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, "os.PathLike[str]"]

class Map:
    """A trained map: a glace map file or an official GLACE ``.pt`` head."""

    @staticmethod
    def open(path: _Path) -> "Map":
        """Opens and verifies a map file; raises InputError naming the file when it is not one."""
    @property
    def path(self) -> Optional[str]: ...
    @property
    def format(self) -> str:
        """``glace-map`` or ``reference-pt``."""
    @property
    def description(self) -> dict:
        """Head architecture, encoder identities and training options."""
    @property
    def global_dim(self) -> int:
        """Width of the global descriptor the head takes (0 for ACE-style maps)."""

class Localization:
    """What one ``Localizer.localize`` call found."""

    success: bool
    cam_from_world: Optional[npt.NDArray[np.float64]]
    """4x4 taking world points into the camera (what pose files and COLMAP store), or None."""
    world_from_cam: Optional[npt.NDArray[np.float64]]
    """4x4 camera-to-world: the camera's place in the world (last column: its centre), or None."""
    cam_from_world_quaternion: Optional[tuple[float, float, float, float]]
    """``cam_from_world``'s rotation (w, x, y, z; w >= 0), as pose files store it."""
    cam_from_world_translation: Optional[tuple[float, float, float]]
    """``cam_from_world``'s translation, as pose files store it."""
    inliers: int
    refined: bool
    """The pose was refined against the map's triangulated points (maps of the ``cpu`` preset)."""
    retrieved: bool
    """The refinement started from the points of the mapping views nearest by global descriptor."""
    failure: Optional[str]
    times_ms: dict[str, float]
    """Milliseconds per stage: decode, encode, head, ransac, refine."""
    coordinates: Optional[dict[str, Any]]
    """With ``coordinates=True``: ``pixels`` (N, 2), ``points`` (N, 3), ``colours`` (N, 3), ``grid``."""

class LocalizerOptions:
    """How a ``Localizer`` is set up. Every default is the Rust library's, so Python, the
    command line and the service localize alike; ``LocalizerOptions(hypotheses=16)`` changes
    one field, and fields can be set afterwards."""

    hypotheses: int
    threshold: float
    inlier_alpha: float
    max_pixel_error: float
    max_tries: int
    refinement_rounds: int
    time_budget_ms: Optional[int]
    """RANSAC's wall-time budget per query (None or 0: none)."""
    seed: int
    image_height: Optional[int]
    """Shorter image side the networks see (None: the map's own)."""
    clean_global: bool
    ace_encoder: Optional[_Path]
    r2former: Optional[_Path]
    precision: str
    """``"auto"`` (bf16 where this CPU has a path faster than fp32, else fp32), ``"fp32"`` or ``"bf16"``."""
    turns: str
    """``"auto"`` (as the map recommends: all four quarter turns where its mapping views are
    rolled against each other, else upright), ``"upright"`` (the reference) or ``"all"``."""
    structure: bool
    """Refine poses against the points the map triangulated across its mapping views, where it
    has them; False keeps the scene coordinates' pose, as the reference."""
    min_inliers: int
    min_inlier_ratio: float
    min_spread: float
    """When a pose from the scene coordinates counts as found (0 everywhere: every pose RANSAC
    returns); otherwise the result's ``failure`` says why."""
    def __init__(self, **fields: Any) -> None: ...

class Localizer:
    """A map ready to localize images. Thread-safe; the GIL is released while it works."""

    def __init__(self, map: Map, options: Optional[LocalizerOptions] = None, **fields: Any) -> None:
        """``options`` (default ``LocalizerOptions()``) with any of its fields given as
        keywords on top (``Localizer(m, hypotheses=16)``); an unknown keyword is a TypeError."""
    def localize(
        self,
        image: npt.NDArray[np.uint8],
        K: npt.ArrayLike,
        distortion: Optional[Sequence[float]] = None,
        *,
        descriptor: Optional[Sequence[float]] = None,
        coordinates: bool = False,
    ) -> Localization:
        """``image``: (H, W, 3) or (H, W) uint8; ``K``: 3x3 for that image; ``distortion``:
        OpenCV k1 k2 p1 p2 [k3]. Raises InputError for a wrong dtype, shape or a non-finite K."""
    @property
    def map(self) -> Map: ...
    @property
    def image_height(self) -> int: ...
    @property
    def needs_descriptor(self) -> bool: ...

class Scene:
    """A scene folder in the DSAC*/ACE layout."""

    @staticmethod
    def open(path: _Path, *, skip_invalid_poses: bool = False) -> "Scene": ...
    @property
    def root(self) -> str: ...
    @property
    def distortion(self) -> Optional[list[float]]:
        """OpenCV [k1, k2, p1, p2, k3], or None."""
    def frames(self, split: str = "test") -> list[dict[str, Any]]:
        """Dicts of ``name``, ``image_path``, ``K`` (3x3) and ``cam_to_world`` (4x4)."""

def read_image(path: _Path) -> npt.NDArray[np.uint8]:
    """Decodes a PNG or JPEG to (H, W, 3) uint8."""

def map_scene(
    scene_dir: str,
    map_path: str,
    preset: str,
    encoder: str,
    global_source: Optional[str],
    options: str,
    skip_invalid_poses: bool,
    progress: Optional[Callable[[str, Any, Any], None]],
    log: Optional[str],
    force: bool,
) -> dict: ...
def convert(format: str, input: str, output: str, options: str, force: bool, copy: bool, dry_run: bool) -> str: ...
