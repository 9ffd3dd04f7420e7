"""The native SPSC ring: order, exact overflow accounting, threads, bad input, lifetime."""

import gc
import re
import threading
import time
import weakref

import numpy as np
import pytest

from aim_edge import errors
from aim_edge.config import RingConfig
from aim_edge.ring import RingBuffer, RingStats, start_native_producer

THREAD_SAMPLES = 10_000_000  # < 2**24: every ramp value is an exact float32


def ramp(start, n):
    return np.arange(start, start + n, dtype=np.float32)


def test_construction_from_capacity_and_config():
    assert RingBuffer().capacity == RingConfig().capacity == 1 << 16
    ring = RingBuffer(RingConfig(capacity=256))
    assert ring.capacity == 256 and len(ring) == 0
    assert ring.config == RingConfig(capacity=256)
    assert RingBuffer(capacity=2).capacity == 2


def test_wrap_around_keeps_order():
    ring = RingBuffer(16)
    produced, consumed = 0, []
    for step in range(200):
        n = 1 + step % 7  # never more than 16 - 6 in the ring: no drops
        assert ring.push(ramp(produced, n)) == 0
        produced += n
        consumed.append(ring.pop(5))
    while len(ring):
        consumed.append(ring.pop(16))
    np.testing.assert_array_equal(np.concatenate(consumed), ramp(0, produced))
    stats = ring.stats()
    assert stats.pushed == stats.popped == produced
    assert stats.dropped_samples == stats.overflow_events == 0
    assert stats.high_water <= 16


def test_overflow_drops_oldest_and_counts_exactly():
    ring = RingBuffer(8)
    assert ring.push(ramp(0, 6)) == 0
    assert ring.push(ramp(6, 5)) == 3  # 0, 1, 2 dropped
    assert ring.push(ramp(11, 2)) == 2  # 3, 4 dropped
    stats = ring.stats()
    assert stats == RingStats(pushed=13, popped=0, dropped_samples=5, overflow_events=2,
                              high_water=8, size=8, capacity=8, cleared=0)
    np.testing.assert_array_equal(ring.pop(100), ramp(5, 8))
    assert ring.push(ramp(13, 3)) == 0
    stats = ring.stats()
    assert (stats.popped, stats.overflow_events, stats.size) == (8, 2, 3)
    assert stats.pushed == stats.popped + stats.dropped_samples + stats.size


def test_push_larger_than_capacity_keeps_the_last_samples():
    ring = RingBuffer(8)
    ring.push(ramp(100, 3))
    assert ring.push(ramp(0, 21)) == 13 + 3
    np.testing.assert_array_equal(ring.pop(8), ramp(13, 8))
    stats = ring.stats()
    assert (stats.pushed, stats.dropped_samples, stats.overflow_events, stats.high_water) == (
        24, 16, 1, 8)


def test_pop_returns_fresh_float32_arrays():
    ring = RingBuffer(64)
    ring.push(ramp(0, 10))
    first = ring.pop(4)
    assert first.dtype == np.float32 and first.shape == (4,) and first.flags.owndata
    first[:] = -1  # a fresh array: writing to it cannot touch the ring
    np.testing.assert_array_equal(ring.pop(100), ramp(4, 6))
    empty = ring.pop(5)
    assert empty.dtype == np.float32 and empty.shape == (0,)
    assert ring.pop(0).shape == (0,)


def test_pop_hops_shapes():
    ring = RingBuffer(64)
    ring.push(ramp(0, 23))
    hops = ring.pop_hops(5, 10)
    assert hops.shape == (4, 5) and hops.dtype == np.float32
    np.testing.assert_array_equal(hops.ravel(), ramp(0, 20))
    assert len(ring) == 3
    none = ring.pop_hops(5, 10)
    assert none.shape == (0, 5) and none.dtype == np.float32
    assert len(ring) == 3  # a partial hop stays
    ring.push(ramp(23, 30))
    two = ring.pop_hops(4, 2)  # limited by max_hops
    assert two.shape == (2, 4)
    np.testing.assert_array_equal(two.ravel(), ramp(20, 8))
    rest = ring.pop_hops(5)  # max_hops=None: every whole hop
    assert rest.shape == (5, 5)
    np.testing.assert_array_equal(rest.ravel(), ramp(28, 25))
    assert ring.pop_hops(5, 0).shape == (0, 5)
    assert len(ring) == 0


def test_clear_discards_and_is_counted():
    ring = RingBuffer(16)
    ring.push(ramp(0, 10))
    ring.clear()
    assert len(ring) == 0 and ring.pop(16).shape == (0,)
    ring.push(ramp(50, 2))
    np.testing.assert_array_equal(ring.pop(16), ramp(50, 2))
    stats = ring.stats()
    assert stats.cleared == 10
    assert stats.pushed == stats.popped + stats.dropped_samples + stats.cleared + stats.size
    ring.clear()
    assert ring.stats().cleared == 10


