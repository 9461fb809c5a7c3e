"""Textual inversion (Gal et al. 2022) as a LightningModule: new placeholder tokens whose embeddings are the
only trainable parameters of a frozen Stable Diffusion, fitted with the noise-prediction loss on VAE latents."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.errors import ConfigError
from src.models.sd_pipeline import encode_prompts
from src.runtime import atomic_write

EMBEDS_NAME = "learned_embeds.safetensors"  # <folder>/<concept id>/learned_embeds.safetensors

# The templates of diffusers' textual_inversion example (after the paper's), `{}` = the placeholder.
OBJECT_TEMPLATES = (
    "a photo of a {}", "a rendering of a {}", "a cropped photo of the {}", "the photo of a {}",
    "a photo of a clean {}", "a photo of a dirty {}", "a dark photo of the {}", "a photo of my {}",
    "a photo of the cool {}", "a close-up photo of a {}", "a bright photo of the {}", "a cropped photo of a {}",
    "a photo of the {}", "a good photo of the {}", "a photo of one {}", "a close-up photo of the {}",
    "a rendition of the {}", "a photo of the clean {}", "a rendition of a {}", "a photo of a nice {}",
    "a good photo of a {}", "a photo of the nice {}", "a photo of the small {}", "a photo of the weird {}",
    "a photo of the large {}", "a photo of a cool {}", "a photo of a small {}",
)
STYLE_TEMPLATES = (
    "a painting in the style of {}", "a rendering in the style of {}", "a cropped painting in the style of {}",
    "the painting in the style of {}", "a clean painting in the style of {}", "a dirty painting in the style of {}",
    "a dark painting in the style of {}", "a picture in the style of {}", "a cool painting in the style of {}",
    "a close-up painting in the style of {}", "a bright painting in the style of {}",
    "a good painting in the style of {}", "a rendition in the style of {}", "a nice painting in the style of {}",
    "a small painting in the style of {}", "a weird painting in the style of {}", "a large painting in the style of {}",
)
TEMPLATES = {"object": OBJECT_TEMPLATES, "style": STYLE_TEMPLATES}

# trainer.precision -> the dtype the frozen UNet and VAE are held in (as diffusers' textual_inversion example
# holds them in its mixed-precision dtype); full precision keeps float32.
HALF_DTYPES = {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16,
               "16-true": torch.float16}


def frozen_dtype(precision: str) -> Optional[torch.dtype]:
    """The half dtype of a trainer precision (bf16-mixed -> bfloat16, 16-mixed -> float16), None for 32/64."""
    return HALF_DTYPES.get(str(precision))


def vector_tokens(token: str, num_vectors: int) -> list[str]:
    """diffusers' names for a multi-vector token: <t>, <t>_1, ..., <t>_{n-1} (what load_textual_inversion adds)."""
    return [token] + [f"{token}_{i}" for i in range(1, num_vectors)]


def expand_placeholder(text: str, token: str, num_vectors: int) -> str:
    """'a <t>' -> 'a <t> <t>_1 ...', as the pipeline's maybe_convert_prompt does for loaded embeddings."""
    return text.replace(token, " ".join(vector_tokens(token, num_vectors)))


def add_placeholder_tokens(tokenizer, text_encoder: nn.Module, token: str, initializer: str,
                           num_vectors: int = 1) -> list[int]:
    """Add `num_vectors` tokens named after `token` and set their embeddings to the initializer's; returns ids."""
    init_ids = tokenizer.encode(initializer, add_special_tokens=False)
    if len(init_ids) != 1:
        raise ConfigError(f"task.initializer_tokens: {initializer!r} is {len(init_ids)} tokens for this tokenizer; "
                          "expected a word that is a single token")
    names = vector_tokens(token, num_vectors)
    if tokenizer.add_tokens(names) != num_vectors:
        raise ConfigError(f"placeholder token {token!r} is already in the tokenizer; expected a new token")
    ids = tokenizer.convert_tokens_to_ids(names)
    text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    weight = text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        weight[ids] = weight[init_ids[0]].clone()
    return ids


class PlaceholderEmbedding(nn.Module):
    """A frozen nn.Embedding whose rows `new_ids` are replaced by the trainable `new_embeds` [N, D]: every other
    row is untouched by construction (no gradient, no optimizer state, no weight decay)."""

    def __init__(self, base: nn.Embedding, new_ids: list[int]):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.register_buffer("new_ids", torch.tensor(new_ids, dtype=torch.long), persistent=False)
        self.new_embeds = nn.Parameter(base.weight[new_ids].detach().clone().float())

    @property
    def weight(self) -> Tensor:
        return self.base.weight

    def forward(self, input_ids: Tensor) -> Tensor:
        out = self.base(input_ids)  # [B, L, D]
        match = (input_ids.unsqueeze(-1) == self.new_ids).to(out.dtype)  # [B, L, N]
        new = match @ self.new_embeds.to(out.dtype)  # [B, L, D]
        return torch.where(match.sum(-1, keepdim=True) > 0, new, out)

    def merged(self) -> nn.Embedding:
        """The base embedding with the learned rows written in."""
        with torch.no_grad():
            self.base.weight[self.new_ids] = self.new_embeds.to(self.base.weight.dtype)
        return self.base


