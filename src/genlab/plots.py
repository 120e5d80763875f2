"""Figures written into run directories (PNG, matplotlib's Agg backend; no display needed).

Inputs are in model units (what the network sees); images are shown on a [0, 1] grey scale,
other data min–max normalised per figure.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _display(images: np.ndarray, value_range: tuple[float, float] | None) -> np.ndarray:
    """(n, c, h, w) -> (n, h, w, c) in [0, 1] for imshow."""
    lo, hi = value_range if value_range else (float(images.min()), float(images.max()))
    out = (images.astype(np.float32) - lo) / max(hi - lo, 1e-12)
    return np.clip(out, 0.0, 1.0).transpose(0, 2, 3, 1)


def image_grid(images: np.ndarray, n_cols: int, value_range: tuple[float, float] | None = (0.0, 1.0), pad: int = 1) -> np.ndarray:
    """Tile (n, c, h, w) images into one (H, W, c) array, ``n_cols`` per row, white padding."""
    tiles = _display(images, value_range)
    n, h, w, c = tiles.shape
    n_rows = math.ceil(n / n_cols)
    grid = np.ones((n_rows * (h + pad) + pad, n_cols * (w + pad) + pad, c), dtype=np.float32)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, n_cols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + col * (w + pad): pad + col * (w + pad) + w] = tile
    return grid


def _show_grid(ax, grid: np.ndarray) -> None:
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()


def display_range(x: np.ndarray) -> tuple[float, float] | None:
    """(0, 1) for data in [0, 1] (values outside get clipped when shown), else None (stretch min to max)."""
    return (0.0, 1.0) if x.min() >= 0 and x.max() <= 1 else None


def save_reconstructions(path: str | Path, originals: np.ndarray, reconstructions: np.ndarray, title: str = "") -> Path:
    """Originals over their reconstructions: image rows for images, a scatter for 2-D points,
    heat-map rows for other vectors."""
    fig_path = Path(path)
    if originals.ndim == 4:
        n_cols = min(len(originals), 16)
        rows = []
        for start in range(0, min(len(originals), 48), n_cols):
            rows += [originals[start:start + n_cols], reconstructions[start:start + n_cols]]
        vr = display_range(originals)  # show reconstructions on the originals' scale, clipped
        fig, axes = plt.subplots(len(rows), 1, figsize=(n_cols * 0.6, len(rows) * 0.7 + 0.4))
        for i, (ax, row) in enumerate(zip(np.atleast_1d(axes), rows)):
            _show_grid(ax, image_grid(row, n_cols, vr))
            ax.set_title("original" if i % 2 == 0 else "reconstruction", fontsize=7, loc="left")
    elif originals.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(*originals.T, s=4, alpha=0.5, label="original")
        ax.scatter(*reconstructions.T, s=4, alpha=0.5, label="reconstruction")
        ax.legend(loc="best")
        ax.set_aspect("equal")
    else:
        both = np.concatenate([originals[:24], reconstructions[:24]], axis=0)
        fig, axes = plt.subplots(2, 1, figsize=(8, 5))
        for ax, part, name in zip(axes, (both[:len(both) // 2], both[len(both) // 2:]), ("original", "reconstruction")):
            ax.imshow(part, aspect="auto", cmap="viridis", vmin=both.min(), vmax=both.max(), interpolation="nearest")
            ax.set_title(name, fontsize=8, loc="left")
            ax.set_ylabel("sample")
        axes[1].set_xlabel("feature")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(fig_path, dpi=120)
    plt.close(fig)
    return fig_path


def save_samples(path: str | Path, samples: np.ndarray, title: str = "",
                 value_range: tuple[float, float] | None = (0.0, 1.0), n_cols: int = 16) -> Path:
    """A grid of generated images (or a scatter of 2-D points, heat-map rows of vectors).

    Images are shown on ``value_range`` (values outside are clipped); None stretches min to max.
    """
    fig_path = Path(path)
    if samples.ndim == 4:
        n_cols = min(len(samples), n_cols)
        grid = image_grid(samples, n_cols, value_range)
        fig, ax = plt.subplots(figsize=(n_cols * 0.6, math.ceil(len(samples) / n_cols) * 0.6 + 0.4))
        _show_grid(ax, grid)
    elif samples.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(*samples.T, s=4, alpha=0.5)
        ax.set_aspect("equal")
    else:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.imshow(samples[:48], aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_xlabel("feature")
        ax.set_ylabel("sample")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(fig_path, dpi=120)
    plt.close(fig)
    return fig_path


def save_training_curves(path: str | Path, history: list[dict], title: str = "") -> Path | None:
    """Every logged loss term per epoch (training solid, validation dashed). None if no epochs."""
    records = [r for r in history if r.get("epoch", 0) > 0]
    if not records:
        return None
    skip = {"epoch", "step", "time", "samples_per_s", "aggressive", "beta"}
    terms = [k for k in records[0] if k not in skip and not k.startswith(("val_", "kl_dim_"))]
    kl_dims = [k for k in records[0] if k.startswith("kl_dim_")]
    panels = terms + (["KL per latent dimension"] if kl_dims else [])
    n_cols = min(len(panels), 4)
    n_rows = math.ceil(len(panels) / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.6 * n_cols, 2.8 * n_rows), squeeze=False)
    epochs = [r["epoch"] for r in records]
    for ax, term in zip(axes.flat, panels):
        if term in terms:
            has_val = f"val_{term}" in records[0]
            ax.plot(epochs, [r[term] for r in records], label="train" if has_val else None)
            if has_val:
                ax.plot(epochs, [r[f"val_{term}"] for r in records], "--", label="validation")
        else:
            for k in kl_dims:
                ax.plot(epochs, [r[k] for r in records], label=k.replace("kl_dim_", "z"), lw=1)
        ax.set_xlabel("epoch")
        ax.set_title(term, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, ncol=2 if term not in terms else 1)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)
    plt.close(fig)
    return Path(path)