def test_stats_dataclass_is_frozen_and_complete():
    ring = RingBuffer(32)
    ring.push(np.zeros(20, np.float32))
    ring.pop(7)
    stats = ring.stats()
    assert isinstance(stats, RingStats)
    assert stats == RingStats(pushed=20, popped=7, dropped_samples=0, overflow_events=0,
                              high_water=20, size=13, capacity=32, cleared=0)
    with pytest.raises(AttributeError):
        stats.pushed = 0  # type: ignore[misc]


def test_push_accepts_other_float_inputs():
    ring = RingBuffer(64)
    ring.push([0.5, -0.25])  # list of floats
    ring.push(np.array([0.125, 1.0], dtype=np.float64))
    ring.push(np.array([0.75], dtype=np.float16))
    ring.push(np.arange(8, dtype=np.float32)[::2])  # strided view
    ring.push(np.array([3.0, 4.0], dtype=">f4"))  # big-endian float32
    ring.push(np.empty(0, np.float32))
    expected = np.array([0.5, -0.25, 0.125, 1.0, 0.75, 0, 2, 4, 6, 3, 4], np.float32)
    np.testing.assert_array_equal(ring.pop(64), expected)


@pytest.mark.parametrize(
    ("samples", "dtype_text"),
    [
        (np.zeros(4, np.int16), "int16"),
        (np.zeros(4, np.uint8), "uint8"),
        ([1, 2, 3], "int64"),
        (np.zeros(4, bool), "bool"),
        (np.zeros(4, np.complex64), "complex64"),
        ("abc", "<U3"),
        (np.array([0.5, None], dtype=object), "object"),
    ],
)
def test_push_rejects_non_float_dtypes_naming_the_dtype(samples, dtype_text):
    ring = RingBuffer(16)
    with pytest.raises(errors.AudioTypeError, match=dtype_text) as info:
        ring.push(samples)
    assert isinstance(info.value, TypeError)
    assert len(ring) == 0


def test_push_of_integers_says_to_scale_to_float():
    with pytest.raises(errors.AudioTypeError, match=r"int16.*scale it to float in \[-1, 1\]"):
        RingBuffer(16).push(np.zeros(4, np.int16))


@pytest.mark.parametrize("shape", [(2, 3), (1, 4), ()])
def test_push_rejects_non_1d_input_naming_the_shape(shape):
    ring = RingBuffer(16)
    with pytest.raises(errors.AudioInputError, match=re.escape(str(shape))) as info:
        ring.push(np.zeros(shape, np.float32))
    assert isinstance(info.value, ValueError)
    assert len(ring) == 0


def test_bad_sizes_raise_with_the_value():
    ring = RingBuffer(16)
    with pytest.raises(ValueError, match="-3"):
        ring.pop(-3)
    with pytest.raises(ValueError, match="-1"):
        ring.pop_hops(-1)
    with pytest.raises(ValueError, match="hop = 0"):
        ring.pop_hops(0)
    with pytest.raises(ValueError, match="max_hops = -2"):
        ring.pop_hops(4, -2)


@pytest.mark.parametrize("capacity", [1000, 0, 1, 3, -8, 1 << 31, 2.0, "64"])
def test_bad_capacity_is_a_config_error_naming_the_value(capacity):
    with pytest.raises(errors.ConfigError, match=re.escape(repr(capacity))):
        RingBuffer(capacity)


def test_bad_capacity_1000_message():
    with pytest.raises(errors.ConfigError, match=r"ring\.capacity = 1000 .*power of two"):
        RingBuffer(1000)


def test_ring_cannot_be_reinitialised_or_pickled():
    import pickle

    ring = RingBuffer(16)
    with pytest.raises(errors.NativeError, match="twice"):
        ring.__init__(32)
    assert ring.capacity == 16
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ring)


def test_capsule_exists_and_names_the_native_type():
    import ctypes

    ring = RingBuffer(16)
    capsule = ring.capsule()
    assert type(capsule).__name__ == "PyCapsule"
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    assert get_name(capsule) == b"aim_edge::RingBuffer"
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object,
                                                                  ctypes.c_char_p]
    assert get_pointer(capsule, b"aim_edge::RingBuffer") == get_pointer(ring.capsule(),
                                                                         b"aim_edge::RingBuffer")
    del ring
    gc.collect()
    del capsule  # the capsule co-owned the native ring; freeing it last must be clean
    gc.collect()


