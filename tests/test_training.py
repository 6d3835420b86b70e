"""Fine-tuning (models.training): the authors' recipe on tiny models built here (CPU, seconds)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from diffusion_vas.models import load_pipeline, predict_amodal_masks
from diffusion_vas.models.training import TrainingConfig, parse_size, train
from diffusion_vas.models.training.data import DepthCache
from diffusion_vas.models.training.sources import open_source
from diffusion_vas.models.training.edm import edm_loss, sample_log_normal
from diffusion_vas.models.training.model import (add_lora, load_base, load_unet_for_training, merged_state_dict,
                                                 select_trainable)
from diffusion_vas.models.training.occluders import mean_visible_iou, on_white, synthesize_occlusion
from diffusion_vas.models.training.samples import TrainingSamples, collate
from diffusion_vas.models.training.step import LossComputer, dropout_keep
from conftest import REPO, TINY
from training_tiny import write_tiny_svd, write_tiny_vas

SIZE, FRAMES = (16, 32), 2


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and far faster than two threads on a busy two-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def svd_folder(tmp_path_factory):
    return write_tiny_svd(tmp_path_factory.mktemp("svd") / "svd-xt")


def config(tmp_path, base, **kw) -> TrainingConfig:
    settings = dict(stage="amodal", base=str(base), data="synthetic:2", out=str(tmp_path / "run"), size=SIZE,
                    num_frames=FRAMES, max_steps=2, validation_clips=0, report_to="none")
    settings.update(kw)
    return TrainingConfig(**settings)


def parts(cfg):
    base = load_base(cfg.base)
    source = open_source(cfg.data, cfg.size, cfg.num_frames, cfg.seed, cfg.stage == "amodal", None)
    samples = TrainingSamples(source, cfg)
    loss_fn = LossComputer(base.vae, base.image_encoder, base.clip_mean, base.clip_std, cfg, "cpu", torch.float32)
    return base, samples, loss_fn


# -- EDM loss ----------------------------------------------------------------------------------------------------

def test_edm_loss_equals_formula_by_hand():
    sigma = torch.tensor([0.5, 2.0])
    x0 = torch.tensor([[0.3, -1.2, 0.7], [1.5, 0.0, -0.4]])
    eps = torch.tensor([[1.0, -0.5, 0.25], [-2.0, 0.1, 0.6]])
    out = torch.tensor([[0.2, 0.4, -0.6], [0.9, -1.1, 0.3]])
    noisy = x0 + sigma[:, None] * eps
    got = edm_loss(out, noisy, x0, sigma)
    for b in range(2):
        s = float(sigma[b])
        c_skip, c_out, weight = 1 / (s * s + 1), -s / math.sqrt(s * s + 1), (1 + s * s) / (s * s)
        terms = [weight * (c_skip * float(noisy[b, i]) + c_out * float(out[b, i]) - float(x0[b, i])) ** 2
                 for i in range(3)]
        assert got[b].item() == pytest.approx(sum(terms) / 3, rel=1e-6)
        # lambda * c_out^2 = 1: the same as an unweighted MSE against the v-target (eps * c_in... ) rescaled
        v = (c_skip * float(noisy[b, 0]) - float(x0[b, 0])) / -c_out
        assert weight * c_out**2 * (float(out[b, 0]) - v) ** 2 == pytest.approx(terms[0], rel=1e-6)


def test_noise_levels_follow_the_log_normal():
    draws = sample_log_normal(20000, 0.7, 1.6, torch.Generator().manual_seed(0)).log()
    assert draws.mean().item() == pytest.approx(0.7, abs=0.05)
    assert draws.std().item() == pytest.approx(1.6, abs=0.05)


def test_training_step_feeds_the_unet_the_edm_inputs(tmp_path, svd_folder):
    """The UNet gets c_in * x_noisy, t = 0.25 ln sigma and time ids [8, 127, sigma_c]; the loss is the formula."""
    cfg = config(tmp_path, svd_folder)
    base, samples, loss_fn = parts(cfg)
    seen = {}

    def unet(sample, timestep, encoder_hidden_states, added_time_ids):
        seen.update(sample=sample, timestep=timestep, context=encoder_hidden_states, time_ids=added_time_ids)
        return (torch.zeros_like(sample[:, :, :4]),)

    batch = collate([samples[0]])
    out = loss_fn(unet, batch, torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    sigma = sample_log_normal(1, cfg.p_mean, cfg.p_std, replay)
    eps = torch.randn(seen["sample"][:, :, :4].shape, generator=replay)
    cond_sigma = sample_log_normal(1, cfg.cond_sigma_mean, cfg.cond_sigma_std, replay)
    s = sigma.item()
    noisy = seen["sample"][:, :, :4] * math.sqrt(s * s + 1)
    x0 = noisy - s * eps
    expected = (1 + s * s) / (s * s) * ((noisy / (s * s + 1) - x0) ** 2).mean()
    assert out.sigma.item() == s and out.cond_sigma.item() == cond_sigma.item()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-4)
    assert seen["timestep"].item() == pytest.approx(0.25 * math.log(s), rel=1e-6)
    assert seen["time_ids"][0].tolist() == pytest.approx([8.0, 127.0, cond_sigma.item()])
    assert seen["sample"].shape == (1, FRAMES, 12, SIZE[0] // 8, SIZE[1] // 8)
    assert seen["context"].shape == (FRAMES, FRAMES, 32)  # all_frames: every frame sees the T embeddings


def test_dropout_scheme_by_u():
    """u < 0.1: CLIP only; 0.1 <= u < 0.2: both; 0.2 <= u < 0.3: latent conditions only; else nothing."""
    keep_clip, keep_cond = dropout_keep(torch.tensor([0.05, 0.15, 0.25, 0.35, 0.95]), 0.1)
    assert keep_clip.tolist() == [False, False, True, True, True]
    assert keep_cond.tolist() == [True, False, False, True, True]


def test_dropped_conditions_reach_the_unet_as_zeros(tmp_path, svd_folder):
    cfg = config(tmp_path, svd_folder, conditioning_dropout=1 / 3)  # u < 2/3: CLIP dropped; u >= 1/3: conditions
    _, samples, loss_fn = parts(cfg)
    seen = {}

    def unet(sample, timestep, encoder_hidden_states, added_time_ids):
        seen.update(cond=sample[:, :, 4:], context=encoder_hidden_states)
        return (torch.zeros_like(sample[:, :, :4]),)

    batch = collate([samples[0]])
    for seed in range(4):
        u = loss_fn(unet, batch, torch.Generator().manual_seed(seed)).u.item()
        assert bool((seen["context"] == 0).all()) == (u < 2 / 3)
        assert bool((seen["cond"] == 0).all()) == (1 / 3 <= u)


# -- model: conv_in2, trained parameters, LoRA --------------------------------------------------------------------

def test_conv_in2_initialised_from_conv_in_exactly(svd_folder):
    unet, kind = load_unet_for_training(svd_folder / "unet")
    assert kind == "svd"
    w = unet.conv_in2.weight
    assert torch.equal(w[:, :8], unet.conv_in.weight) and torch.equal(w[:, 8:], torch.zeros_like(w[:, 8:]))
    assert torch.equal(unet.conv_in2.bias, unet.conv_in.bias)


def test_diffusion_vas_base_keeps_its_conv_in2(tmp_path):
    from safetensors.torch import load_file

    folder = write_tiny_vas(tmp_path / "vas")
    unet, kind = load_unet_for_training(folder / "unet")
    stored = load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    assert kind == "diffusion-vas"
    assert torch.equal(unet.conv_in2.weight, stored["conv_in2.weight"])
    assert unet.conv_in2.weight[:, 8:].abs().sum() > 0  # not reset (the authors' warm start resets it)


def test_published_tiny_checkpoint_is_a_warm_start():
    """The published layout (../shared's tiny checkpoint, or the suite's own) is recognised as a warm start."""
    unet, kind = load_unet_for_training(TINY.stage1 / "unet")
    assert kind == "diffusion-vas" and unet.conv_in2.weight[:, 8:].abs().sum() > 0


def _one_step(cfg, base, samples, loss_fn, lora=False):
    unet = base.unet
    names = add_lora(unet, 4, 4) if lora else select_trainable(unet, cfg.trained_patterns)
    before = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    frozen = {k: v.detach().clone() for k, v in list(base.vae.state_dict().items())[:5]}
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-2)
    loss_fn(unet, collate([samples[0]]), torch.Generator().manual_seed(0)).loss.mean().backward()
    optimizer.step()
    after = unet.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert all(torch.equal(v, base.vae.state_dict()[k]) for k, v in frozen.items())
    return set(names), changed


def test_only_temporal_blocks_and_conv_in2_change(tmp_path, svd_folder):
    cfg = config(tmp_path, svd_folder)
    base, samples, loss_fn = parts(cfg)
    names, changed = _one_step(cfg, base, samples, loss_fn)
    assert changed and changed <= names
    assert all("temporal_transformer_block" in n or n.startswith("conv_in2.") for n in names)
    assert "conv_in2.weight" in changed and any("temporal_transformer_blocks" in n for n in changed)
    assert not any(n.startswith(("conv_in.", "conv_out.", "time_embedding")) for n in changed)


def test_lora_trains_adapters_and_merges_on_export(tmp_path, svd_folder):
    cfg = config(tmp_path, svd_folder)
    base, samples, loss_fn = parts(cfg)
    names, changed = _one_step(cfg, base, samples, loss_fn, lora=True)
    assert changed and changed <= names
    assert all("lora_" in n or n.startswith("conv_in2.") for n in names)
    merged = merged_state_dict(base.unet)
    assert not any("lora_" in k or "base_layer" in k for k in merged)
    x = torch.randn(1, FRAMES, 12, 2, 4)
    args = (x, torch.tensor([0.3]))
    kw = dict(encoder_hidden_states=torch.randn(FRAMES, 1, 32), added_time_ids=torch.tensor([[8.0, 127.0, 0.05]]))
    plain, _ = load_unet_for_training(svd_folder / "unet")
    plain.load_state_dict(merged)
    with torch.no_grad():
        assert torch.allclose(plain(*args, **kw)[0], base.unet(*args, **kw)[0], atol=1e-5)


# -- training loop ------------------------------------------------------------------------------------------------

def test_fifty_steps_on_one_clip_lower_the_loss(tmp_path, svd_folder):
    """Overfit test: one clip, one fixed draw of noise level, noise and dropout; the loss must collapse."""
    cfg = config(tmp_path, svd_folder, data="synthetic:1")
    base, samples, loss_fn = parts(cfg)
    unet = base.unet
    select_trainable(unet, cfg.trained_patterns)
    batch = collate([samples[0]])
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=3e-3)

    def loss():
        return loss_fn(unet, batch, torch.Generator().manual_seed(7)).loss.mean()

    with torch.no_grad():
        start = loss().item()
    for _ in range(50):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    with torch.no_grad():
        end = loss().item()
    assert end < 0.3 * start, (start, end)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, svd_folder):
    """3 steps of stage 1 with a checkpoint at step 2, then a run resumed from it."""
    root = tmp_path_factory.mktemp("train")
    cfg = config(root, svd_folder, max_steps=3, save_every=2, checkpoints_total_limit=0, validation_clips=1,
                 validate_every=3, validation_inference_steps=2)
    losses = []
    final = train(cfg, progress=False, on_step=lambda step, loss: losses.append(loss))
    resumed_losses = []
    resumed_cfg = config(root, svd_folder, out=str(root / "resumed"), max_steps=3, save_every=2,
                         resume=str(root / "run" / "checkpoints" / "checkpoint-2"))
    resumed = train(resumed_cfg, progress=False, on_step=lambda step, loss: resumed_losses.append((step, loss)))
    return cfg, final, losses, resumed, resumed_losses


def test_resume_continues_bit_for_bit(trained_run):
    _, final, losses, resumed, resumed_losses = trained_run
    assert len(losses) == 3 and [s for s, _ in resumed_losses] == [3]
    assert resumed_losses[0][1] == losses[2]
    from safetensors.torch import load_file

    a = load_file(str(final / "unet" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(resumed / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_writes_checkpoints_validation_and_args(trained_run):
    cfg, final, _, _, _ = trained_run
    out = cfg.out_dir
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    assert (out / "checkpoints" / "checkpoint-3").is_dir()
    args = json.loads((final / "training_args.json").read_text())
    assert args["stage"] == "amodal" and args["learning_rate"] == 3e-5 and args["run"]["base_kind"] == "svd"
    metrics = json.loads((out / "validation" / "step_000003" / "metrics.json").read_text())
    assert "miou" in metrics["paper"] and list((out / "validation" / "step_000003").glob("*.gif"))


def test_exported_folder_loads_and_runs_stage_one(trained_run):
    _, final, _, _, _ = trained_run
    pipe = load_pipeline(final)
    modal = torch.zeros(FRAMES, 20, 40, dtype=torch.bool)
    modal[:, 5:15, 10:25] = True
    from diffusion_vas.models import SamplingOptions

    result = predict_amodal_masks(pipe, modal, torch.rand(FRAMES, 20, 40), size=SIZE,
                                  options=SamplingOptions(num_inference_steps=2, window=FRAMES, overlap=0))
    assert result.masks.shape == (1, FRAMES, 20, 40) and bool(result.masks[0][modal].all())


def test_content_stage_trains_with_lora_and_exports(tmp_path, svd_folder):
    from diffusion_vas.models import SamplingOptions, complete_content

    cfg = config(tmp_path, svd_folder, stage="content", data="synthetic:3", max_steps=1, lora_rank=2,
                 gradient_checkpointing=True, batch_size=2, gradient_accumulation_steps=2)
    final = train(cfg, progress=False)
    pipe = load_pipeline(final)
    rgb = torch.rand(FRAMES, 16, 32, 3)
    amodal = torch.zeros(FRAMES, 16, 32, dtype=torch.bool)
    amodal[:, 4:12, 8:24] = True
    modal = amodal.clone()
    modal[:, :, 16:] = False
    out = complete_content(pipe, rgb, modal, amodal, size=SIZE,
                           options=SamplingOptions(num_inference_steps=2, window=FRAMES, overlap=0))
    assert out.rgb.shape == (1, FRAMES, 16, 32, 3)


def test_block_checkpointing_gives_the_same_gradients(tmp_path, svd_folder):
    from diffusion_vas.models.training.model import enable_block_checkpointing

    cfg = config(tmp_path, svd_folder)
    base, samples, loss_fn = parts(cfg)
    select_trainable(base.unet, cfg.trained_patterns)
    batch = collate([samples[0]])
    grads = []
    for checkpointed in (False, True):
        if checkpointed:
            enable_block_checkpointing(base.unet)
        base.unet.zero_grad()
        loss_fn(base.unet, batch, torch.Generator().manual_seed(3)).loss.mean().backward()
        grads.append(base.unet.conv_in2.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0


def test_8bit_adam_without_bitsandbytes_says_how_to_install(monkeypatch):
    import builtins

    from diffusion_vas.models.training.trainer import make_optimizer

    real_import = builtins.__import__

    def no_bnb(name, *args, **kwargs):
        if name == "bitsandbytes":
            raise ImportError("No module named 'bitsandbytes'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bnb)
    with pytest.raises(RuntimeError, match="pip install bitsandbytes"):
        make_optimizer([torch.nn.Parameter(torch.zeros(2))], TrainingConfig(use_8bit_adam=True))


# -- stage-2 pairs ------------------------------------------------------------------------------------------------

def _square_target():
    amodal = torch.zeros(3, 10, 10, dtype=torch.bool)
    amodal[:, :, :] = True
    return amodal.clone(), amodal


def _stripe(columns):
    mask = torch.zeros(3, 10, 10, dtype=torch.bool)
    mask[:, :, columns] = True
    return mask


def test_pasting_stops_once_below_the_threshold():
    modal, amodal = _square_target()
    pool = {"a": _stripe(slice(0, 2)), "b": _stripe(slice(2, 4)), "c": _stripe(slice(4, 6)),
            "d": _stripe(slice(6, 8))}  # each hides 20%
    for seed in range(5):
        result = synthesize_occlusion(modal, amodal, "target", list(pool), pool.__getitem__,
                                      np.random.default_rng(seed), threshold=0.7)
        assert len(result.occluders) == 2  # 1.0 -> 0.8 (go on) -> 0.6 (stop)
        assert result.iou == pytest.approx(0.6) and result.iou < 0.7
        expected = amodal.clone()
        for key in result.occluders:
            expected &= ~pool[key]
        assert torch.equal(result.modal, expected)


def test_pasting_never_uses_the_target_and_caps_the_count():
    modal, amodal = _square_target()
    everything = torch.ones(3, 10, 10, dtype=torch.bool)
    pool = {"target": everything, **{f"o{k}": _stripe(slice(k, k + 1)) for k in range(9)}}  # 10% each
    for seed in range(10):
        result = synthesize_occlusion(modal, amodal, "target", list(pool), pool.__getitem__,
                                      np.random.default_rng(seed), threshold=0.3, max_occluders=5)
        assert "target" not in result.occluders and len(result.occluders) == 5
        assert result.iou == pytest.approx(0.5)
    alone = synthesize_occlusion(modal, amodal, "target", ["target"], pool.__getitem__, np.random.default_rng(0))
    assert alone.occluders == [] and torch.equal(alone.modal, modal)


def test_clip_already_below_threshold_or_absent_gets_no_occluder():
    modal, amodal = _square_target()
    modal[:, :, :5] = False  # IoU 0.5
    pool = {"a": _stripe(slice(5, 6))}
    result = synthesize_occlusion(modal, amodal, "t", ["a"], pool.__getitem__, np.random.default_rng(0))
    assert result.occluders == [] and result.iou == pytest.approx(0.5)
    empty = torch.zeros(3, 10, 10, dtype=torch.bool)
    assert math.isnan(mean_visible_iou(empty, empty))
    assert synthesize_occlusion(empty, empty, "t", ["a"], pool.__getitem__, np.random.default_rng(0)).occluders == []


def test_white_background_outside_the_object():
    rgb = torch.rand(2, 4, 5, 3)
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    mask[:, 1:3, 1:4] = True
    out = on_white(rgb, mask)
    assert out.shape == (2, 3, 4, 5)
    assert torch.equal(out.permute(0, 2, 3, 1)[~mask], torch.ones(int((~mask).sum()), 3))
    assert torch.allclose(out.permute(0, 2, 3, 1)[mask], rgb[mask] * 2 - 1)


def test_content_samples_condition_on_the_occluded_object_on_white(tmp_path, svd_folder):
    cfg = config(tmp_path, svd_folder, stage="content", data="synthetic:4", occlusion_iou=0.95)
    source = open_source(cfg.data, cfg.size, cfg.num_frames, cfg.seed, False, None)
    samples = TrainingSamples(source, cfg)
    sample = samples[0]
    visible = (sample["cond_a"] < 1).any(1)  # off-object pixels are exactly white (+1 in all channels)
    amodal = sample["cond_b"][:, 0] > 0
    assert not (visible & ~amodal).any()
    assert torch.equal(sample["target"].permute(0, 2, 3, 1)[~amodal], torch.ones(int((~amodal).sum()), 3))
    assert sample["visible_iou"].item() < 0.95 or sample["occluders"].item() == cfg.max_occluders


# -- data, memory, CLI --------------------------------------------------------------------------------------------

def test_folder_data_reads_the_example_clip_and_a_folder_of_clips(tmp_path):
    import shutil

    clip = REPO / "example_clips" / "synthetic_occlusion"
    one = open_source(str(clip), (32, 64), 4, 0, True, None)
    assert one.keys == ["synthetic_occlusion/obj1"] and one.track(0).depth.shape[1:] == (32, 64)
    shutil.copytree(clip, tmp_path / "clips" / "a")
    shutil.copytree(clip, tmp_path / "clips" / "b")
    many = open_source(str(tmp_path / "clips"), (32, 64), 4, 0, False, None)
    assert many.keys == ["a/obj1", "b/obj1"]
    with pytest.raises(ValueError, match="no clip found"):
        open_source(str(tmp_path), (32, 64), 4, 0, False, None)


def test_depth_is_estimated_once_per_clip_and_cached(tmp_path):
    calls = []

    class FakeEstimator:
        def predict(self, frames):
            calls.append(frames.shape)
            return frames.float().mean(-1)

    cache = DepthCache(tmp_path / "cache", "fake-model")
    cache._estimator = FakeEstimator()
    rgb = torch.rand(3, 8, 16, 3)
    first = cache.get("clip-a", rgb, (8, 16))
    second = cache.get("clip-a", rgb, (8, 16))
    assert len(calls) == 1 and torch.equal(first, second) and len(list((tmp_path / "cache").iterdir())) == 1
    with pytest.raises(ValueError, match="--depth-model"):
        DepthCache(tmp_path / "other", None).get("clip-b", rgb, (8, 16))


def _sailvos_json(root):
    """Two 3-frame SAIL-VOS entries (40x80 PNG frames): a complete object and a half-hidden one."""
    from PIL import Image

    from diffusion_vas.models.datasets import rle

    entries = []
    for obj in (1, 2):
        names, modal, amodal = [], [], []
        for k in range(3):
            name = f"frames/{obj}_{k}.png"
            (root / "frames").mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((40, 80, 3), 60 * obj + k, np.uint8)).save(root / name)
            full = np.zeros((40, 80), np.uint8)
            full[10:30, 20 * obj:20 * obj + 30] = 1
            seen = full.copy()
            if obj == 2:
                seen[:, 20 * obj + 15:] = 0
            names.append(name), modal.append(rle.encode(seen)), amodal.append(rle.encode(full))
        entries.append({"segmentation": amodal, "visible_mask": modal, "image_file_names": names,
                        "image_ids": [100 * obj + k for k in range(3)], "obj_id": obj, "category_id": 1})
    (root / "train.json").write_text(json.dumps(entries))
    return root / "train.json"


def test_sailvos_json_tracks_at_the_training_size(tmp_path):
    file = _sailvos_json(tmp_path)
    with pytest.raises(ValueError, match="--data-root"):
        open_source(str(file), SIZE, 3, 0, False, None, data_root=None)
    source = open_source(str(file), (16, 32), 3, 0, False, None, data_root=str(tmp_path))
    assert source.keys == ["entry000000_obj1", "entry000001_obj2"]
    track = source.track(1)
    assert track.rgb.shape == (3, 16, 32, 3) and track.amodal.shape == (3, 16, 32)
    assert track.modal.sum() < track.amodal.sum() and not (track.modal & ~track.amodal).any()
    cfg = TrainingConfig(stage="content", data=str(file), num_frames=3, size=(16, 32))
    assert TrainingSamples(source, cfg).targets == [0, 1]  # every entry is a target, as the authors train
    cfg = TrainingConfig(stage="content", data=str(file), num_frames=3, size=(16, 32), complete_iou=0.9)
    assert TrainingSamples(source, cfg).targets == [0]  # the half-hidden track (IoU 0.5) is filtered out


def test_config_defaults_are_the_authors_and_errors_name_the_setting():
    cfg = TrainingConfig()
    assert (cfg.learning_rate, cfg.size, cfg.num_frames, cfg.conditioning_dropout) == (3e-5, (128, 256), 25, 0.1)
    assert (cfg.epochs, cfg.max_steps, cfg.complete_iou) == (20, None, None)  # 20 epochs, every track a target
    with pytest.raises(ValueError, match="complete_iou"):
        TrainingConfig(complete_iou=1.5)
    with pytest.raises(ValueError, match="max_steps"):
        TrainingConfig(max_steps=0)
    assert (cfg.p_mean, cfg.p_std, cfg.cond_sigma_mean, cfg.cond_sigma_std) == (0.7, 1.6, -3.0, 0.5)
    assert parse_size("256x512") == (256, 512)
    with pytest.raises(ValueError, match="--size"):
        parse_size("100x7")
    with pytest.raises(ValueError, match="stage"):
        TrainingConfig(stage="depth")
    assert TrainingConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_two_process_accelerate_launch_on_cpu(tmp_path, svd_folder):
    """``accelerate launch --multi_gpu --num_processes 2 -m diffusion_vas.commands train --cpu``: gloo on the CPU."""
    import os
    import shutil
    import subprocess
    import sys

    launcher = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which("accelerate")
    if launcher is None:
        pytest.skip("the accelerate launcher is not installed")
    out = tmp_path / "ddp"
    # port 0: accelerate picks a free port, so a concurrent run on the default 29500 cannot clash
    command = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--main_process_port", "0", "--mixed_precision", "no", "--dynamo_backend", "no", "-m",
               "diffusion_vas.commands", "train", "--cpu",
               "--stage", "amodal", "--base", str(svd_folder), "--data", "synthetic:2", "--out", str(out),
               "--size", "16x32", "--frames", "2", "--max-steps", "2", "--save-every", "2",
               "--validation-clips", "0", "--report-to", "none"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in done.stderr + done.stdout
    checkpoint = out / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "random_states_0.pkl").is_file() and (checkpoint / "random_states_1.pkl").is_file()
    assert json.loads((out / "final" / "training_args.json").read_text())["run"]["processes"] == 2


# -- epochs, stage-2 targets, launch forms ---------------------------------------------------------------------

def test_steps_per_epoch_is_the_authors_sharded_loader_length():
    from diffusion_vas.models.training.samples import steps_per_epoch

    assert steps_per_epoch(100, 1, 8, 1) == 13  # the authors: batch 1 on 8 GPUs -> ceil(100 / 8)
    assert steps_per_epoch(10, 2, 2, 2) == 2  # 5 batches, 3 per process, 2 accumulated per step -> 2 steps
    assert steps_per_epoch(1, 1, 1, 1) == 1


def test_each_epoch_visits_every_target_once_across_processes(tmp_path, svd_folder):
    cfg = config(tmp_path, svd_folder, data="synthetic:5")
    source = open_source(cfg.data, cfg.size, cfg.num_frames, cfg.seed, False, None)
    ranks = [TrainingSamples(source, cfg, rank, processes=2) for rank in (0, 1)]
    assert ranks[0].steps_per_epoch == 3  # ceil(5 / 2): the last batch is padded from the epoch's start
    orders = []
    for epoch in range(2):
        seen = [r.target_of(epoch * r.per_epoch + j) for r in ranks for j in range(r.per_epoch)]
        assert sorted(set(seen)) == [0, 1, 2, 3, 4] and len(seen) == 6  # all five, one repeated as padding
        order = ranks[0].epoch_order(epoch)
        assert (ranks[1].epoch_order(epoch) == order).all()  # one shuffled order shared by the processes
        assert [ranks[0].target_of(epoch * 3 + j) for j in range(3)] == [int(order[k]) for k in (0, 2, 4)]
        assert [ranks[1].target_of(epoch * 3 + j) for j in range(3)] == [int(order[k]) for k in (1, 3, 0)]
        orders.append(order.tolist())
    assert orders[0] != orders[1]  # reshuffled every epoch
    one = TrainingSamples(source, cfg)
    assert sorted(one.target_of(j) for j in range(5)) == [0, 1, 2, 3, 4]


def test_without_max_steps_the_authors_twenty_epochs_run(tmp_path, svd_folder, caplog):
    import logging

    cfg = config(tmp_path, svd_folder, data="synthetic:1", max_steps=None, save_every=1000)
    steps = []
    with caplog.at_level(logging.INFO, logger="diffusion_vas"):
        final = train(cfg, progress=False, on_step=lambda step, loss: steps.append(step))
    assert steps == list(range(1, 21))  # one target, batch 1, one process: 1 step per epoch x 20 epochs
    assert "1 steps per epoch (1 targets / (batch 1 x 1 process(es) x accumulation 1), rounded up); " \
           "20 epochs = 20 steps" in caplog.text
    run = json.loads((final / "training_args.json").read_text())["run"]
    assert (run["steps_per_epoch"], run["total_steps"]) == (1, 20)


def _partly_hidden_json(root, fractions=(0.45, 0.5, 0.6, 0.7, 0.78)):
    """SAIL-VOS entries, 3 frames of 40x80, whose visible part is the left ``fraction`` of a 20x40 box (mean
    visible/amodal IoU = fraction), as in a file of partly hidden tracks."""
    from PIL import Image

    from diffusion_vas.models.datasets import rle

    entries = []
    (root / "frames").mkdir(parents=True, exist_ok=True)
    for obj, fraction in enumerate(fractions, 1):
        names, modal, amodal = [], [], []
        for k in range(3):
            name = f"frames/{obj}_{k}.png"
            Image.fromarray(np.full((40, 80, 3), 40 * obj + k, np.uint8)).save(root / name)
            full = np.zeros((40, 80), np.uint8)
            full[10:30, 20:60] = 1
            seen = full.copy()
            seen[:, 20 + round(40 * fraction):] = 0
            names.append(name), modal.append(rle.encode(seen)), amodal.append(rle.encode(full))
        entries.append({"segmentation": amodal, "visible_mask": modal, "image_file_names": names,
                        "image_ids": [100 * obj + k for k in range(3)], "obj_id": obj, "category_id": 1})
    (root / "partly_hidden.json").write_text(json.dumps(entries))
    return root / "partly_hidden.json"


def test_content_training_on_partly_hidden_tracks_and_the_complete_iou_filter(tmp_path, svd_folder, caplog):
    import logging

    from diffusion_vas.commands import main

    data = _partly_hidden_json(tmp_path)
    common = ["train", "--stage", "content", "--base", str(svd_folder), "--data", str(data), "--data-root",
              str(tmp_path), "--size", "16x32", "--frames", "2", "--max-steps", "1", "--validation-clips", "0",
              "--report-to", "none"]
    assert main(common + ["--out", str(tmp_path / "all")]) == 0  # default: every track is a target
    run = json.loads((tmp_path / "all" / "final" / "training_args.json").read_text())
    assert (run["run"]["tracks"], run["run"]["targets"], run["complete_iou"]) == (5, 5, None)
    with caplog.at_level(logging.WARNING):
        assert main(common + ["--out", str(tmp_path / "some"), "--complete-iou", "0.65"]) == 0
    run = json.loads((tmp_path / "some" / "final" / "training_args.json").read_text())
    assert (run["run"]["tracks"], run["run"]["targets"]) == (5, 2)  # only the tracks at IoU 0.7 and 0.78
    assert "--complete-iou 0.65: 3 of 5 tracks are more hidden than that" in caplog.text


def test_complete_iou_that_drops_every_track_says_what_to_do(tmp_path, svd_folder, capsys):
    from diffusion_vas.commands import main

    data = _partly_hidden_json(tmp_path)
    code = main(["train", "--stage", "content", "--base", str(svd_folder), "--data", str(data), "--data-root",
                 str(tmp_path), "--out", str(tmp_path / "none"), "--size", "16x32", "--frames", "2",
                 "--complete-iou", "0.95", "--report-to", "none"])
    assert code == 1
    err = capsys.readouterr().err
    assert "of 5 tracks, every one is below --complete-iou 0.95 (lower it or leave it out" in err
    code = main(["train", "--stage", "amodal", "--base", str(svd_folder), "--data", "synthetic:1", "--out",
                 str(tmp_path / "both"), "--epochs", "2", "--max-steps", "3"])
    assert code == 1 and "--epochs or --max-steps, not both" in capsys.readouterr().err


def test_single_process_cpu_launch_is_recognised_from_the_environment():
    from diffusion_vas.models.training.launch import check_launch, single_process_cpu_launch

    simple = {"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    assert single_process_cpu_launch(simple)
    assert not single_process_cpu_launch({"ACCELERATE_USE_CPU": "True"})  # --cpu, one process: fine
    assert not single_process_cpu_launch(dict(simple, WORLD_SIZE="2", RANK="0"))  # torchrun (--multi_gpu)
    assert not single_process_cpu_launch(dict(simple, OMPI_COMM_WORLD_SIZE="2"))  # mpirun
    assert not single_process_cpu_launch(dict(simple, ACCELERATE_USE_CPU="False"))
    with pytest.raises(ValueError, match=r"accelerate launch --multi_gpu --num_processes N -m diffusion_vas.commands "
                                         r"benchmark run --device cpu"):
        check_launch("benchmark run", simple)


def test_cpu_launch_with_several_processes_is_refused_with_the_form_that_works(tmp_path, svd_folder):
    """``accelerate launch --cpu --num_processes 2`` would run one process silently: refused, exit 1."""
    import os
    import shutil
    import subprocess
    import sys

    launcher = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which("accelerate")
    if launcher is None:
        pytest.skip("the accelerate launcher is not installed")
    command = [launcher, "launch", "--cpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision",
               "no", "--dynamo_backend", "no", "-m", "diffusion_vas.commands", "train", "--stage", "amodal", "--base",
               str(svd_folder), "--data", "synthetic:1", "--out", str(tmp_path / "cpu"), "--size", "16x32",
               "--frames", "2", "--max-steps", "1", "--validation-clips", "0", "--report-to", "none"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode != 0
    assert "starts only one process" in done.stderr
    assert "accelerate launch --multi_gpu --num_processes N -m diffusion_vas.commands train --cpu" in done.stderr
    assert not (tmp_path / "cpu" / "final").exists()
