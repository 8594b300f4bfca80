"""Figures of a run: the confusion matrix, and 3-D t-SNE maps of the train and test embeddings side by side
(like the paper's Fig. 2), coloured by emotion and by speaker. matplotlib loads only here, with the Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sertk.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    _pyplot().close(fig)


def plot_confusion(path: Path, matrix: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> None:
    """Counts and row-normalised rates (recall per true class) in one heat map."""
    plt = _pyplot()
    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.1 * len(labels) + 2))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(counts[i, j])}\n{100 * rates[i, j]:.1f}%", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=9)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="recall share")
    fig.tight_layout()
    _save(fig, path)


def tsne_3d(X: np.ndarray, seed: int) -> np.ndarray:
    """A 3-D t-SNE map; above 50 dimensions PCA reduces the input first (the usual recipe, and much faster)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] > 50 and X.shape[0] > 50:
        X = PCA(n_components=50, random_state=seed).fit_transform(X)
    perplexity = float(min(30.0, max(2.0, (X.shape[0] - 1) / 3)))
    return TSNE(n_components=3, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)


def plot_tsne_pair(path: Path, maps: Sequence[tuple[str, np.ndarray, Sequence[str]]], title: str,
                   legend_title: str) -> None:
    """Side-by-side 3-D scatter plots, one per (panel title, 3-D points, colour key)."""
    plt = _pyplot()
    keys = sorted({k for _, _, ks in maps for k in ks})
    cmap = plt.get_cmap("tab10" if len(keys) <= 10 else "tab20")
    colours = {k: cmap(i % cmap.N) for i, k in enumerate(keys)}
    fig = plt.figure(figsize=(6 * len(maps), 5.5))
    for i, (panel, points, ks) in enumerate(maps, start=1):
        ax = fig.add_subplot(1, len(maps), i, projection="3d")
        key_array = np.asarray(ks)
        for k in keys:
            sel = key_array == k
            if sel.any():
                ax.scatter(points[sel, 0], points[sel, 1], points[sel, 2], s=6, color=colours[k], label=k,
                           depthshade=False)
        ax.set_title(panel)
        ax.set_xticks([]), ax.set_yticks([]), ax.set_zticks([])
    handles, names = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, names, title=legend_title, loc="center right", markerscale=2.5)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.9, 0.95))
    _save(fig, path)


def write_tsne_figures(out: Path, X_train: np.ndarray, X_test: np.ndarray, labels_train, labels_test,
                       speakers_train, speakers_test, seed: int, title: str) -> dict[str, Path]:
    """``tsne_emotion.png`` and ``tsne_speaker.png``: train and test maps computed separately, as in the paper."""
    train_map = tsne_3d(X_train, seed)
    test_map = tsne_3d(X_test, seed)
    paths = {"tsne_emotion": out / "tsne_emotion.png", "tsne_speaker": out / "tsne_speaker.png"}
    plot_tsne_pair(paths["tsne_emotion"], [(f"train ({len(X_train)})", train_map, labels_train),
                                           (f"test ({len(X_test)})", test_map, labels_test)],
                   f"3-D t-SNE by emotion — {title}", "emotion")
    plot_tsne_pair(paths["tsne_speaker"], [(f"train ({len(X_train)})", train_map, speakers_train),
                                           (f"test ({len(X_test)})", test_map, speakers_test)],
                   f"3-D t-SNE by speaker — {title}", "speaker")
    return paths
