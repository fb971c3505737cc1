"""``python -m resnet_viz landscape``: files, clear errors, and a grid split across two processes."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from resnet_viz import landscape as ls

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--steps", "5", "--span", "0.5", "--images", "16", "--threads", "1"]


def run(*args, module=("-m", "resnet_viz")):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, *module, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_writes_a_surface_file_for_a_bundled_pair(tmp_path):
    out = tmp_path / "s.json"
    proc = run("landscape", "--bundled", "shapes-20", *SMALL, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = ls.read_landscape_file(out)
    assert set(doc["surfaces"]) == {"resnet", "plain"} and doc["steps"] == 5 and doc["images"] == 16
    assert doc["surfaces"]["plain"].loss.shape == (5, 5) and doc["lines"]["resnet"].kind == "interpolation"
    assert "non-convex share" in proc.stderr


def test_cli_file_holds_the_library_surfaces_of_the_same_inputs(tmp_path, one_thread):
    """The command's surface and path plane are loss_surface and path_surface of its models, batch and run."""
    import resnet_viz as rv
    from resnet_viz.__main__ import main

    out = tmp_path / "p.json"
    code = main(
        [
            "landscape",
            "--bundled",
            "shapes-20",
            "--twins",
            "plain",
            *SMALL,
            "--path",
            "--path-steps",
            "6",
            "--path-grid",
            "3",
            "--snapshots",
            "4",
            "--no-line",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    doc = ls.read_landscape_file(out)
    _, plain, info = rv.load_bundled("shapes-20")
    x, y = ls.landscape_batch(16)
    as_written = ls.Surface.from_dict  # the file keeps 6 significant digits
    surf = as_written(ls.loss_surface(plain, x, y, span=0.5, steps=5, seed=0).to_dict())
    np.testing.assert_array_equal(doc["surfaces"]["plain"].loss, surf.loss)
    path = ls.record_path(ls.initial_twins(info)[1], x, y, steps=6, optimizer="adam", lr=2e-3, max_snapshots=4)
    plane = as_written(ls.path_surface(path, x, y, steps=3).to_dict())
    got = doc["paths"]["plain"]
    np.testing.assert_array_equal(got.coords, ls.OptimizerPath.from_dict(path.to_dict()).coords)
    np.testing.assert_array_equal(got.surface.alphas, plane.alphas)
    np.testing.assert_array_equal(got.surface.loss, plane.loss)
    np.testing.assert_array_equal(got.surface.accuracy, plane.accuracy)
    assert (got.surface.kind, got.surface.twin, got.surface.seed) == ("pca", "plain", None)
    assert got.recipe["start"] == "the recorded initial weights" and got.recipe["train_images"] == 16


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"this is not a checkpoint at all", "neither a safetensors file"),
    ],
)
def test_cli_refuses_a_bad_checkpoint_with_a_clear_message(tmp_path, content, message):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(content)
    proc = run("landscape", "--checkpoint", str(bad), *SMALL, "--out", str(tmp_path / "o.json"))
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_cli_explains_why_a_checkpoint_for_other_data_cannot_be_measured(tmp_path):
    import resnet_viz as rv

    resnet, plain = rv.build_twins("cifar", depth=8, num_classes=10)
    path = rv.save_twins(tmp_path / "c10.safetensors", resnet, plain, {"build": resnet.config})
    proc = run("landscape", "--checkpoint", str(path), *SMALL, "--out", str(tmp_path / "o.json"))
    assert proc.returncode == 2 and "10 classes" in proc.stderr and "shapes" in proc.stderr
    proc = run("landscape", "--bundled", "shapes-99", *SMALL, "--out", str(tmp_path / "o.json"))
    assert proc.returncode == 2 and "available" in proc.stderr
    proc = run("landscape", "--bundled", "shapes-20", "--steps", "4", "--out", str(tmp_path / "o.json"))
    assert proc.returncode == 2 and "odd" in proc.stderr


@pytest.mark.slow
def test_two_processes_compute_the_same_surface_and_path_as_one(tmp_path):
    """The grid split over 2 gloo processes (torchrun) equals the single-process grid, point for point."""
    args = [
        "landscape",
        "--bundled",
        "shapes-20",
        *SMALL,
        "--path",
        "--path-steps",
        "6",
        "--path-grid",
        "3",
        "--snapshots",
        "4",
        "--no-line",
    ]
    one = run(*args, "--out", str(tmp_path / "one.json"))
    assert one.returncode == 0, one.stderr
    two = run(
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        "-m",
        "resnet_viz",
        *args,
        "--out",
        str(tmp_path / "two.json"),
        module=("-m", "torch.distributed.run"),
    )
    assert two.returncode == 0, two.stderr
    a, b = ls.read_landscape_file(tmp_path / "one.json"), ls.read_landscape_file(tmp_path / "two.json")
    assert a["processes"] == 1 and b["processes"] == 2
    for twin in ("resnet", "plain"):
        np.testing.assert_array_equal(a["surfaces"][twin].loss, b["surfaces"][twin].loss)
        np.testing.assert_array_equal(a["surfaces"][twin].accuracy, b["surfaces"][twin].accuracy)
        np.testing.assert_array_equal(a["paths"][twin].coords, b["paths"][twin].coords)
        np.testing.assert_array_equal(a["paths"][twin].surface.loss, b["paths"][twin].surface.loss)
        assert np.isfinite(b["surfaces"][twin].loss).all()


def test_shards_cover_the_grid_once():
    import resnet_viz as rv

    resnet, _ = rv.build_twins("cifar", depth=8, num_classes=8)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    full = ls.loss_surface(resnet, x, y, steps=3)
    parts = [ls.loss_surface(resnet, x, y, steps=3, shard=(r, 2)) for r in (0, 1)]
    done = [~np.isnan(p.loss) for p in parts]
    assert not (done[0] & done[1]).any() and (done[0] | done[1]).all()
    np.testing.assert_array_equal(np.where(done[0], parts[0].loss, parts[1].loss), full.loss)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
