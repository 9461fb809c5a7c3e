"""Overrides that shrink a task to a seconds-long CPU run, shared by the tests."""

# task=digits: a two-level UNet, a few diffusion steps, two images per digit, a small embedded data set.
TINY_DIGITS = [
    "data.embedded.n_train=60", "data.embedded.n_val=40", "data.batch_size=16",
    "model.net.block_out_channels=[16,32]", "model.net.attention_levels=[false,true]",
    "model.net.norm_num_groups=8", "model.warmup_steps=2",
    "scheduler.steps=50", "sampler.num_steps=4", "task.per_class=2", "task.process_frames=3",
    "trainer.max_steps=4", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
    "judge.epochs=1", "judge.min_val_acc=0", "logger=none", "task.compile=false",
]

# task=faces sampling: 4 noise files, DDIM of 4 steps, 3 interpolation points ...
TINY_FACES_SAMPLING = [
    "data.embedded.n_noise=4", "data.embedded.gt_steps=4", "scheduler.steps=50", "sampler.num_steps=4",
    "task.interp_alphas=[0.0,0.5,1.0]", "trainer.enable_progress_bar=false",
]
# ... from a two-level 16x16 FaceUNet trained 4 steps.
TINY_FACES = [
    *TINY_FACES_SAMPLING, "data.embedded.image_size=16", "data.embedded.net.channel=16",
    "data.embedded.net.channel_multiplier=[1,2]", "data.embedded.net.attn_strides=[2]",
    "data.embedded.net.norm_groups=8", "data.embedded.train.steps=4", "data.embedded.train.batch_size=16",
    "data.embedded.train.warmup_steps=2",
]

# task=ti: difflab's tiny SD and tiny CLIP built in a few steps (their mechanics, not their skill), 4 TI steps,
# 2 DDIM steps.
TINY_TI_MODELS = ["model.embedded.vae_steps=2", "model.embedded.steps=2", "model.embedded.judge=false",
                  "scorer.embedded.steps=2"]
TINY_TI = ["task=ti", *TINY_TI_MODELS, "trainer.max_steps=4", "task.checkpoint_every=2",
           "task.num_inference_steps=2", "task.batch_size=25", "data.embedded.size=32", "data.repeats=2",
           "trainer.enable_progress_bar=false", "logger=none"]
