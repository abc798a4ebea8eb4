"""`scoresde compare`: quality vs NFE vs wall time for every sampler × step budget on one trained model.

This is the question of Song et al. 2021, Table 1 (ancestral sampling vs reverse diffusion vs probability
flow vs predictor–corrector), asked of any run. Every row samples the EMA model with the same seeds.

Noise is reported, not hidden:
- each metric has a standard error: the standard deviation over bootstrap resamplings of the row's samples;
- the noise floor is the same metric for n real samples (fresh toy draws, or training images) against
  the same held-out reference: no sampler can be told apart from the data below it;
- a sampler's "best" budget is the largest budget whose metric is within 2 standard errors of its
  lowest one, so noise does not pick an under-converged budget.

Rows are appended to results.jsonl as they finish and reused only when everything that determines them
(weights, sampler and options, seed, n, batch size, metric settings) is unchanged, so an interrupted
comparison resumes where it stopped.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import metrics
from ._utils import progress
from .data import stream_generator

DEFAULT_SAMPLERS = "ancestral,reverse_diffusion,euler_maruyama,pc,ode,ddim,dpm_solver,torchsde:srk"
BOOTSTRAP = 20  # resamplings for each standard error
TIE_SE = 2.0  # rows within this many standard errors of a sampler's lowest metric count as tied
MMD_N = 2000  # samples (and reference points) the MMD uses: its cost is quadratic
DIVERGED = 10.0  # a sample beyond this many times the reference's largest |value| has diverged
FLOOR_FACTOR = 100.0  # a row whose main metric exceeds this many times the noise floor's has diverged


# -- the plan ------------------------------------------------------------------------------------------------

def plan_rows(run, samplers: list[str], budgets: list[int], options: dict) -> list[dict]:
    """One entry per row: sampler name, budget ("adaptive" for adaptive solvers), kind and built sampler."""
    if not samplers:
        raise ValueError("samplers must name at least one sampler, got none")
    plan = []
    for name in samplers:
        probe = _build(run, name, 2, options)  # fails before any sampling on an unknown name or option
        for budget in ["adaptive"] if probe.adaptive else budgets:
            sampler = probe if probe.adaptive else _build(run, name, budget, options)
            plan.append({"sampler": name, "steps": budget, "kind": sampler.kind, "object": sampler,
                         "options": _accepted(name, options)})
    return plan


def _accepted(name: str, options: dict) -> dict:
    from .sampling import SAMPLERS, sampler_options
    valid = sampler_options(SAMPLERS[name.partition(":")[0]]) if name.partition(":")[0] in SAMPLERS else []
    return {k: v for k, v in options.items() if k in valid}


def _build(run, name, steps, options):
    return run.sampler(name, steps, **_accepted(name, options))


def weights_hash(model: torch.nn.Module) -> str:
    """A short hash of the model's weights: rows of other weights are never reused."""
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def row_key(identity: dict) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _rows_done(path: Path) -> dict:
    rows = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row.get("key")] = row
    return rows


# -- metrics with standard errors --------------------------------------------------------------------------

