"""The LightningModule of the class-conditional GAN, and its per-epoch sample grids.

Manual optimization: a GAN alternates two optimizers with different schedules (WGAN-GP
takes `n_critic` critic steps per generator step), which Lightning's automatic loop does
not express. Each training batch makes one discriminator step; every `n_critic`-th batch
also makes one generator step. Losses:
- `nonsaturating` (DCGAN): D minimises BCE on real=1/fake=0, G minimises -log D(G(z)).
- `wgan_gp` (Gulrajani et al. 2017): critic minimises D(fake) - D(real) + lambda * GP, where
  GP pushes the gradient norm at real/fake interpolates to 1; G minimises -D(G(z)).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback

from meddx.models.gan import Discriminator, Generator
from meddx.training.generative import image_grid, save_png
from meddx.training.rng import RngInCheckpoints
from meddx.training.run_log import RunLog

LOSSES = ("nonsaturating", "wgan_gp")
OptimizerFactory = Callable[..., torch.optim.Optimizer]


def gradient_penalty(
    critic: Discriminator, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    alpha = torch.rand(len(real), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, labels).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


class ConditionalGAN(RngInCheckpoints, pl.LightningModule):
    def __init__(
        self,
        generator: Generator,
        discriminator: Discriminator,
        loss: str,
        optimizer_g: OptimizerFactory,
        optimizer_d: OptimizerFactory,
        n_critic: int = 1,
        gp_weight: float = 0.0,
        grid_per_class: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"unknown GAN loss {loss!r}; known: {LOSSES}")
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.loss = loss
        self.optimizer_g = optimizer_g
        self.optimizer_d = optimizer_d
        self.n_critic = max(1, n_critic)
        self.gp_weight = gp_weight
        # Fixed noise: the same latent points every epoch, one row per class, so the grids
        # show how the same samples evolve. Buffers, hence saved in checkpoints.
        labels = torch.arange(generator.num_classes).repeat_interleave(grid_per_class)
        noise = torch.Generator().manual_seed(seed)
        self.register_buffer(
            "fixed_z", torch.randn(len(labels), generator.latent_dim, generator=noise)
        )
        self.register_buffer("fixed_labels", labels)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.optimizer_g(self.generator.parameters()),
            self.optimizer_d(self.discriminator.parameters()),
        ]

    def _noise(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.generator.latent_dim, device=self.device)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        real, labels = batch
        n = len(real)
        opt_g, opt_d = self.optimizers()
        with torch.no_grad():
            fake = self.generator(self._noise(n), labels)
        self.toggle_optimizer(opt_d)
        d_real = self.discriminator(real, labels)
        d_fake = self.discriminator(fake, labels)
        if self.loss == "wgan_gp":
            d_loss = d_fake.mean() - d_real.mean()
            self.log("w_distance", -d_loss.detach(), on_step=False, on_epoch=True, batch_size=n)
            if self.gp_weight:
                d_loss = d_loss + self.gp_weight * gradient_penalty(
                    self.discriminator, real, fake, labels
                )
        else:
            d_loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            self.log(
                "d_real",
                torch.sigmoid(d_real).mean().detach(),
                on_step=False,
                on_epoch=True,
                batch_size=n,
            )
            self.log(
                "d_fake",
                torch.sigmoid(d_fake).mean().detach(),
                on_step=False,
                on_epoch=True,
                batch_size=n,
            )
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        self.untoggle_optimizer(opt_d)
        self.log("d_loss", d_loss.detach(), on_step=False, on_epoch=True, batch_size=n)

        if (batch_idx + 1) % self.n_critic:
            return
        self.toggle_optimizer(opt_g)
        score = self.discriminator(self.generator(self._noise(n), labels), labels)
        g_loss = -score.mean() if self.loss == "wgan_gp" else F.softplus(-score).mean()
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.untoggle_optimizer(opt_g)
        self.log("g_loss", g_loss.detach(), on_step=False, on_epoch=True, batch_size=n)

    @torch.no_grad()
    def sample_grid(self) -> np.ndarray:
        """The fixed-noise samples as one image: a row per class, in [0, 1] units."""
        was_training = self.generator.training
        self.generator.eval()
        images = self.generator(self.fixed_z, self.fixed_labels)
        self.generator.train(was_training)
        unit = ((images.float().cpu() + 1) / 2).clamp(0, 1).numpy()
        return image_grid(unit, rows=self.generator.num_classes)


class SampleGrids(Callback):
    """At each epoch end: the fixed-noise grid to MLflow (`samples/epoch_NNN.png`) and the
    latest one to `latest` (a DVC plot). Never per step."""

    def __init__(self, run: RunLog | None, latest: Path) -> None:
        self.run = run
        self.latest = latest

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not isinstance(module, ConditionalGAN):
            return
        grid = module.sample_grid()
        save_png(self.latest, grid)
        if self.run is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / f"epoch_{trainer.current_epoch:03d}.png"
                save_png(path, grid)
                self.run.log_artifact(path, "samples")
