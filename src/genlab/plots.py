"""Figures written into run directories (PNG, matplotlib's Agg backend; no display needed).

Inputs are in model units (what the network sees); images are shown on a [0, 1] grey scale,
other data min–max normalised per figure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402

from .models.ranking import RANKING_LABELS  # noqa: E402


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


def save_training_curves(path: str | Path, history: list[dict], title: str = "", *, n_cols: int = 4,
                         groups: Mapping[str, tuple[str, str]] | None = None) -> Path | None:
    """Every logged loss term per epoch (training solid, validation dashed), ``n_cols`` panels a row. None if no epochs.

    ``groups`` maps record-key prefixes of per-coordinate series (``kl_dim_``) to (panel title, legend prefix): each
    group is one panel with a curve per coordinate (the family registry's ``grouped``)."""
    records = [r for r in history if r.get("epoch", 0) > 0]
    if not records:
        return None
    groups = dict(groups or {})
    skip = {"epoch", "step", "time", "samples_per_s", "aggressive", "beta"}
    terms = [k for k in records[0] if k not in skip and not k.startswith(("val_", *groups))]
    series = {groups[p][0]: [(k, groups[p][1] + k[len(p):]) for k in records[0] if k.startswith(p)] for p in groups}
    series = {panel: curves for panel, curves in series.items() if curves}
    panels = terms + list(series)
    n_cols = min(len(panels), n_cols)
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
            for k, label in series[term]:
                ax.plot(epochs, [r[k] for r in records], label=label, lw=1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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



VAL_RANKING_LABELS = {f"val_{k}": label for k, label in RANKING_LABELS.items()}  # the validation records' keys


def save_ranking_curves(path: str | Path, history: list[dict], title: str = "", best_epoch: int | None = None) -> Path | None:
    """A recommender's epochs: loss, nll and kl (training solid, validation dashed), the KL weight β, and
    the validation ranking metrics with the kept epoch marked. Two columns, so it stays legible on a phone.
    None if no epochs."""
    records = [r for r in history if r.get("epoch", 0) > 0]
    if not records:
        return None
    panels = [k for k in ("loss", "nll", "kl", "beta") if k in records[0]]
    ranking = [k for k in VAL_RANKING_LABELS if k in records[0]]
    panels += ["validation ranking"] if ranking else []
    n_rows = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(n_rows, 2, figsize=(7.2, 2.6 * n_rows), squeeze=False)
    epochs = [r["epoch"] for r in records]
    for ax, panel in zip(axes.flat, panels):
        if panel == "validation ranking":
            for k in ranking:
                ax.plot(epochs, [r[k] for r in records], label=VAL_RANKING_LABELS[k])
            if best_epoch:
                ax.axvline(best_epoch, color="grey", lw=1, ls=":", label=f"kept: epoch {best_epoch}")
        else:
            has_val = f"val_{panel}" in records[0] and panel != "beta"
            ax.plot(epochs, [r[panel] for r in records], label="train" if has_val else None)
            if has_val:
                ax.plot(epochs, [r[f"val_{panel}"] for r in records], "--", label="validation")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("β (KL weight)" if panel == "beta" else panel, fontsize=9)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    return _save(fig, path, title)

# -- latent-space figures (genlab.latent) ---------------------------------------------------------
Range = tuple[float, float] | None


def _resolve_range(data: np.ndarray, value_range: Range | str) -> Range:
    """``"auto"``: (0, 1) for data in [0, 1], else None (stretch min to max)."""
    return display_range(data) if isinstance(value_range, str) and value_range == "auto" else value_range


def _save(fig, path: str | Path, title: str) -> Path:
    if title:
        fig.suptitle(title, fontsize=9)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(Path(path), dpi=120)
    plt.close(fig)
    return Path(path)


def _tile_rows(rows: list[np.ndarray], value_range: Range, pad: int = 1) -> tuple[np.ndarray, list[float], int]:
    """Image rows (each (m, c, h, w)) stacked into one (H, W, c) array; returns it, each row's centre
    (pixels from the top) and the number of columns."""
    n_cols = max(len(r) for r in rows)
    grids = [image_grid(r, n_cols, value_range, pad) for r in rows]
    grids = [g if i == 0 else g[pad:] for i, g in enumerate(grids)]  # one pad between rows, not two
    h = rows[0].shape[2]
    centres = [pad + i * (h + pad) + (h - 1) / 2 for i in range(len(rows))]
    return np.concatenate(grids, axis=0), centres, n_cols


def _show_tiled(ax, grid: np.ndarray, row_centres: list[float], row_labels, col_centres=None, col_labels=None) -> None:
    """Show a tiled image with labelled rows (and columns) instead of axes."""
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_yticks(row_centres if row_labels else [], labels=list(row_labels) if row_labels else [], fontsize=7)
    ax.set_xticks(col_centres if col_labels else [], labels=list(col_labels) if col_labels else [], fontsize=7)
    ax.tick_params(length=0)


def _heatmaps(fig, panels: list[np.ndarray], labels, value_range: Range) -> None:
    """One heat-map per (m, d) panel on a shared colour scale: rows are steps, columns features."""
    lo, hi = value_range if value_range else (min(p.min() for p in panels), max(p.max() for p in panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for i, (ax, panel) in enumerate(zip(axes, panels)):
        im = ax.imshow(panel, aspect="auto", cmap="viridis", vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_ylabel(labels[i] if labels else "", fontsize=7)
        ax.set_yticks([])
        if i < len(panels) - 1:
            ax.set_xticks([])
    axes[-1].set_xlabel("feature")
    fig.colorbar(im, ax=list(axes), shrink=0.8)


def _background(ax, points: np.ndarray | None) -> None:
    if points is not None:
        ax.scatter(*np.asarray(points)[:, :2].T, s=3, c="0.8", label="data", zorder=0)


def save_interpolation(path: str | Path, rows: list[np.ndarray], title: str = "", *, row_labels: list[str] | None = None,
                       value_range: Range | str = "auto", background: np.ndarray | None = None) -> Path:
    """Interpolation paths, one row each: ``rows`` is a list of (m, c, h, w) image sequences (or (m, d)
    vectors), in model units.

    Images are tiled one row per path, shown on ``value_range`` ("auto": [0, 1] if the data lies in
    it, else min to max). 2-D vectors are drawn as paths in the plane over ``background`` points
    (n, 2); other vectors as one heat-map per row.
    """
    rows = [np.asarray(r) for r in rows]
    if not rows:
        raise ValueError("rows is empty: give at least one sequence to show.")
    vr = _resolve_range(np.concatenate([r.ravel() for r in rows]), value_range)
    if rows[0].ndim == 4:
        grid, centres, n_cols = _tile_rows(rows, vr)
        fig, ax = plt.subplots(figsize=(n_cols * 0.6 + 1.0, len(rows) * 0.6 + 0.5))
        _show_tiled(ax, grid, centres, row_labels)
    elif rows[0].shape[1] == 2:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        _background(ax, background)
        for i, row in enumerate(rows):
            ax.plot(*row.T, "-o" if i % 2 == 0 else "--s", ms=3, lw=1, label=row_labels[i] if row_labels else None)
            ax.annotate("start", row[0], fontsize=6)
        ax.set_aspect("equal")
        ax.legend(fontsize=6, loc="best")
    else:
        fig = plt.figure(figsize=(8, 0.6 * len(rows) + 1.0), layout="constrained")  # the colour bar spans all panels
        _heatmaps(fig, rows, row_labels, vr)
    return _save(fig, path, title)


def save_traversal(path: str | Path, grid: np.ndarray, title: str = "", *, row_labels: list[str] | None = None,
                   column_labels: list[str] | None = None, value_range: Range | str = "auto",
                   background: np.ndarray | None = None) -> Path:
    """Latent traversals: ``grid`` (n_dims, n_values, c, h, w) in model units, one row per latent
    coordinate, one column per value (or (n_dims, n_values, d) vectors: 2-D drawn as curves in the
    plane, other vectors as one heat-map per coordinate)."""
    grid = np.asarray(grid)
    vr = _resolve_range(grid, value_range)
    if grid.ndim == 5:
        tiled, centres, n_cols = _tile_rows(list(grid), vr)
        w = grid.shape[-1]
        col_centres = [1 + j * (w + 1) + (w - 1) / 2 for j in range(n_cols)]
        fig, ax = plt.subplots(figsize=(n_cols * 0.6 + 1.0, len(grid) * 0.6 + 0.7))
        _show_tiled(ax, tiled, centres, row_labels, col_centres, column_labels)
    elif grid.shape[-1] == 2:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        _background(ax, background)
        for i, curve in enumerate(grid):
            line, = ax.plot(*curve.T, "-o", ms=3, lw=1, label=row_labels[i] if row_labels else f"z{i}")
            ax.plot(*curve[-1], ">", color=line.get_color(), ms=6)  # the direction of increasing value
        ax.set_aspect("equal")
        ax.legend(fontsize=6, loc="best")
    else:
        fig = plt.figure(figsize=(8, 0.7 * len(grid) + 1.0), layout="constrained")  # the colour bar spans all panels
        _heatmaps(fig, list(grid), row_labels or [f"z{i}" for i in range(len(grid))], vr)
    return _save(fig, path, title)


def save_neighbours(path: str | Path, samples: np.ndarray, neighbours: np.ndarray, distances, title: str = "", *,
                    value_range: Range | str = "auto") -> Path:
    """Generated images (top row) over their nearest training images (bottom row), each pair's distance
    under it: ``samples`` and ``neighbours`` (m, c, h, w) in model units, ``distances`` (m,)."""
    samples, neighbours = np.asarray(samples), np.asarray(neighbours)
    vr = _resolve_range(np.concatenate([samples.ravel(), neighbours.ravel()]), value_range)
    grid, centres, n_cols = _tile_rows([samples, neighbours], vr)
    w = samples.shape[-1]
    col_centres = [1 + j * (w + 1) + (w - 1) / 2 for j in range(n_cols)]
    fig, ax = plt.subplots(figsize=(n_cols * 0.7 + 1.4, 2.2))
    _show_tiled(ax, grid, centres, ["sample", "nearest\ntraining image"], col_centres, [f"{d:.2f}" for d in distances])
    ax.set_xlabel("distance (pixel space)", fontsize=7)
    return _save(fig, path, title)


def save_manifold(path: str | Path, grid: np.ndarray, title: str = "", *, value_range: Range | str = "auto",
                  background: np.ndarray | None = None) -> Path:
    """The decoded grid of a 2-D latent space: ``grid`` (n, n, c, h, w) in model units, z₀ growing to
    the right and z₁ upwards (as :func:`genlab.latent.manifold_grid` returns it). 2-D vectors
    (n, n, 2) are drawn as the image of the grid's lines in the plane; other vectors as one heat-map
    with a row per grid cell."""
    grid = np.asarray(grid)
    vr = _resolve_range(grid, value_range)
    n = grid.shape[0]
    if grid.ndim == 5:
        tiled = image_grid(grid.reshape(n * grid.shape[1], *grid.shape[2:]), grid.shape[1], vr)
        fig, ax = plt.subplots(figsize=(min(0.5 * n, 9) + 0.6, min(0.5 * n, 9) + 0.8))
        _show_tiled(ax, tiled, [], None)
        ax.set_xlabel("z₀ →", fontsize=8)
        ax.set_ylabel("z₁ →", fontsize=8)
    elif grid.shape[-1] == 2:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        _background(ax, background)
        for i in range(n):
            ax.plot(*grid[i].T, "-", color="C0", lw=0.8)  # a row: z₁ fixed, z₀ varies
            ax.plot(*grid[:, i].T, "-", color="C1", lw=0.8)  # a column: z₀ fixed, z₁ varies
        ax.plot([], [], color="C0", label="z₀ varies")
        ax.plot([], [], color="C1", label="z₁ varies")
        ax.set_aspect("equal")
        ax.legend(fontsize=6, loc="best")
    else:
        fig = plt.figure(figsize=(8, 6), layout="constrained")  # the colour bar spans all panels
        _heatmaps(fig, [grid.reshape(n * grid.shape[1], -1)], ["grid cell (row by row, z₁ falling)"], vr)
    return _save(fig, path, title)


def save_latent_scatter(path: str | Path, Z: np.ndarray, labels: np.ndarray | None = None, title: str = "") -> Path:
    """Codes ``Z`` (n, k) as points: k = 2 as they are, k > 2 by their first two principal components,
    k = 1 against the label (or the sample index). Coloured by ``labels`` (n,) when given: a legend
    for up to 20 integer classes, a colour bar otherwise."""
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or len(Z) == 0:
        raise ValueError(f"Z must be codes of shape (n, k) with n >= 1; got shape {Z.shape}.")
    labels = None if labels is None else np.asarray(labels).reshape(-1)
    if labels is not None and len(labels) != len(Z):
        raise ValueError(f"labels has {len(labels)} entries for {len(Z)} codes.")
    n, k = Z.shape
    if k == 1:
        if labels is not None:
            jitter = np.random.default_rng(0).uniform(-0.2, 0.2, n)  # spread the points of one label
            xy, axis_names = np.column_stack([Z[:, 0], labels.astype(np.float64) + jitter]), ("z0", "label (jittered)")
        else:
            xy, axis_names = np.column_stack([Z[:, 0], np.arange(n)]), ("z0", "sample index")
    elif k == 2 or n < 2:
        xy, axis_names = Z[:, :2] if k >= 2 else Z, ("z0", "z1")
    else:
        pca = PCA(n_components=2).fit(Z)
        ratio = pca.explained_variance_ratio_
        xy = pca.transform(Z)
        axis_names = tuple(f"principal component {i + 1} of z ({ratio[i]:.0%} of variance)" for i in range(2))
    fig, ax = plt.subplots(figsize=(6, 5))
    discrete = labels is not None and len(np.unique(labels)) <= 20 and np.all(np.mod(labels, 1) == 0)
    if labels is None:
        ax.scatter(*xy.T, s=5, alpha=0.6)
    elif discrete:
        classes = np.unique(labels)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
        for i, c in enumerate(classes):
            ax.scatter(*xy[labels == c].T, s=5, alpha=0.7, color=cmap(i), label=f"{c:g}" if labels.dtype.kind == "f" else str(c))
        ax.legend(title="label", fontsize=7, title_fontsize=7, markerscale=2.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    else:
        points = ax.scatter(*xy.T, s=5, alpha=0.7, c=labels, cmap="viridis")
        fig.colorbar(points, ax=ax, label="label")
    ax.set_xlabel(axis_names[0], fontsize=8)
    ax.set_ylabel(axis_names[1], fontsize=8)
    if k == 2:
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=120)
    plt.close(fig)
    return Path(path)
