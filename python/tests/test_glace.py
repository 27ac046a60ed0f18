"""The Python package as a user calls it: mapping the shared TUM desk, localizing its test
frames as the command line does, and the errors bad arrays raise.

Needs the shared data (``GLACE_SHARED`` or ``../shared`` beside the repository) and the
``glace`` binary (``GLACE_BIN``, else ``target/release/glace`` or ``target/debug/glace``).
"""

import os
import pathlib
import subprocess
import threading

import numpy as np
import pytest

import glace

REPO = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("GLACE_SHARED", REPO.parent / "shared"))
TUM = SHARED / "data" / "tum_fr2_desk"


def glace_bin() -> pathlib.Path:
    if "GLACE_BIN" in os.environ:
        return pathlib.Path(os.environ["GLACE_BIN"])
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "glace"
        if p.exists():
            return p
    pytest.fail("no glace binary: build it (cargo build) or set GLACE_BIN")


@pytest.fixture(scope="module")
def tum_map(tmp_path_factory):
    if not TUM.is_dir():
        pytest.skip(f"shared data not found at {TUM}")
    out = tmp_path_factory.mktemp("map") / "tum.glace"
    events = []
    report = glace.map_scene(TUM, out, iterations=800, buffer_size=50_000,
                             progress=lambda event, a, b: events.append(event))
    assert out.exists() and out.with_suffix(".json").exists()
    assert report["frames"] == 15 and report["options"]["iterations"] == 800
    assert events[0] == "phase"
    return out


def parse_pose_file(path):
    poses = {}
    for line in pathlib.Path(path).read_text().splitlines():
        cols = line.split()
        poses[cols[0]] = (tuple(map(float, cols[1:5])), tuple(map(float, cols[5:8])), int(cols[10]))
    return poses


