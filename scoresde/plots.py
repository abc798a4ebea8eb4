"""Pictures of samples: image grids and strips, scatter plots of 2-D points, guidance grids and labelled rows.

Each takes a `run` for its display (`run.to_display`, `run.is_image`, held-out data for the axes) and returns the
path written, or None when matplotlib is not installed.
"""
from __future__ import annotations

from pathlib import Path

import torch


def image_grid(x: torch.Tensor, min_size: int = 320, gap: int = 1) -> torch.Tensor:
    """Tile images [N, C, H, W] in [0, 1] into one picture [rows·(H + gap) − gap, cols·(W + gap) − gap(, C)], with
    `gap` white pixels between tiles (so digits do not run into stripes) and white where tiles are missing.

    Small grids are enlarged by an integer factor (nearest neighbour) to at least `min_size` pixels,
    so 8×8 digits are visible.
    """
    n, c, h, w = x.shape
    cols = int(n**0.5 + 0.999)
    rows = (n + cols - 1) // cols
    grid = torch.ones(rows * cols, c, h + gap, w + gap)
    grid[:n, :, :h, :w] = x
    grid = grid.reshape(rows, cols, c, h + gap, w + gap).permute(0, 3, 1, 4, 2)
    grid = grid.reshape(rows * (h + gap), cols * (w + gap), c)[:rows * (h + gap) - gap, :cols * (w + gap) - gap]
    scale = max(1, -(-min_size // max(grid.shape[:2])))
    return grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1).squeeze(-1)


def image_strip(x: torch.Tensor, gap: int = 1) -> torch.Tensor:
    """Images [k, C, H, W] side by side as one [C, H, k·(W + gap) − gap], with `gap` white columns between them."""
    k, c, h, w = x.shape
    strip = torch.ones(k, c, h, w + gap, dtype=x.dtype)
    strip[..., :w] = x
    return strip.permute(1, 2, 0, 3).reshape(c, h, k * (w + gap))[..., :k * (w + gap) - gap]


def save_samples(x: torch.Tensor, run, path: Path) -> Path | None:
    """A PNG grid (images) or scatter plot (2-D points) of a run's samples; needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    x = run.to_display(x.detach().float().cpu())
    if run.is_image:
        plt.imsave(path, image_grid(x).numpy(), cmap="gray" if x.shape[1] == 1 else None, vmin=0, vmax=1)
    else:
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.5)
        lim = float(run.data.eval_data.abs().max()) * 1.2
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=path.stem)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
    return path


def save_guidance_grid(x: torch.Tensor, labels, ws, run, path: Path, per_cell: int = 6,
                       note: str = "", columns: str = "classifier-free guidance w (0: conditional)") -> Path | None:
    """A picture of samples x [L, W, n, ...]: a row per class, a column per guidance scale w (per_cell samples
    per cell; 2-D points: a scatter plot per cell); needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = len(labels), len(ws)
    k = min(per_cell, x.shape[2])
    width = 0.55 * k if run.is_image else 2.2
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 0.6, (0.7 if run.is_image else 2.2) * rows + 0.5),
                             squeeze=False, layout="constrained")
    for i, y in enumerate(labels):
        for j, w in enumerate(ws):
            ax, cell = axes[i][j], run.to_display(x[i, j].detach().float().cpu())
            if run.is_image:
                strip = image_strip(cell[:k])  # [C, H, k·(W + 1) − 1]
                ax.imshow(strip.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if strip.shape[0] == 1 else None,
                          vmin=0, vmax=1, interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.scatter(cell[:, 0], cell[:, 1], s=1, alpha=0.4)
                lim = float(run.data.eval_data.abs().max()) * 1.2
                ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
            if i == 0:
                ax.set_title(f"w = {w:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel("unconditional" if y is None else f"class {y}", fontsize=9)
    rows_are = "" if list(labels) == [None] else "rows: classes; "
    fig.suptitle(f"{rows_are}columns: {columns}" + note, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def save_rows(rows: dict, run, path: Path, title: str = "", per_row: int = 12) -> Path | None:
    """A picture with one labelled row of images per entry of rows {name: images [N, C, H, W]} (the first
    per_row of each; e.g. input | result | ground truth for super-resolution and inpainting); needs matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    k = min(per_row, *(len(x) for x in rows.values()))
    fig, axes = plt.subplots(len(rows), 1, figsize=(0.6 * k + 1.2, 0.75 * len(rows) + 0.4), squeeze=False,
                             layout="constrained")
    for ax, (name, x) in zip(axes[:, 0], rows.items()):
        strip = image_strip(run.to_display(x[:k].detach().float().cpu()))  # [C, H, k·(W + 1) − 1]
        ax.imshow(strip.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if strip.shape[0] == 1 else None,
                  vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
