"""The sampling engine: the Diffusion-VAS UNet, checkpoint loading, the sampler and its temporal windows."""