class TextualInversionModule(pl.LightningModule):
    """Fits the embeddings of one or more placeholder tokens (num_vectors rows each) on concept images.

    Batches are (pixels [B, 3, H, W] in [-1, 1], prompts [B] with the placeholders already expanded). Each concept
    trains apart (trains_jointly False); its learned weights are <folder>/<concept id>/learned_embeds.safetensors.
    `frozen_dtype` (bfloat16/float16 under mixed precision): the frozen UNet and VAE are cast to it, halving
    their memory; the text encoder and the trained rows stay float32."""

    trains_jointly = False

    def __init__(self, pipe, token: str | list[str], initializer: str | list[str], *, num_vectors: int = 1,
                 lr: float = 5e-3, weight_decay: float = 0.0, gradient_checkpointing: bool = False,
                 frozen_dtype: Optional[torch.dtype] = None):
        super().__init__()
        from diffusers import DDPMScheduler

        self.tokenizer, self.vae, self.unet, self.text_encoder = pipe.tokenizer, pipe.vae, pipe.unet, pipe.text_encoder
        self.noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
        for m in (self.vae, self.unet, self.text_encoder):
            m.requires_grad_(False)
        if frozen_dtype is not None:
            self.vae.to(dtype=frozen_dtype)
            self.unet.to(dtype=frozen_dtype)
        if gradient_checkpointing:  # as diffusers' textual_inversion example: the frozen nets recompute
            self.unet.enable_gradient_checkpointing()
            text = self.text_encoder  # transformers renamed it in 5.x; both exist for now
            (getattr(text, "activation_checkpointing_enable", None) or text.gradient_checkpointing_enable)()
        tokens = [token] if isinstance(token, str) else list(token)
        inits = [initializer] if isinstance(initializer, str) else list(initializer)
        self.num_vectors, self.lr, self.weight_decay = num_vectors, lr, weight_decay
        self.token_ids = {tok: add_placeholder_tokens(self.tokenizer, self.text_encoder, tok, init, num_vectors)
                          for tok, init in zip(tokens, inits, strict=True)}
        self.new_ids = [i for ids in self.token_ids.values() for i in ids]
        self.embedding = PlaceholderEmbedding(self.text_encoder.get_input_embeddings(), self.new_ids)
        self.text_encoder.set_input_embeddings(self.embedding)
        self.strict_loading = False  # checkpoints hold only the learned rows

    def encode_text(self, prompts: list[str]) -> Tensor:
        return encode_prompts(self.tokenizer, self.text_encoder, prompts)  # [B, 77, D]

    loss_key = "train/loss"  # the task sets c<id>/train/loss so that each concept gets its own curve

    def training_step(self, batch, batch_idx: int) -> Tensor:
        pixels, prompts = batch
        with torch.no_grad():
            latents = self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.sample() * self.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)  # q(x_t | x_0), DDPM eq. 4
        text = self.encode_text(list(prompts)).to(self.unet.dtype)
        eps_hat = self.unet(noisy.to(self.unet.dtype), t, text).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, t)
        else:
            target = noise
        loss = F.mse_loss(eps_hat.float(), target.float())
        self.log(self.loss_key, loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW([self.embedding.new_embeds], lr=self.lr, weight_decay=self.weight_decay)

    def trained_key(self, key: str) -> bool:
        """Whether a state_dict key is trained (and so kept in checkpoints)."""
        return key.endswith("new_embeds")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if self.trained_key(k)}

    def finish(self) -> dict[str, Tensor]:
        """Write the learned rows into the text encoder's embedding (restoring its plain nn.Embedding) and
        return them per token: {token: [num_vectors, D]}."""
        if isinstance(self.text_encoder.get_input_embeddings(), PlaceholderEmbedding):
            self.text_encoder.set_input_embeddings(self.embedding.merged())
        weight = self.text_encoder.get_input_embeddings().weight
        return {tok: weight[ids].detach().float().cpu().clone() for tok, ids in self.token_ids.items()}


    def save_weights(self, folder: Path, concept_ids: list[str]) -> None:
        """The learned embeddings, merged into the text encoder, as <folder>/<concept id>/learned_embeds.safetensors
        (concept_ids in the order of the tokens given to the constructor)."""
        for cid, (token, embeds) in zip(concept_ids, self.finish().items(), strict=True):
            save_learned_embeds(token, embeds, Path(folder) / cid / EMBEDS_NAME)

    @classmethod
    def saved_in(cls, folder: Path, concept_ids: list[str]) -> bool:
        """Whether `folder` holds the learned weights of every concept."""
        return all((Path(folder) / cid / EMBEDS_NAME).is_file() for cid in concept_ids)

    @classmethod
    def load_weights(cls, pipe, folder: Path, concept_ids: list[str], key: str = "task.weights") -> None:
        """Load each concept's embeddings into `pipe` with diffusers' load_textual_inversion."""
        for cid in concept_ids:
            path = Path(folder) / cid / EMBEDS_NAME
            if not path.is_file():
                raise ConfigError(f"{key}={str(folder)!r}: no {cid}/{EMBEDS_NAME} in it")
            pipe.load_textual_inversion(str(path), local_files_only=True)


def save_learned_embeds(token: str, embeds: Tensor, path: str | Path) -> Path:
    """{token: [num_vectors, D]} as safetensors (the diffusers format `load_textual_inversion` reads), written
    to a temporary file and renamed."""
    from safetensors.torch import save_file

    tensors = {token: embeds.detach().float().cpu().contiguous()}
    return atomic_write(path, lambda p: save_file(tensors, str(p)))
