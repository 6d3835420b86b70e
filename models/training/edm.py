"""The EDM noise schedule and loss the authors train with (SVD's v-parameterisation, sigma_data = 1).

For a clean latent ``x0``, noise ``eps`` and a noise level ``sigma`` (reference §2.5, A:604-677):

* ``ln sigma ~ N(p_mean, p_std^2)``, drawn as ``exp(Phi^-1(u) * p_std + p_mean)`` with ``u`` uniform and clamped
  to ``[1e-7, 1 - 1e-7]`` (the authors' inverse-CDF sampler, which bounds the tails);
* ``x_noisy = x0 + sigma * eps``; the UNet sees ``c_in * x_noisy`` at timestep ``c_noise = 0.25 ln sigma``;
* ``D = c_skip * x_noisy + c_out * F`` with ``c_skip = 1 / (sigma^2 + 1)``, ``c_out = -sigma / sqrt(sigma^2 + 1)``,
  ``c_in = 1 / sqrt(sigma^2 + 1)``;
* loss per sample = mean over its elements of ``lambda * (D - x0)^2``, ``lambda = (1 + sigma^2) / sigma^2``; the
  batch loss is the mean over samples. (``lambda * c_out^2 = 1``: an unweighted MSE in v-space.)
"""

from __future__ import annotations

import torch

U_CLAMP = 1e-7


def sample_log_normal(count: int, mean: float, std: float, generator: torch.Generator) -> torch.Tensor:
    """``[count]`` float32 draws of ``exp(N(mean, std^2))`` by the inverse CDF of a clamped uniform (CPU)."""
    u = torch.rand(count, generator=generator, dtype=torch.float64).clamp(U_CLAMP, 1 - U_CLAMP)
    return torch.exp(torch.special.ndtri(u) * std + mean).float()


def preconditioning(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c_skip, c_out, c_in, c_noise)`` for ``sigma`` of any shape (same shape back)."""
    s2 = sigma * sigma
    return 1 / (s2 + 1), -sigma / torch.sqrt(s2 + 1), 1 / torch.sqrt(s2 + 1), 0.25 * torch.log(sigma)


def loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """``lambda(sigma) = (1 + sigma^2) / sigma^2``."""
    return (1 + sigma * sigma) / (sigma * sigma)


def edm_loss(model_output: torch.Tensor, noisy: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample EDM loss.

    Args:
        model_output: ``[B, ...]`` the UNet's raw output ``F``.
        noisy: ``[B, ...]`` ``x0 + sigma * eps`` (before ``c_in``).
        x0: ``[B, ...]`` clean latents.
        sigma: ``[B]`` noise levels.

    Returns:
        ``[B]`` float32 losses (take ``.mean()`` for the batch loss).
    """
    view = (-1,) + (1,) * (x0.ndim - 1)
    c_skip, c_out, _, _ = preconditioning(sigma.float().view(view))
    denoised = c_skip * noisy.float() + c_out * model_output.float()
    per_element = loss_weight(sigma.float().view(view)) * (denoised - x0.float()) ** 2
    return per_element.flatten(1).mean(dim=1)