class Quality:
    """The metrics of a set of samples against the run's held-out reference, with bootstrap standard errors."""

    def __init__(self, run, seed: int = 0, features: str = "classifier", inception_path: str | None = None,
                 classifier_steps: int = 1500, cache_dir=None, judge_classes: bool = False):
        """features: "classifier" (a small classifier trained on the data, cached under cache_dir, by default the
        run's workdir) or "inception" (the FID Inception-v3 from the local file inception_path), for images."""
        self.run, self.seed = run, seed
        self.features, self.inception_path, self.classifier_steps = features, inception_path, classifier_steps
        self.cache_dir = Path(run.workdir if cache_dir is None else cache_dir)
        self.ref = run.data.eval_data
        self.feature_fn = self.judge = None
        if run.is_image:  # the reference's statistics are computed once, not for every row and resampling
            self.feature_fn = self._feature_fn()
            self.ref_feats = _batched(self.feature_fn, self.ref, run.device)
            self.ref_stats = metrics.gaussian_stats(self.ref_feats)
        else:
            self.sliced, self.mmd = metrics.SlicedReference(self.ref), metrics.MMDReference(self.ref[:MMD_N])
        self.range = self.ref.abs().max().item()  # samples far beyond it have diverged
        if judge_classes and run.is_image:  # the feature classifier names the class of each sample
            from .features import feature_classifier
            self.judge = feature_classifier(self.cache_dir, run.data, run.data.labels, run.device, classifier_steps)
        self.names = (("frechet_distance", "kid") if run.is_image else ("sliced_wasserstein", "mmd"))

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> dict:
        """Class fidelity: the feature classifier's accuracy on samples x meant to show `labels`, with its
        binomial standard error (images only; empty for points)."""
        if self.judge is None:
            return {}
        pred = torch.cat([self.judge(x[i:i + 500].to(self.run.device)).argmax(1).cpu() for i in range(0, len(x), 500)])
        p, se = metrics.fraction(pred == labels[:len(pred)])
        return {"accuracy": p, "accuracy_se": se}

    def _feature_fn(self):
        from .features import classifier_features, inception_features

        if self.features == "inception":
            if not self.inception_path:
                raise ValueError("features='inception' needs inception_path, a local pt_inception .pth or TorchScript "
                                 "file (the CLI's --inception-path FILE)")
            return inception_features(self.inception_path, self.run.data, self.run.device)
        if self.features != "classifier":
            raise ValueError(f"features must be 'classifier' or 'inception', got {self.features!r}")
        return classifier_features(self.cache_dir, self.run.data, self.run.data.labels, self.run.device,
                                   self.classifier_steps)

    def settings(self) -> dict:
        """What determines the numbers besides the samples (part of every row's identity)."""
        return {"metrics": list(self.names), "bootstrap": BOOTSTRAP, "n_ref": len(self.ref), "features": self.features
                if self.run.is_image else None, "inception_path": self.inception_path,
                "classifier_steps": self.classifier_steps if self.run.is_image else None}

    def _values(self, x, index=None, mmd=None) -> dict:
        """The metrics of the samples x[index] (all of x when index is None); mmd: self.mmd.resampled(x)."""
        idx = torch.arange(len(x)) if index is None else index
        if not self.run.is_image:
            return {"sliced_wasserstein": self.sliced(x[idx]), "mmd": mmd(idx[:MMD_N])}
        f = x[idx]
        return {"frechet_distance": metrics.frechet_distance(*metrics.gaussian_stats(f), *self.ref_stats),
                "kid": metrics.kid(f, self.ref_feats, subsets=10, subset_size=min(1000, len(f), len(self.ref_feats)))[0]}

    def diverged(self, x: torch.Tensor) -> bool:
        """Whether samples left the data's range: non-finite, or over 1 % of them beyond DIVERGED × max |reference|
        (explicit Euler–Maruyama on the VP-SDE at 5 steps, for example)."""
        if not bool(torch.isfinite(x).all()):
            return True
        beyond = x.flatten(1).abs().amax(1) > DIVERGED * self.range
        return beyond.double().mean().item() > 0.01

    def __call__(self, x: torch.Tensor) -> dict:
        """Each metric and its standard error (`<name>_se`); `diverged` flags samples far outside the data."""
        if not bool(torch.isfinite(x).all()):  # no metric is defined: the row is reported as diverged
            return {**{k: v for name in self.names for k, v in ((name, math.inf), (f"{name}_se", math.nan))},
                    "diverged": True}
        diverged = self.diverged(x)
        x = _batched(self.feature_fn, x, self.run.device) if self.feature_fn else x
        mmd = None if self.run.is_image else self.mmd.resampled(x)  # x's kernels once for every resampling
        values = self._values(x, mmd=mmd)
        g = torch.Generator().manual_seed(self.seed)
        boot = [self._values(x, torch.randint(len(x), (len(x),), generator=g), mmd) for _ in range(BOOTSTRAP)]
        out = {}
        for name in self.names:
            out[name] = values[name]
            out[f"{name}_se"] = float(np.std([b[name] for b in boot], ddof=1))
        return {**out, "diverged": diverged}

    def floor(self, n: int) -> dict:
        """The same metrics for n real samples that are not the reference (n_floor is how many there were)."""
        data = self.run.data
        if self.run.is_image:
            perm = torch.randperm(len(data.images), generator=stream_generator(self.seed, 1 << 24))
            x = data.scale(data.images[perm[:n]])
        else:
            x = data.sample_fn(n, stream_generator(self.seed, 1 << 24))
        out = {**self(x), "n_floor": len(x)}
        if self.judge is not None:  # the ceiling of class fidelity: the classifier on held-out real images
            out.update(self.accuracy(data.eval_data, data.eval_labels))
        return out


