"""difflab: Hydra-configured diffusion and CLIP experiments."""
