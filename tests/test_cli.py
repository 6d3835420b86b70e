"""Command line: arguments, outputs written, errors and exit codes (tiny checkpoints, few steps)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from diffusion_vas.commands import main
from diffusion_vas.commands.run import EXAMPLE, parse_size
from conftest import REPO, TINY as MODELS

TINY = ["--stage1", str(MODELS.stage1), "--stage2", str(MODELS.stage2)]
FAST = ["--steps", "2", "--size", "64x128", "--quiet"]


def test_demo_writes_what_a_compositor_wants(tmp_path):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), *TINY, "--depth", str(EXAMPLE / "depth"), *FAST])
    assert code == 0
    assert sorted(p.name for p in (out / "obj0").iterdir()) == ["amodal_masks", "layer", "layer.mp4"]
    masks = np.stack([np.asarray(Image.open(p)) for p in sorted((out / "obj0" / "amodal_masks").glob("*.png"))])
    layer = np.stack([np.asarray(Image.open(p)) for p in sorted((out / "obj0" / "layer").glob("*.png"))])
    modal = np.stack([np.asarray(Image.open(p)) > 127 for p in sorted((EXAMPLE / "modal").glob("*.png"))])
    assert masks.shape == (25, 128, 256) and layer.shape == (25, 128, 256, 4)
    assert set(np.unique(masks)) <= {0, 255}
    assert (masks[modal] == 255).all()  # the amodal mask contains every visible pixel
    np.testing.assert_array_equal(layer[..., 3], masks)  # the layer's alpha is the full mask


def test_write_chooses_the_outputs(tmp_path, capsys):
    out = tmp_path / "some"
    code = main(["demo", "--out", str(out), *TINY, "--depth", str(EXAMPLE / "depth"), *FAST, "--count", "4",
                 "--write", "rgb,overlay,gif"])
    assert code == 0
    assert sorted(p.name for p in (out / "obj0").iterdir()) == ["amodal_rgb", "overlay", "overlay.gif"]
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path / "x"), "--write", "masks,movie"])
    assert exc.value.code == 2 and "choose from masks,layer,rgb,mp4,overlay,gif" in capsys.readouterr().err


def test_label_masks_give_one_result_per_object(tmp_path):
    frames, masks = tmp_path / "frames", tmp_path / "masks"
    frames.mkdir(), masks.mkdir()
    for t in range(6):
        Image.fromarray(np.full((32, 64, 3), 40 * t, np.uint8)).save(frames / f"f{t}.png")
        label = np.zeros((32, 64), np.uint8)
        label[4:12, 4 + t:14 + t] = 1
        label[18:28, 30:40] = 3
        image = Image.fromarray(label, mode="P")
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
        image.save(masks / f"f{t}.png")
    depth = tmp_path / "depth"
    depth.mkdir()
    for t in range(6):
        Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (32, 1))).save(depth / f"d{t}.png")
    out = tmp_path / "out"
    code = main(["run", "--frames", str(frames), "--masks", str(masks), "--out", str(out), *TINY,
                 "--depth", str(depth), "--steps", "1", "--size", "32x64", "--masks-only", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["obj1", "obj3"]
    assert len(list((out / "obj3" / "amodal_masks").glob("*.png"))) == 6
    assert not (out / "obj3" / "amodal_rgb").exists()


@pytest.mark.parametrize("override,message", [
    ({"--masks": "/no/such/folder"}, "--masks"),
    ({"--size": "60x128"}, "multiples of 8"),
    ({"--size": "big"}, "HEIGHTxWIDTH"),
    ({"--stage1": "/no/such/checkpoint"}, "/no/such/checkpoint does not exist"),
    ({"--stage1": "no-such-model-name"}, "is not a Diffusion-VAS checkpoint folder in"),
])
def test_errors_exit_1_with_a_message(tmp_path, capsys, monkeypatch, override, message):
    monkeypatch.setenv("DIFFUSION_VAS_MODELS_DIR", str(tmp_path / "models"))
    options = {"--frames": str(EXAMPLE / "rgb"), "--masks": str(EXAMPLE / "modal"), "--out": str(tmp_path),
               "--depth": str(EXAMPLE / "depth"), "--steps": "1", "--size": "64x128",
               "--stage1": TINY[1], "--stage2": TINY[3], **override}
    assert main(["run", *[x for item in options.items() for x in item]]) == 1
    assert message in capsys.readouterr().err


def test_masks_for_other_frames_are_rejected(tmp_path, capsys):
    code = main(["run", "--frames", str(EXAMPLE / "rgb"), "--masks", str(EXAMPLE / "modal"), "--count", "5",
                 "--depth", str(EXAMPLE / "depth"), "--out", str(tmp_path), *TINY, *FAST])
    assert code == 0  # --count applies to frames, masks and depth alike
    code = main(["run", "--frames", str(EXAMPLE / "rgb"), "--masks", str(EXAMPLE / "modal"), "--every", "2",
                 "--depth", str(EXAMPLE / "depth"), "--out", str(tmp_path), "--start", "30", "--overwrite", *TINY,
                 *FAST])
    assert code == 1 and "start 30" in capsys.readouterr().err


def test_bad_arguments_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["run", "--frames", "x"])
    assert exc.value.code == 2


def test_parse_size():
    assert parse_size("256x512") == (256, 512)


def test_module_entry_point_shows_help():
    """``python -m diffusion_vas --help`` works from a checkout (the package imported by the test setup)."""
    code = ("import sys; sys.path.insert(0, %r); import conftest, runpy; sys.argv = ['diffusion-vas', '--help']; "
            "runpy.run_module('diffusion_vas', run_name='__main__')") % str(REPO / "tests")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "demo" in result.stdout


def test_explained_problems_are_one_line_and_anything_else_shows_its_traceback(tmp_path, monkeypatch, capsys):
    """The error policy: an input problem (ValueError) or one the pack explains (PackError, e.g. a corrupt
    checkpoint) is one line and exit code 1; any other exception (a bug, PyTorch's own RuntimeError) propagates
    with its traceback."""
    import diffusion_vas.commands.run as cli
    from diffusion_vas.models.base.errors import PackError

    def failing(error):
        def run(args):
            raise error
        return run

    for error in (ValueError("--size 7x9: use multiples of 64"), PackError("checkpoint x is corrupt; re-download")):
        monkeypatch.setattr(cli, "run", failing(error))
        assert main(["run", "--frames", str(tmp_path), "--masks", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
        assert capsys.readouterr().err.strip() == f"diffusion-vas: error: {error}"
    monkeypatch.setattr(cli, "run", failing(RuntimeError("CUDA error: an illegal memory access")))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        main(["run", "--frames", str(tmp_path), "--masks", str(tmp_path), "--out", str(tmp_path / "o")])