def _batched(feature_fn, x, device, chunk: int = 500):
    return torch.cat([feature_fn(x[i:i + chunk].to(device)).cpu() for i in range(0, len(x), chunk)])


# -- the comparison ------------------------------------------------------------------------------------------

def compare(run, samplers: list[str], budgets: list[int], *, n: int = 10000, batch_size: int = 10000, seed: int = 0,
            options: dict | None = None, out=None, features: str = "classifier", inception_path: str | None = None,
            classifier_steps: int = 1500, guidance: list[float] | None = None, classifier=None,
            classifier_scale: float = 1.0, bpd_n: int = 0, dequantize: bool = True, log=None,
            show_progress: bool = False) -> tuple[list[dict], list[Path]]:
    """Every sampler × budget on one trained run: quality with standard errors, NFE and wall time per row
    (Song et al. 2021, Table 1), the noise floor, and reports in `out` (default run.workdir/compare).

    guidance: classifier-free scales w, each row repeated per w with the classes drawn in turn (class-conditional
    runs); classifier: a noise-aware classifier Run for classifier guidance. Rows already in out/results.jsonl
    with the same weights and settings are reused. log(line) receives progress lines. Returns (rows, written files).
    """
    if run.family.not_comparable:
        raise ValueError(f"{run.workdir} is {run.family.not_comparable}")
    log = log or (lambda line: None)
    options = options or {}
    if guidance is None and classifier is None:
        ws = [None]
    else:
        if guidance is not None and not run.num_classes:
            raise ValueError(f"guidance needs a class-conditional run (config.model.num_classes > 0); {run.workdir} "
                             f"is unconditional")
        ws = list(guidance) if guidance is not None else [0.0]
    plan = [{**entry, "guidance": w} for entry in plan_rows(run, samplers, budgets, options) for w in ws]
    K = run.num_classes or (classifier.num_classes if classifier else 0)
    labels = torch.arange(n) % K if ws != [None] else None  # the classes in turn
    guide = {} if labels is None else {"labels": labels, "classifier": classifier, "classifier_scale": classifier_scale}
    out = Path(out or Path(run.workdir) / "compare")
    (out / "samples").mkdir(parents=True, exist_ok=True)
    rows_path = out / "results.jsonl"
    done = _rows_done(rows_path)
    quality = Quality(run, seed, features, inception_path, classifier_steps, judge_classes=labels is not None)
    common = {"weights": weights_hash(run.model), "step": run.step, "seed": seed, "n": n,
              "batch_size": batch_size, **quality.settings()}
    if classifier is not None:
        common.update(classifier=weights_hash(classifier.model), classifier_scale=classifier_scale)
    for entry in plan:
        identity = {**common, "sampler": entry["sampler"], "steps": entry["steps"], "options": entry["options"]}
        if entry["guidance"] is not None:
            identity["guidance"] = entry["guidance"]
        entry["key"] = row_key(identity)
    floor_key = row_key({**common, "sampler": "noise floor"})
    reused_keys = {e["key"] for e in plan if e["key"] in done}
    log(f"comparing {len(plan)} sampler x budget rows on {run.workdir} (step {run.step}), {n} samples each; "
        f"{len(reused_keys)} already done with these weights and settings in {rows_path}")
    if floor_key not in done:
        done[floor_key] = {"key": floor_key, "sampler": "noise floor", **quality.floor(n)}
        _append(rows_path, done[floor_key])
    for entry in progress(plan, show_progress, desc="compare"):
        if entry["key"] in done:
            continue
        w = entry["guidance"]
        x, nfe, seconds = run.timed_sample(n, entry["object"], seed=seed, batch_size=batch_size,
                                           **({} if w is None else {**guide, "guidance": w}))
        start = time.perf_counter()
        scores = quality(x)
        row = {"key": entry["key"], "sampler": entry["sampler"], "kind": entry["kind"], "steps": entry["steps"],
               "nfe": nfe, "seconds": seconds, "samples_per_s": n / seconds, **scores,
               "metric_seconds": time.perf_counter() - start, "n": n, "seed": seed, "step": run.step}
        metric = quality.names[0]  # a metric many times the floor's is a diverged row too
        row["diverged"] = bool(row["diverged"] or row[metric] > FLOOR_FACTOR * done[floor_key][metric])
        if w is not None:  # guidance rows: w, what one NFE costs, and class fidelity
            row.update(guidance=w, batch_factor=2 if w not in (0, -1) and run.num_classes else 1,
                       **quality.accuracy(x, labels))
        np.save(out / "samples" / _sample_file(row), x[:2000].numpy())
        _append(rows_path, row)
        done[entry["key"]] = row
        log("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "key"))
    rows = [done[e["key"]] for e in plan]
    fresh = [done[e["key"]] for e in plan if e["key"] not in reused_keys]
    if fresh:
        sampling, scoring = sum(r["seconds"] for r in fresh), sum(r.get("metric_seconds", 0.0) for r in fresh)
        log(f"time: sampling {sampling:.1f} s, metrics {scoring:.1f} s over {len(fresh)} new rows")
    extra = {"noise_floor": {k: v for k, v in done[floor_key].items() if k not in ("key", "sampler")}, "step": run.step}
    if bpd_n:
        b = run.bits_per_dim(bpd_n, seed, dequantize=dequantize)
        extra.update(bits_per_dim=b.mean, bits_per_dim_se=b.se, bits_per_dim_kind=b.description)
    return rows, write_reports(rows, out, run, extra)


def _append(path: Path, row: dict):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _sample_file(row) -> str:
    w = f"_w{row['guidance']:g}" if row.get("guidance") is not None else ""
    return f"{row['sampler'].replace(':', '-')}_{row['steps']}{w}.npy"


def series(row) -> str:
    """The curve a row belongs to: its sampler (and guidance scale w, for guidance rows)."""
    return row["sampler"] + (f" w={row['guidance']:g}" if row.get("guidance") is not None else "")


def best_rows(rows, metric: str) -> dict:
    """Per sampler (and w), the largest-NFE row whose metric is within TIE_SE combined standard errors of its lowest."""
    best = {}
    rows = [r for r in rows if not r.get("diverged")]  # a diverged row is never a sampler's best
    for name in dict.fromkeys(series(r) for r in rows):
        rs = [r for r in rows if series(r) == name]
        low = min(rs, key=lambda r: r[metric])
        ties = [r for r in rs if r[metric] <= low[metric] + TIE_SE * math.hypot(low[f"{metric}_se"], r[f"{metric}_se"])]
        best[name] = max(ties, key=lambda r: r["nfe"])
    return best


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def write_reports(rows, out: Path, run_, extra) -> list[Path]:
    """results.csv, results.json, results.md, quality_vs_nfe.png and best_samples.png."""
    metric, second = ("frechet_distance", "kid") if run_.is_image else ("sliced_wasserstein", "mmd")
    fields = [k for k in rows[0] if k != "key"]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.json").write_text(json.dumps({"rows": [{k: r[k] for k in fields} for r in rows], **extra}, indent=2))
    floor = extra["noise_floor"]
    guided = "guidance" in rows[0]
    acc = "accuracy" in rows[0]
    head = "| sampler | kind | steps | " + ("w | " if guided else "") + "nfe | "
    lines = [head + f"{metric} ± se | {second} ± se | " + ("accuracy ± se | " if acc else "") + "seconds | samples_per_s |",
             "|---|---|---:|" + ("---:|" if guided else "") + "---:|---:|---:|" + ("---:|" if acc else "") + "---:|---:|"]
    for r in rows:
        nfe = f"{r['nfe']}" + (" (2B)" if r.get("batch_factor", 1) == 2 else "")
        kind = r["kind"] + (", **diverged**" if r.get("diverged") else "")
        lines.append(f"| {r['sampler']} | {kind} | {r['steps']} | " + (f"{_fmt(r['guidance'])} | " if guided else "")
                     + f"{nfe} | {_fmt(r[metric])} ± {_fmt(r[metric + '_se'])} | {_fmt(r[second])} ± {_fmt(r[second + '_se'])} | "
                     + (f"{r['accuracy']:.3f} ± {r['accuracy_se']:.3f} | " if acc else "")
                     + f"{_fmt(r['seconds'])} | {_fmt(r['samples_per_s'])} |")
    lines.append(f"| noise floor: {floor['n_floor']} real samples | data | | " + ("| " if guided else "") +
                 f"| {_fmt(floor[metric])} ± {_fmt(floor[metric + '_se'])} | {_fmt(floor[second])} ± "
                 f"{_fmt(floor[second + '_se'])} | " + (f"{floor['accuracy']:.3f} (held-out images) | " if acc else "")
                 + "| |")
    lines += ["", f"Weights of step {extra['step']}; ± is one bootstrap standard error ({BOOTSTRAP} resamplings)."]
    if any(r.get("diverged") for r in rows):
        lines.append(f"**diverged**: non-finite samples, over 1 % of them beyond {DIVERGED:g}× the data's largest |value|, "
                     f"or {metric} over {FLOOR_FACTOR:g}× the noise floor's; such rows are drawn off scale in "
                     f"quality_vs_nfe.png and never set its axes.")
    if guided:
        lines.append("w: classifier-free guidance (Ho & Salimans; diffusers' guidance_scale = 1 + w); NFE counts network "
                     "calls, \"(2B)\" marks calls on a doubled batch. accuracy: the feature classifier's accuracy on the "
                     "samples (class fidelity), ± its binomial standard error.")
    if "bits_per_dim" in extra:
        lines.append(f"bits_per_dim: {extra['bits_per_dim']:.4f} ± {extra['bits_per_dim_se']:.4f} "
                     f"({extra['bits_per_dim_kind']})")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return [out / "results.csv", out / "results.json", out / "results.md", *_plots(rows, metric, floor, out, run_)]


def plot_range(rows, metric: str, floor: dict) -> tuple[float, float]:
    """The quality axis (low, top) of quality_vs_nfe.png: it fits the rows that did not diverge and the noise floor
    (±1 s.e.), with a margin; diverged rows are drawn on its top edge."""
    ok = [r for r in rows if not r.get("diverged")] + [floor]
    low = min(r[metric] - r[f"{metric}_se"] for r in ok)
    return low, max(r[metric] + r[f"{metric}_se"] for r in ok) * 1.5


def _plots(rows, metric, floor, out, run_):
    from .plots import image_grid

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    lo, hi = floor[metric] - floor[f"{metric}_se"], floor[metric] + floor[f"{metric}_se"]
    low, top = plot_range(rows, metric, floor)
    off_scale = False
    for name in dict.fromkeys(series(r) for r in rows):
        rs = sorted((r for r in rows if series(r) == name and not r.get("diverged")), key=lambda r: r["nfe"])
        line = ax.errorbar([r["nfe"] for r in rs], [r[metric] for r in rs], yerr=[r[f"{metric}_se"] for r in rs],
                           fmt="o-" if len(rs) > 1 else "*", label=name, ms=4, capsize=2, lw=1)
        bad = [r for r in rows if series(r) == name and r.get("diverged")]
        if bad:
            off_scale = True
            ax.plot([r["nfe"] for r in bad], [top / 1.15] * len(bad), "^", color=line[0].get_color(), ms=7)  # inside the frame
    if off_scale:
        ax.plot([], [], "^", color="black", ms=7, label="diverged (off scale)")
    ax.axhspan(max(lo, 1e-12), hi, color="grey", alpha=0.3, label=f"noise floor ({floor['n_floor']} real samples)")
    ax.axhline(floor[metric], color="grey", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="NFE (score evaluations)", ylabel=metric.replace("_", " "),
           title="sample quality vs NFE (lower is better; bars: ±1 s.e.)")
    ax.set_ylim(low / 1.5 if low > 0 else None, top)
    ax.legend(fontsize=7, loc="best")
    fig.savefig(out / "quality_vs_nfe.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    best = best_rows(rows, metric)
    if not best:  # every row diverged: there is no sample worth showing
        return [out / "quality_vs_nfe.png"]
    fig, axes = plt.subplots(1, len(best), figsize=(2.6 * len(best), 2.9), squeeze=False)
    for ax, (name, r) in zip(axes[0], best.items()):
        x = torch.from_numpy(np.load(out / "samples" / _sample_file(r)))
        if run_.is_image:
            x = run_.to_display(x[:16])
            ax.imshow(image_grid(x, min_size=0).numpy(), cmap="gray" if x.shape[1] == 1 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            ax.axis("off")
        else:
            ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
            ref = run_.data.eval_data  # every panel on the data's box, so the panels line up
            pad = 0.1 * (ref.amax(0) - ref.amin(0))
            ax.set(xticks=[], yticks=[], aspect="equal", xlim=(float(ref[:, 0].min() - pad[0]), float(ref[:, 0].max() + pad[0])),
                   ylim=(float(ref[:, 1].min() - pad[1]), float(ref[:, 1].max() + pad[1])))
        ax.set_title(f"{name}\n{r['steps']} steps, {r['nfe']} NFE", fontsize=8)
    fig.savefig(out / "best_samples.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    written = [out / "quality_vs_nfe.png", out / "best_samples.png"]
    if "accuracy" in rows[0]:
        written.append(_tradeoff_plot(rows, metric, floor, out, plt))
    return written


def _tradeoff_plot(rows, metric, floor, out, plt):
    """The guidance trade-off: sample quality against class fidelity, one point per w (Ho & Salimans 2022, Fig. 4)."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (name, steps) in dict.fromkeys((r["sampler"], r["steps"]) for r in rows):
        rs = sorted((r for r in rows if (r["sampler"], r["steps"]) == (name, steps)), key=lambda r: r["guidance"])
        ax.errorbar([r["accuracy"] for r in rs], [r[metric] for r in rs], xerr=[r["accuracy_se"] for r in rs],
                    yerr=[r[f"{metric}_se"] for r in rs], fmt="o-", ms=4, capsize=2, lw=1, label=f"{name}, {steps} steps")
        for r in rs:
            ax.annotate(f"w={r['guidance']:g}", (r["accuracy"], r[metric]), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
    ax.axhline(floor[metric], color="grey", lw=1, label=f"noise floor ({floor['n_floor']} real samples)")
    ax.axvline(floor["accuracy"], color="grey", lw=1, ls="--", label="accuracy on real held-out images")
    ax.set(xlabel="class fidelity: feature-classifier accuracy on the samples", yscale="log",
           ylabel=metric.replace("_", " ") + " (lower is better)", title="classifier-free guidance trade-off")
    ax.legend(fontsize=7, loc="best")
    fig.savefig(out / "guidance_tradeoff.png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return out / "guidance_tradeoff.png"
