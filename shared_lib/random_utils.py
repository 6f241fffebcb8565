"""JAX PRNG keys that raise when they are used twice.

Reusing a key silently correlates two random draws, which is one of the easiest JAX bugs to make
and one of the hardest to see in results. A `SafeKey` hands out its key once and raises
`KeyReuseError` on any later use, so the mistake surfaces at the line that makes it.

    keys = infinite_safe_keys(0)
    params = init(next(keys).get())
    key_data, key_dropout = next(keys).split(2)

Both typed keys (`jax.random.key`) and legacy raw keys (`jax.random.PRNGKey`, uint32[2]) work; the
keys handed out have the same kind as the key given.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np

__all__ = ["MAX_SEED", "KeyReuseError", "SafeKey", "infinite_safe_keys", "infinite_safe_keys_from_key"]


class KeyReuseError(RuntimeError):
    """A `SafeKey` was used after its key had already been handed out."""


def _check_is_key(key: jax.Array) -> None:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"expected a single PRNG key, got a batch of keys with shape {key.shape}")
        return
    if key.dtype != jax.numpy.uint32 or key.shape != (2,):
        raise TypeError(
            "expected a JAX PRNG key from jax.random.key(seed) or jax.random.PRNGKey(seed), "
            f"got an array of dtype {key.dtype} and shape {key.shape}"
        )


class SafeKey:
    """A JAX PRNG key that can be used exactly once.

    Use it through exactly one of `get()`, `split(n)` or `duplicate(n)`; a second call raises
    `KeyReuseError`. `split` and `duplicate` return new `SafeKey`s, each usable once.
    """

    __slots__ = ("_key", "_used")

    def __init__(self, key: jax.Array):
        _check_is_key(key)
        self._key = key
        self._used = False

    @property
    def used(self) -> bool:
        """Whether the key has been handed out."""
        return self._used

    def _take(self) -> jax.Array:
        if self._used:
            raise KeyReuseError(
                "this SafeKey was already used; split it (or draw a new one from infinite_safe_keys) "
                "instead of using the same key twice"
            )
        self._used = True
        return self._key

    def get(self) -> jax.Array:
        """Return the underlying JAX key and mark this SafeKey as used."""
        return self._take()

    def split(self, num: int = 2) -> tuple[SafeKey, ...]:
        """Split into `num` independent keys, as `jax.random.split` does."""
        _check_count(num, "split")
        return tuple(SafeKey(k) for k in jax.random.split(self._take(), num))

    def duplicate(self, num: int = 2) -> tuple[SafeKey, ...]:
        """Return `num` SafeKeys holding the same key, for draws that must be identical on purpose.

        Each copy can be used once, so the repetition is explicit at the call site.
        """
        _check_count(num, "duplicate")
        key = self._take()
        return tuple(SafeKey(key) for _ in range(num))

    def __repr__(self) -> str:
        state = "used" if self._used else "unused"
        return f"SafeKey({state})"


def _check_count(num: int, method: str) -> None:
    if not isinstance(num, int) or isinstance(num, bool) or num < 1:
        raise ValueError(f"SafeKey.{method} needs a positive integer count, got {num!r}")


def infinite_safe_keys_from_key(key: jax.Array) -> Iterator[SafeKey]:
    """Yield fresh SafeKeys forever, the i-th from `jax.random.fold_in(key, i)`.

    The stream is deterministic in `key`, and keys already yielded stay valid however far the
    stream is read.
    """
    _check_is_key(key)
    index = 0
    while True:
        yield SafeKey(jax.random.fold_in(key, index))
        index += 1


# With 64-bit mode off (JAX's default), jax.random.key keeps only the low 32 bits of a seed, so
# seeds 0 and 2**32 would give the same stream. Seeds of 2**63 or more raise OverflowError in JAX.
MAX_SEED = 2**32 - 1


def infinite_safe_keys(seed: int) -> Iterator[SafeKey]:
    """Yield fresh SafeKeys forever from an integer seed in 0..MAX_SEED, using typed `jax.random.key` keys."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed}")
    return infinite_safe_keys_from_key(jax.random.key(int(seed)))
