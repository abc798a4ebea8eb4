"""A noise-aware classifier p(y | x_t, t) (Dhariwal & Nichol 2021) as a family: trained by cross-entropy on the
noisy data of a Gaussian SDE, it has no samples of its own and guides a score model (classifier guidance)."""
from __future__ import annotations


import torch

from .. import builders
from ..losses import ClassifierLoss
from ..models import NoisyClassifier
from .base import Family, gaussian_display, standard_prior_only


def build_model(config, data_shape) -> torch.nn.Module:
    """config.model's ch, ch_mult, num_res_blocks, dropout and time_scale; num_classes outputs."""
    c = config.model
    return NoisyClassifier(shape=tuple(data_shape), num_classes=c.num_classes, ch=c.ch, ch_mult=tuple(c.ch_mult),
                           num_res_blocks=c.num_res_blocks, dropout=c.dropout, time_scale=c.time_scale)


def build_loss_fn(sde, config):
    """Cross-entropy of the true class at x_t, t ~ U(eps, T)."""
    ce = ClassifierLoss(sde, eps=config.loss.eps)

    def classifier_loss(model, x0, generator=None, y=None):
        if y is None:
            raise ValueError("training a classifier needs labelled data; config.data.dataset gives no labels")
        return ce(model, x0, y, generator)
    return classifier_loss


@torch.no_grad()
def eval_accuracy(run, n: int | None = None) -> float:
    """The classifier's accuracy on held-out x_t, t ~ U(eps, T), with noise fixed by the run's seed."""
    noisy = ClassifierLoss(run.sde, eps=run.config.loss.eps).noisy
    g = torch.Generator(device=run.device).manual_seed(run.config.training.seed)
    right = count = 0
    for x, y in run.eval_batches(n):
        x_t, t = noisy(x, g)
        right, count = right + int((run.model(x_t, t).argmax(1) == y).sum()), count + len(x)
    return right / count


def monitor(run) -> dict:
    return {"eval_loss": run.eval_loss(), "eval_accuracy": eval_accuracy(run)}


def evaluate(run, n=None, seed: int = 0, dequantize: bool = True, log=None) -> dict:
    """Held-out cross-entropy and accuracy on noisy held-out inputs (a classifier has no likelihood)."""
    return {"step": run.step, "eval_loss": run.eval_loss(n), "eval_accuracy": eval_accuracy(run, n)}


def report(result) -> list[str]:
    return [f"step {result['step']}: held-out cross-entropy {result['eval_loss']:.4f}, accuracy "
            f"{result['eval_accuracy']:.3f} on noisy held-out inputs (t ~ U(eps, T))"]


def sample_command(run, sampler, **values) -> str:
    raise ValueError(f"{run.workdir} is a noise-aware classifier, not a diffusion model: it has no samples; use it "
                     f"to guide one (scoresde sample --workdir MODEL --labels ... --classifier {run.workdir})")


def check(config) -> None:
    standard_prior_only(config)
    if not config.model.num_classes:
        raise ValueError("config.family='classifier' needs config.model.num_classes > 0 (its number of outputs)")


CLASSIFIER = Family(
    name="classifier", description="a noise-aware classifier p(y | x_t, t) that guides a score model",
    data=builders.build_data_from_config, process=lambda config: builders.build_sde(config.sde), model=build_model,
    score_fn=lambda model, sde, config: None, loss_fn=build_loss_fn, sampler=builders.build_sampler,
    to_display=gaussian_display, evaluate=evaluate, report=report, sample_command=sample_command, monitor=monitor,
    can_sample=False, guides=True,
    not_comparable="a noise-aware classifier run: it has no samples; compare the score model it guides "
                   "(scoresde compare --workdir MODEL --classifier WORKDIR)",
    check=check, methods={"eval_accuracy": eval_accuracy},
    legacy=lambda saved: "model.name='classifier'" if saved.get("model", {}).get("name") == "classifier" else "")
