"""Digests: the streaming hasher equals hashing the whole, whatever the writes look like."""

import hashlib

import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from nnsave.hashing import Digest, StreamHasher, hash_buffer, is_hex_digest, new_hash


def test_hash_buffer_matches_the_reference_implementations():
    data = bytes(range(256)) * 5000
    digest = hash_buffer(data, ["blake3", "sha256"])
    assert digest.size == len(data)
    assert digest.values["blake3"] == blake3(data).hexdigest()
    assert digest.sha256 == hashlib.sha256(data).hexdigest()


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="md5"):
        new_hash("md5")


def test_agreement_needs_a_shared_algorithm_and_equal_values():
    digest = Digest(3, {"blake3": "a" * 64})
    assert digest.agrees_with(3, {"blake3": "a" * 64, "sha256": "b" * 64})
    assert not digest.agrees_with(4, {"blake3": "a" * 64})
    assert not digest.agrees_with(3, {"blake3": "c" * 64})
    assert not digest.agrees_with(3, {"sha256": "b" * 64}), "no shared algorithm proves nothing"


def test_is_hex_digest():
    assert is_hex_digest("0" * 64)
    assert not is_hex_digest("0" * 63) and not is_hex_digest("A" * 64) and not is_hex_digest(None)


_KIND = {"bytes": bytes, "bytearray": bytearray, "memoryview": lambda b: memoryview(bytearray(b))}


@settings(max_examples=40, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from(sorted(_KIND)), st.integers(0, 3 << 20), st.integers(0, 255)),
        max_size=8,
    )
)
def test_streamed_digest_equals_whole_digest_even_when_buffers_are_reused(writes):
    """A caller may reuse a mutable buffer as soon as update() returns; the hash must not see it."""
    hasher = StreamHasher(["blake3", "sha256"])
    expected = bytearray()
    for kind, size, fill in writes:
        chunk = _KIND[kind](bytes([fill]) * size)
        view = memoryview(chunk).cast("B")
        pending = hasher.update(chunk, view)
        if pending is not None:
            pending.result()
        expected += bytes(view)
        if not isinstance(chunk, bytes) and len(view):
            view[:] = b"\x00" * len(view)  # the owner reuses its buffer
    digest = hasher.digest()
    hasher.close()
    assert digest == hash_buffer(bytes(expected), ["blake3", "sha256"])
