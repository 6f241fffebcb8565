"""The 784-H-10 ReLU MLP, its input scaling and its per-example loss."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__ = ["MLPParams", "example_losses", "init_params", "logits", "scale_images"]

INIT_SCALE = 0.01  # standard deviation of the initial weights


class MLPParams(NamedTuple):
    """Weights and biases of a one-hidden-layer MLP; a pytree, so it can be stacked, scanned and vmapped."""

    w1: jax.Array  # (D, H)
    b1: jax.Array  # (H,)
    w2: jax.Array  # (H, K)
    b2: jax.Array  # (K,)


def init_params(key: jax.Array, d_in: int, hidden: int, d_out: int) -> MLPParams:
    """Draw weights from N(0, INIT_SCALE^2) and set biases to zero, all float32."""
    key_w1, key_w2 = jax.random.split(key)
    return MLPParams(
        w1=INIT_SCALE * jax.random.normal(key_w1, (d_in, hidden), jnp.float32),
        b1=jnp.zeros(hidden, jnp.float32),
        w2=INIT_SCALE * jax.random.normal(key_w2, (hidden, d_out), jnp.float32),
        b2=jnp.zeros(d_out, jnp.float32),
    )


def scale_images(images: jax.Array) -> jax.Array:
    """Map uint8 pixels (..., D) to float32 in [0, 1]."""
    return images.astype(jnp.float32) / 255.0


def logits(params: MLPParams, x: jax.Array) -> jax.Array:
    """Return the class logits (B, K) for inputs x (B, D) in [0, 1]."""
    hidden = jax.nn.relu(x @ params.w1 + params.b1)  # (B, H)
    return hidden @ params.w2 + params.b2  # (B, K)


def example_losses(params: MLPParams, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Return the softmax cross-entropy of every example (B,) in nats, and the logits (B, K)."""
    example_logits = logits(params, x)
    return optax.softmax_cross_entropy_with_integer_labels(example_logits, y), example_logits
