"""One VAE and one image encoder for both stages where their files are the same (`load_pipeline`'s ``share``): in
the engine, the loader node's cache (with ComfyUI's model management placing the shared set once) and the command
line; outputs are those of separately loaded checkpoints."""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import pytest
import torch

from comfy_fakes import record_load_requests
from conftest import REPO, TINY
from diffusion_vas.models import SamplingOptions, load_pipeline
from diffusion_vas.models.engine import loading
from diffusion_vas.models.host import Host, get_host, set_host
from diffusion_vas.nodes import comfy_bridge, loader

EXAMPLE = REPO / "example_clips" / "synthetic_occlusion"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Stage 2 with copies of stage 1's VAE and image encoder folders (a copy, not a link: same bytes, other
    files), and the tiny stage 2 as it is (its own VAE and encoder, drawn from other seeds)."""
    root = tmp_path_factory.mktemp("shared")
    same = root / "tiny-content-completion"
    shutil.copytree(TINY.stage2, same)
    for name in loading.SHAREABLE:
        shutil.rmtree(same / name)
        shutil.copytree(TINY.stage1 / name, same / name)
        os.chmod(same / name, 0o755)
    return same, TINY.stage2


def test_same_file_by_link_size_record_and_bytes(tmp_path):
    a = tmp_path / "a.safetensors"
    a.write_bytes(bytes(range(256)) * 4096)
    copy, link, other, short = (tmp_path / n for n in ("copy", "link", "other", "short"))
    shutil.copyfile(a, copy)
    os.link(a, link)
    data = bytearray(a.read_bytes())
    data[-1] ^= 1  # the last byte only: a partial read could not tell
    other.write_bytes(bytes(data))
    short.write_bytes(a.read_bytes()[:-1])
    assert loading.same_file(a, copy) and loading.same_file(a, link)
    assert not loading.same_file(a, other) and not loading.same_file(a, short)


def _hub_record(folder, component, file, sha, when=None):
    record = folder / ".cache" / "huggingface" / "download" / component / f"{file.name}.metadata"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(f"{'0' * 40}\n{sha}\n{time.time() if when is None else when}\n")


def test_same_file_trusts_the_hubs_sha256_only_for_unchanged_downloads(tmp_path):
    """Files huggingface_hub downloaded (a ``local_dir`` per checkpoint, as the loader downloads them) compare by
    their recorded SHA-256 without reading the weights; a file changed since its download is read."""
    files = []
    for name in ("one", "two"):
        file = tmp_path / name / "vae" / "diffusion_pytorch_model.safetensors"
        file.parent.mkdir(parents=True)
        file.write_bytes(b"x" * 1000 if name == "one" else b"y" * 1000)
        files.append(file)
    sha = "ab" * 32
    for file in files:
        _hub_record(file.parent.parent, "vae", file, sha)
    assert loading.same_file(*files)  # the record says the same download (the bytes are not read)
    _hub_record(files[1].parent.parent, "vae", files[1], "cd" * 32)
    assert not loading.same_file(*files)
    _hub_record(files[1].parent.parent, "vae", files[1], sha, when=files[1].stat().st_mtime - 10)
    assert not loading.same_file(*files)  # modified after its record: the bytes decide


def test_same_file_by_the_hub_caches_blob_names(tmp_path):
    """In huggingface_hub's cache a snapshot's file links to ``blobs/<sha256>``: two repositories' links to blobs of
    the same name are the same content (the name decides, the bytes are not read)."""
    sha = "12" * 32
    links = []
    for repo, content in (("a", b"x" * 64), ("b", b"y" * 64)):
        blob = tmp_path / repo / "blobs" / sha
        blob.parent.mkdir(parents=True)
        blob.write_bytes(content)
        link = tmp_path / repo / "snapshots" / "0" / "vae" / "diffusion_pytorch_model.safetensors"
        link.parent.mkdir(parents=True)
        link.symlink_to(blob)
        links.append(link)
    assert loading.same_file(*links)
    other = tmp_path / "b" / "blobs" / ("34" * 32)
    os.replace(links[1].resolve(), other)
    links[1].unlink()
    links[1].symlink_to(other)
    assert not loading.same_file(*links)


def test_shared_when_the_files_are_the_same(pair):
    same, different = pair
    first = load_pipeline(TINY.stage1)
    shared = load_pipeline(same, share=[first.vae, first.image_encoder])
    own = load_pipeline(different, share=[first.vae, first.image_encoder])
    assert shared.vae is first.vae and shared.image_encoder is first.image_encoder
    assert shared.unet is not first.unet
    assert own.vae is not first.vae and own.image_encoder is not first.image_encoder
    half = load_pipeline(same, dtype=torch.bfloat16, share=[first.vae, first.image_encoder])
    assert half.vae is not first.vae  # another precision is another module
    assert load_pipeline(same).vae is not first.vae  # nothing to share with: loaded


def test_outputs_unchanged_by_sharing(pair):
    same, different = pair
    first = load_pipeline(TINY.stage1)
    torch.manual_seed(0)
    a, b = (torch.rand(3, 3, 32, 64) * 2 - 1 for _ in range(2))
    options = SamplingOptions(num_inference_steps=1, seed=3)
    for folder in (same, different):
        together = load_pipeline(folder, share=[first.vae, first.image_encoder])
        alone = load_pipeline(folder)
        assert torch.equal(together.sample(a, b, options), alone.sample(a, b, options))
    assert torch.equal(first.sample(a, b, options), load_pipeline(TINY.stage1).sample(a, b, options))


def test_a_shared_module_stays_where_its_other_user_placed_it(pair, monkeypatch):
    """Loading a checkpoint that shares a module placed elsewhere (on a GPU by ComfyUI for the other stage) puts it
    back there after the new pipeline is made on its own device: here "elsewhere" is the meta device, as the
    loader reads it."""
    same, _ = pair
    first = load_pipeline(TINY.stage1)
    monkeypatch.setattr(loading, "_device_of", lambda module: torch.device("meta"))
    second = load_pipeline(same, share=[first.vae, first.image_encoder])
    assert second.image_encoder is first.image_encoder and second.vae is first.vae
    assert next(first.image_encoder.parameters()).is_meta and next(first.vae.parameters()).is_meta
    assert next(second.unet.parameters()).device.type == "cpu"  # its own modules are where it was loaded


# -- ComfyUI: the loader's cache and model management ----------------------------------------------------------------

@pytest.fixture()
def fresh_cache(monkeypatch):
    monkeypatch.setattr(loader, "_cache", {})


def test_loader_shares_one_managed_set(pair, fresh_cache, monkeypatch):
    same, different = pair
    one = loader.get_model(str(TINY.stage1), "fp32")
    two = loader.get_model(str(same), "fp32")
    other = loader.get_model(str(different), "fp32")
    assert two.pipeline.vae is one.pipeline.vae and two.pipeline.image_encoder is one.pipeline.image_encoder
    assert other.pipeline.vae is not one.pipeline.vae
    # the VAE and the encoder are sets of their own, the same objects in both models; the UNets are each model's
    assert [p.bundle.vae if hasattr(p.bundle, "vae") else p.bundle.image_encoder for p in one.managed.shared] == \
        [one.pipeline.vae, one.pipeline.image_encoder]
    assert all(a is b for a, b in zip(one.managed.shared, two.managed.shared))
    assert not any(a is b for a, b in zip(one.managed.shared, other.managed.shared))
    assert dict(one.managed.bundle.named_children()) == {"unet": one.pipeline.unet}

    calls = record_load_requests(monkeypatch, comfy_bridge)
    for model in (one, two):
        for part in model.managed.group:
            part.patcher = ("patcher", id(part))
    with one.managed.managed(5), two.managed.managed(7):
        pass
    shared_patchers = [part.patcher for part in one.managed.shared]
    assert calls == [([one.managed.patcher, *shared_patchers], 5, True),
                     ([two.managed.patcher, *shared_patchers], 7, True)]


class _Memory(Host):
    """The plain host, with a free-memory figure set by the test."""

    def __init__(self, free):
        self.free = free

    def free_memory(self, device):
        return self.free


@pytest.fixture()
def host_with_free_memory():
    previous = get_host()
    yield lambda free: set_host(_Memory(free))
    set_host(previous)


def test_plain_host_places_and_offloads_a_shared_set_once(host_with_free_memory, monkeypatch):
    """Outside ComfyUI: placing one model places its shared sets; making room for the other model does not offload
    the sets it shares itself, only what the two do not share."""
    monkey = torch.device("meta")
    monkeypatch.setattr(comfy_bridge.ManagedModels, "offload",
                        lambda self: self.bundle.to_empty(device=self.offload_device))
    shared = comfy_bridge.ManagedModels({"vae": torch.nn.Linear(8, 8)}, monkey)
    first = comfy_bridge.ManagedModels({"unet": torch.nn.Linear(8, 8)}, monkey, shared=[shared])
    second = comfy_bridge.ManagedModels({"unet": torch.nn.Linear(8, 8)}, monkey, shared=[shared])
    host_with_free_memory(2**40)
    with first.managed(0):
        pass
    assert shared.bundle.vae.weight.is_meta and first.bundle.unet.weight.is_meta
    host_with_free_memory(0)
    with second.managed(0):
        pass
    assert shared.bundle.vae.weight.is_meta and second.bundle.unet.weight.is_meta
    assert first.bundle.unet.weight.device.type == "cpu"  # only the other model's own set went back


# -- the command line ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shares", [True, False])
def test_command_line_loads_the_common_modules_once(pair, tmp_path, monkeypatch, shares):
    from diffusion_vas.models.shot import ShotSettings, run, run_shot

    same, different = pair
    loaded = []
    real = run.load_pipeline

    def spy(*args, **kwargs):
        loaded.append(real(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(run, "load_pipeline", spy)
    fast = dict(num_inference_steps=1)
    settings = dict(frames=EXAMPLE / "rgb", masks=EXAMPLE / "modal", count=4, depth=EXAMPLE / "depth",
                    stage1=str(TINY.stage1), stage2=str(same if shares else different), size=(32, 64),
                    amodal=SamplingOptions.for_stage("amodal", **fast),
                    content=SamplingOptions.for_stage("content", **fast), write=("rgb",), device="cpu",
                    dtype="fp32")
    run_shot(ShotSettings(out=tmp_path / "together", **settings))
    first, second = loaded
    assert (second.vae is first.vae) is shares and (second.image_encoder is first.image_encoder) is shares
    if shares:  # the same files as with the modules loaded twice
        monkeypatch.setattr(run, "load_pipeline", lambda *a, share=(), **k: real(*a, **k))
        run_shot(ShotSettings(out=tmp_path / "apart", **settings))
        written = sorted(p.relative_to(tmp_path / "together") for p in (tmp_path / "together").rglob("*.png"))
        assert written
        for name in written:
            from PIL import Image

            assert np.array_equal(np.asarray(Image.open(tmp_path / "together" / name)),
                                  np.asarray(Image.open(tmp_path / "apart" / name)))