def _consume(ring, total, max_pop, deadline_s=120.0):
    """Pop until ``total`` samples were accounted for (popped or dropped); return the pops."""
    chunks, popped = [], 0
    deadline = time.monotonic() + deadline_s
    while True:
        block = ring.pop(max_pop)
        if block.size:
            chunks.append(block)
            popped += block.size
            continue
        if popped + ring.stats().dropped_samples >= total and len(ring) == 0:
            return chunks
        assert time.monotonic() < deadline, f"consumer stuck at {popped} of {total} samples"
        time.sleep(0)


def test_two_python_threads_move_10_million_samples_in_order():
    ring = RingBuffer(1 << 14)
    block_size = 1024
    source = ramp(0, THREAD_SAMPLES)
    failure = []

    def produce():
        try:
            for start in range(0, THREAD_SAMPLES, block_size):
                block = source[start:start + block_size]
                while ring.capacity - len(ring) < block.size:  # backpressure: lossless
                    time.sleep(0)
                ring.push(block)
        except BaseException as exc:  # pragma: no cover - re-raised below
            failure.append(exc)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        chunks = _consume(ring, THREAD_SAMPLES, 4096)
    finally:
        producer.join(timeout=60)
    assert not failure
    assert not producer.is_alive()
    received = np.concatenate(chunks)
    assert received.size == THREAD_SAMPLES
    np.testing.assert_array_equal(received, source)
    stats = ring.stats()
    assert (stats.pushed, stats.popped, stats.dropped_samples) == (
        THREAD_SAMPLES, THREAD_SAMPLES, 0)


def test_native_producer_without_gil_lossless_with_backpressure():
    ring = RingBuffer(1 << 14)
    handle = start_native_producer(ring, THREAD_SAMPLES, 320, backpressure=True)
    chunks = _consume(ring, THREAD_SAMPLES, 8192)
    assert handle.join() == THREAD_SAMPLES
    received = np.concatenate(chunks)
    np.testing.assert_array_equal(received, ramp(0, THREAD_SAMPLES))
    stats = ring.stats()
    assert (stats.pushed, stats.popped, stats.dropped_samples, stats.overflow_events) == (
        THREAD_SAMPLES, THREAD_SAMPLES, 0, 0)


def test_native_producer_without_gil_lossy_accounts_for_every_sample():
    ring = RingBuffer(1 << 12)
    handle = start_native_producer(ring, THREAD_SAMPLES, 320)  # flat out: the ring drops
    chunks = _consume(ring, THREAD_SAMPLES, 1024)
    assert handle.join() == THREAD_SAMPLES
    received = np.concatenate(chunks) if chunks else np.empty(0, np.float32)
    stats = ring.stats()
    assert stats.pushed == THREAD_SAMPLES
    assert stats.popped == received.size
    assert stats.popped + stats.dropped_samples == THREAD_SAMPLES
    assert received.size > 0 and received[-1] == THREAD_SAMPLES - 1  # the newest survives
    assert np.all(np.diff(received) > 0), "popped samples must be strictly increasing"
    assert np.all(received == np.round(received))  # never a torn or foreign value
    if stats.dropped_samples:
        assert stats.overflow_events >= 1 and stats.high_water == ring.capacity


def test_native_producer_handle_stops_and_joins_when_dropped():
    ring = RingBuffer(1 << 10)
    # Nobody consumes: with backpressure the thread waits forever unless the handle stops it.
    handle = start_native_producer(ring, 1 << 20, 256, backpressure=True)
    deadline = time.monotonic() + 30
    while len(ring) < ring.capacity:
        assert time.monotonic() < deadline
        time.sleep(0.001)
    del handle  # stops and joins; must not hang
    gc.collect()
    assert ring.stats().pushed == ring.capacity


def test_native_producer_bad_arguments():
    ring = RingBuffer(1 << 10)
    with pytest.raises(ValueError, match="16777217"):
        start_native_producer(ring, (1 << 24) + 1, 256)
    with pytest.raises(ValueError, match="block = 0"):
        start_native_producer(ring, 100, 0)
    with pytest.raises(ValueError, match="2048"):
        start_native_producer(ring, 100, 2048, backpressure=True)


def test_ring_is_freed_after_del_even_after_a_producer_thread_ran():
    ring = RingBuffer(1 << 12)
    handle = start_native_producer(ring, 100_000, 333)
    assert handle.join() == 100_000
    ref = weakref.ref(ring)
    del ring
    gc.collect()
    assert ref() is None
    assert handle.join() == 100_000  # idempotent, and the native ring it co-owns is still valid
    del handle
    gc.collect()


def test_ring_deleted_while_native_producer_runs_is_safe():
    ring = RingBuffer(1 << 10)
    handle = start_native_producer(ring, 2_000_000, 64)
    ref = weakref.ref(ring)
    del ring
    gc.collect()
    assert ref() is None  # the Python object is gone; the thread keeps the native ring alive
    assert handle.join() == 2_000_000