def test_localizes_tum_desk_as_the_command_line_does(tum_map, tmp_path):
    poses = tmp_path / "poses.txt"
    run = subprocess.run([str(glace_bin()), "localize", str(TUM), str(tum_map), "--out", str(poses)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    cli = parse_pose_file(poses)

    scene = glace.Scene.open(TUM)
    loc = glace.Localizer(glace.Map.open(tum_map))
    frames = scene.frames("test")
    assert len(frames) == 5
    for f in frames:
        r = loc.localize(glace.read_image(f["image_path"]), f["K"], scene.distortion)
        assert r.success, r.failure
        q, t, inliers = cli[f["name"]]
        np.testing.assert_allclose(r.cam_from_world_quaternion, q, rtol=0, atol=1e-9)
        np.testing.assert_allclose(r.cam_from_world_translation, t, rtol=0, atol=1e-9)
        assert r.inliers == inliers
        assert r.refined  # every map carries points, a video-like capture's too
        # world_from_cam is the camera's place; its inverse is the pose file's cam_from_world.
        assert r.world_from_cam.shape == (4, 4) and r.world_from_cam.dtype == np.float64
        np.testing.assert_allclose(np.linalg.inv(r.world_from_cam), r.cam_from_world, atol=1e-9)
        np.testing.assert_allclose(r.cam_from_world[:3, 3], t, atol=1e-9)
        err = np.linalg.norm(r.world_from_cam[:3, 3] - f["world_from_cam"][:3, 3])
        assert err < 0.05, f"{f['name']}: {err:.3f} m from the ground truth"


def test_threads_share_one_localizer(tum_map):
    scene = glace.Scene.open(TUM)
    loc = glace.Localizer(glace.Map.open(tum_map))
    f = scene.frames("test")[0]
    image = glace.read_image(f["image_path"])
    alone = loc.localize(image, f["K"], scene.distortion)
    results = [None] * 4

    def work(i):
        results[i] = loc.localize(image, f["K"], scene.distortion)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert r.cam_from_world_quaternion == alone.cam_from_world_quaternion
        assert r.cam_from_world_translation == alone.cam_from_world_translation


def test_grey_images_and_coordinates(tum_map):
    scene = glace.Scene.open(TUM)
    loc = glace.Localizer(glace.Map.open(tum_map), hypotheses=16)
    f = scene.frames("test")[1]
    rgb = glace.read_image(f["image_path"])
    grey = np.ascontiguousarray(rgb[:, :, 1])
    r = loc.localize(grey, f["K"], scene.distortion, coordinates=True)
    c = r.coordinates
    assert c["grid"] == (60, 80)
    assert c["points"].shape == (4800, 3) and c["points"].dtype == np.float32
    assert c["pixels"].shape == (4800, 2) and c["colours"].dtype == np.uint8
    np.testing.assert_allclose(c["pixels"][0], [4.0, 4.0])
    # A non-contiguous view is accepted (copied).
    assert loc.localize(rgb[::1, ::1, :], f["K"]).inliers >= 0


def test_bad_arrays_raise_input_errors(tum_map):
    loc = glace.Localizer(glace.Map.open(tum_map))
    K = np.array([[520.9, 0, 325.1], [0, 521.0, 249.7], [0, 0, 1]])
    img = np.zeros((48, 64, 3), np.uint8)
    cases = [
        (img.astype(np.float32), K, "dtype float32, expected uint8"),
        (np.zeros((48, 64, 4), np.uint8), K, "expected (H, W, 3) RGB or (H, W) grey"),
        (np.zeros((2, 48, 64, 3), np.uint8), K, "expected (H, W, 3)"),
        (np.zeros((0, 64, 3), np.uint8), K, "empty"),
        (np.zeros((7, 1000, 3), np.uint8), K, "1000×7"),
        ([[0] * 64] * 48, K, "expected a numpy array"),
        (img, np.where(np.eye(3) > 0, np.nan, K), "K: "),
        (img, np.full((3, 3), np.inf), "K: "),
        (img, K[:2], "K: shape [2, 3], expected (3, 3)"),
        (img, [[1, 0.5, 3], [0, 1, 2], [0, 0, 1]], "skew"),
        (img, "not a matrix", "K: "),
    ]
    for image, k, expected in cases:
        with pytest.raises(glace.InputError) as e:
            loc.localize(image, k)
        assert expected in str(e.value), (expected, str(e.value))
        assert isinstance(e.value, ValueError)
    with pytest.raises(glace.InputError, match="distortion"):
        loc.localize(img, K, [0.1, 0.2])
    with pytest.raises(glace.InputError, match="threshold"):
        glace.Localizer(glace.Map.open(tum_map), threshold=float("nan"))
    with pytest.raises(glace.InputError, match="precision"):
        glace.Localizer(glace.Map.open(tum_map), precision="fp16")
    # fp32 is what `auto` picks on CPUs without a fast bf16 path, and always valid.
    glace.Localizer(glace.Map.open(tum_map), precision="fp32")
    with pytest.raises(glace.InputError, match="turns"):
        glace.Localizer(glace.Map.open(tum_map), turns="sideways")
    with pytest.raises(glace.InputError, match="min_inlier_ratio"):
        glace.Localizer(glace.Map.open(tum_map), min_inlier_ratio=2.0)
    # A one-colour image is not localized: too little evidence, and the result says so.
    flat = np.full((48, 64, 3), 128, np.uint8)
    r = glace.Localizer(glace.Map.open(tum_map)).localize(flat, K)
    assert not r.success and "evidence" in r.failure, r.failure
    glace.Localizer(glace.Map.open(tum_map), turns="all")
    # TUM's views are dense: its map carries no structure, so the option changes nothing.
    loc = glace.Localizer(glace.Map.open(tum_map), structure=False)
    assert loc is not None


def test_errors_carry_the_command_line_message(tmp_path):
    missing = tmp_path / "missing.glace"
    run = subprocess.run([str(glace_bin()), "info", str(missing)], capture_output=True, text=True)
    assert run.returncode == 2
    with pytest.raises(glace.InputError) as e:
        glace.Map.open(missing)
    assert run.stderr.strip() == f"error: {e.value}"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(glace.InputError, match="iterations: 0: must be at least 1"):
        glace.map_scene(empty, tmp_path / "m.glace", iterations=0, progress=False)
    with pytest.raises(glace.InputError, match="unknown mapping option"):
        glace.map_scene(empty, tmp_path / "m.glace", no_such_option=1, progress=False)
    with pytest.raises(glace.InputError, match="not a scene"):
        glace.map_scene(empty, tmp_path / "m.glace", progress=False)
    with pytest.raises(glace.InputError, match="inside the input folder"):
        glace.map_scene(tmp_path, tmp_path / "m.glace", progress=False)
    existing = tmp_path / "exists.glace"
    existing.write_bytes(b"keep me")
    with pytest.raises(glace.InputError, match="--force|force"):
        glace.map_scene(TUM, existing, progress=False)
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "m.glace").exists()


def test_convert_dry_run_and_write(tmp_path):
    raw = SHARED / "data" / "raw_7scenes_stairs_sample" / "stairs"
    if not raw.is_dir():
        pytest.skip("shared data not found")
    summary = glace.convert_7scenes(raw, tmp_path / "stairs", dry_run=True)
    assert "6 train / 6 test" in summary and not (tmp_path / "stairs").exists()
    glace.convert_7scenes(raw, tmp_path / "stairs")
    assert len(glace.Scene.open(tmp_path / "stairs").frames("train")) == 6
    with pytest.raises(glace.InputError, match="--force"):
        glace.convert_7scenes(raw, tmp_path / "stairs")
    with pytest.raises(glace.InputError, match="test-every"):
        glace.convert_colmap(tmp_path / "stairs", tmp_path.parent / "x", images=tmp_path, test_every=0)


def test_options_come_from_the_library(tum_map):
    o = glace.LocalizerOptions()
    # The library's defaults (the reference's RANSAC, with its 2 s budget; the evidence rule).
    assert (o.hypotheses, o.threshold, o.seed, o.time_budget_ms) == (64, 10.0, 1305, 2000)
    assert (o.min_inliers, o.turns, o.structure) == (20, "auto", True)
    o.hypotheses = 16
    assert glace.LocalizerOptions(hypotheses=16).hypotheses == 16
    loc = glace.Localizer(glace.Map.open(tum_map), o, seed=7)
    assert loc is not None
    with pytest.raises(TypeError, match="hypothesis"):
        glace.Localizer(glace.Map.open(tum_map), hypothesis=16)
    with pytest.raises(TypeError):
        glace.LocalizerOptions(threshold="ten")
