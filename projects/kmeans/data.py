"""Training images as the float32 matrix that k-means clusters."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from projects.kmeans.config import OptionError
from shared_lib.datasets import load_supervised_image

__all__ = ["CLASS_NAMES", "ClusteringData", "load_clustering_data", "pixels_to_points"]

# Label names in label order, as published with each dataset.
CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion_mnist": (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}  # fmt: skip


class ClusteringData(NamedTuple):
    """Images flattened to points, with the labels that only the evaluation uses."""

    points: jax.Array  # (n, C*H*W) float32 in [0, 1]
    labels: np.ndarray  # (n,) int32
    images: np.ndarray  # (n, C, H, W) uint8, for the example figures
    class_names: tuple[str, ...]


def pixels_to_points(images: jax.Array) -> jax.Array:
    """Flatten uint8 images (n, C, H, W) to float32 rows (n, C*H*W) scaled to [0, 1]."""
    flat = images.reshape(images.shape[0], -1)
    return flat.astype(jnp.float32) / 255.0


def load_clustering_data(dataset: str, n_train: int | None) -> ClusteringData:
    """Load the first `n_train` training images of `dataset` (all when None) with `shared_lib.datasets`.

    Raises:
        OptionError: `n_train` exceeds the size of the training split.
    """
    # The split size is known only after loading, so the whole split is loaded and then cut to n_train.
    data = load_supervised_image(dataset)
    images, labels = data.X, data.y
    if n_train is not None:
        if n_train > data.n_samples:
            raise OptionError(
                f"--n-train must be from 1 to {data.n_samples} (the size of the {dataset} training split), got {n_train}"
            )
        images, labels = images[:n_train], labels[:n_train]
    return ClusteringData(
        points=pixels_to_points(images),
        labels=np.asarray(labels),
        images=np.asarray(images),
        class_names=CLASS_NAMES.get(dataset, tuple(str(label) for label in range(data.d_y))),
    )
