"""Tests for shared_lib.random_utils: single-use keys and key streams."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from shared_lib.random_utils import KeyReuseError, SafeKey, infinite_safe_keys, infinite_safe_keys_from_key

KEY_MAKERS = {"typed": jax.random.key, "legacy": jax.random.PRNGKey}


def key_bits(key: jax.Array) -> np.ndarray:
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(key))
    return np.asarray(key)


@pytest.mark.parametrize("kind", KEY_MAKERS)
def test_get_then_reuse_raises(kind):
    raw = KEY_MAKERS[kind](0)
    safe = SafeKey(raw)

    assert not safe.used
    np.testing.assert_array_equal(key_bits(safe.get()), key_bits(raw))
    assert safe.used
    with pytest.raises(KeyReuseError):
        safe.get()
    with pytest.raises(KeyReuseError):
        safe.split(2)
    with pytest.raises(KeyReuseError):
        safe.duplicate(2)


@pytest.mark.parametrize("kind", KEY_MAKERS)
def test_split_matches_jax(kind):
    raw = KEY_MAKERS[kind](3)
    children = SafeKey(raw).split(3)

    expected = jax.random.split(raw, 3)
    assert len(children) == 3
    for child, want in zip(children, expected):
        np.testing.assert_array_equal(key_bits(child.get()), key_bits(want))


def test_split_children_single_use():
    first, second = SafeKey(jax.random.key(0)).split()
    first.get()
    with pytest.raises(KeyReuseError):
        first.get()
    assert not second.used


def test_duplicate_gives_equal_draws():
    copies = SafeKey(jax.random.key(5)).duplicate(3)
    draws = [jax.random.normal(copy.get(), (4,)) for copy in copies]
    for draw in draws[1:]:
        np.testing.assert_array_equal(draw, draws[0])


def test_split_draws_differ():
    left, right = SafeKey(jax.random.key(5)).split()
    assert not jnp.array_equal(jax.random.normal(left.get(), (4,)), jax.random.normal(right.get(), (4,)))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_counts_rejected(bad):
    with pytest.raises(ValueError, match=repr(bad)):
        SafeKey(jax.random.key(0)).split(bad)
    with pytest.raises(ValueError, match=repr(bad)):
        SafeKey(jax.random.key(0)).duplicate(bad)


def test_bad_count_keeps_key_unused():
    safe = SafeKey(jax.random.key(0))
    with pytest.raises(ValueError):
        safe.split(0)
    assert not safe.used


@pytest.mark.parametrize(
    "not_a_key", [jnp.zeros(3, jnp.uint32), jnp.zeros(2, jnp.float32), jax.random.split(jax.random.key(0), 2)]
)
def test_non_key_rejected(not_a_key):
    with pytest.raises((TypeError, ValueError)):
        SafeKey(not_a_key)


def test_stream_is_deterministic():
    first = [key_bits(k.get()) for k in itertools.islice(infinite_safe_keys(7), 5)]
    again = [key_bits(k.get()) for k in itertools.islice(infinite_safe_keys(7), 5)]
    other = [key_bits(k.get()) for k in itertools.islice(infinite_safe_keys(8), 5)]

    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))
    assert len({bits.tobytes() for bits in first}) == 5


@pytest.mark.parametrize("kind", KEY_MAKERS)
def test_stream_from_key_folds_in(kind):
    raw = KEY_MAKERS[kind](11)
    stream = infinite_safe_keys_from_key(raw)

    for index in range(4):
        safe = next(stream)
        assert isinstance(safe, SafeKey)
        np.testing.assert_array_equal(key_bits(safe.get()), key_bits(jax.random.fold_in(raw, index)))


def test_stream_rejects_float_seed():
    with pytest.raises(TypeError, match="1.5"):
        next(infinite_safe_keys(1.5))


@pytest.mark.parametrize("bad", [-1, 2**32, 2**64])
def test_stream_rejects_out_of_range_seed(bad):
    with pytest.raises(ValueError, match=f"from 0 to 4294967295, got {bad}"):
        infinite_safe_keys(bad)


def test_stream_accepts_numpy_seed():
    from_numpy = next(infinite_safe_keys(np.int64(3))).get()
    from_int = next(infinite_safe_keys(3)).get()
    np.testing.assert_array_equal(key_bits(from_numpy), key_bits(from_int))


def test_repr_shows_state_only():
    safe = SafeKey(jax.random.key(0))
    assert repr(safe) == "SafeKey(unused)"
    safe.get()
    assert repr(safe) == "SafeKey(used)"


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-v"]))
