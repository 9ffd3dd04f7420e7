"""The native ring buffer between the audio callback and the perceive thread.

:class:`RingBuffer` is a lock-free single-producer / single-consumer ring of float32 samples in
[-1, 1]. When the consumer falls behind, the **oldest** samples are dropped and counted
(:class:`RingStats`), never silently: the perceive loop reads ``stats()`` and surfaces drops.

The hot methods (``push``, ``pop``, ``pop_hops``) are the C extension's own methods, inherited
without a Python wrapper: a call costs ~0.1-0.2 µs, so pop whole hops (160 samples = 10 ms at
16 kHz) or more per call rather than single samples.

Example
-------
>>> import numpy as np
>>> from aim_edge.ring import RingBuffer
>>> ring = RingBuffer(1024)
>>> ring.push(np.zeros(320, dtype=np.float32))
0
>>> ring.pop_hops(160).shape
(2, 160)
"""

from __future__ import annotations

import dataclasses

from ._native import ring_buffer as _ext
from .config import RingConfig

__all__ = ["RingBuffer", "RingStats", "start_native_producer"]


@dataclasses.dataclass(frozen=True)
class RingStats:
    """A snapshot of a ring's counters.

    Counts are in samples except ``overflow_events``. Each counter is written by one side only,
    so a snapshot taken while audio flows is accurate per field, not atomic across fields. When
    both sides are idle, ``pushed == popped + dropped_samples + cleared + size``.

    Attributes
    ----------
    pushed : int
        Samples handed to ``push()``, including those later dropped.
    popped : int
        Samples returned by ``pop()`` / ``pop_hops()``.
    dropped_samples : int
        Samples lost to overflow (the oldest ones).
    overflow_events : int
        Pushes that had to drop at least one sample.
    high_water : int
        Largest fill seen right after a push, in samples (``<= capacity``).
    size : int
        Samples in the ring when the snapshot was taken.
    capacity : int
        Capacity in samples.
    cleared : int
        Samples discarded by ``clear()``.
    """

    pushed: int
    popped: int
    dropped_samples: int
    overflow_events: int
    high_water: int
    size: int
    capacity: int
    cleared: int = 0


class RingBuffer(_ext.RingBuffer):
    """Lock-free SPSC ring of float32 audio samples that drops the oldest samples on overflow.

    One producer thread (the audio callback) calls :meth:`push`; one consumer thread (the
    perceive loop) calls :meth:`pop`, :meth:`pop_hops` and :meth:`clear`. Any thread may call
    ``len()``, :attr:`capacity` and :meth:`stats`. ``push`` never blocks and never allocates in
    the native core; native code can push without the GIL through :meth:`capsule`.

    Parameters
    ----------
    capacity : int or RingConfig
        Samples the ring holds, a power of two in [2, 2**30] (default 2**16 = 4.1 s at 16 kHz),
        or a :class:`~aim_edge.config.RingConfig`.

    Raises
    ------
    ConfigError
        If the capacity is not a power of two in range; the message names the value.

    Methods
    -------
    push(samples) -> int
        Append samples: a 1-D float32 array in [-1, 1] is copied as is (the fast path); other
        real floating arrays and sequences are converted to float32. Returns the number of
        samples this push dropped (0 when everything fit). A push longer than the capacity keeps
        its last ``capacity`` samples. Raises :class:`~aim_edge.errors.AudioTypeError` for
        integer, bool, complex, string or object input (scale integer PCM to float first) and
        :class:`~aim_edge.errors.AudioInputError` when ``samples`` is not 1-D.
        Sample values are not inspected (NaN passes through).
    pop(n) -> numpy.ndarray
        Remove and return up to ``n`` of the oldest samples as a new 1-D float32 array (shorter
        when fewer are stored, possibly empty). ``n < 0`` raises ``ValueError``.
    pop_hops(hop, max_hops=None) -> numpy.ndarray
        Remove whole hops only and return them as a new ``(k, hop)`` float32 array, ``k`` as
        large as the content allows and at most ``max_hops`` (unbounded when None); ``k`` may be
        0. ``hop <= 0`` or ``max_hops < 0`` raises ``ValueError``.
    clear()
        Discard everything stored (consumer side); counted in ``stats().cleared``.
    capsule() -> PyCapsule
        A capsule named ``"aim_edge::RingBuffer"`` holding the ``aim_edge::RingBuffer*`` for
        native producers; it keeps the native ring alive while it exists.
    """

    __slots__ = ()

    def __init__(self, capacity: int | RingConfig = RingConfig.capacity) -> None:
        config = capacity if isinstance(capacity, RingConfig) else RingConfig(capacity=capacity)
        config.validate()
        super().__init__(config.capacity)

    @property
    def config(self) -> RingConfig:
        """The :class:`~aim_edge.config.RingConfig` this ring was built from."""
        return RingConfig(capacity=self.capacity)

    def stats(self) -> RingStats:  # type: ignore[override]
        """Snapshot of the counters (see :class:`RingStats`)."""
        return RingStats(**super().stats())


def start_native_producer(
    ring: RingBuffer, total_samples: int, block: int, *, backpressure: bool = False
) -> _ext._NativeProducer:
    """Test hook: a native thread pushes the ramp ``0.0, 1.0, ...`` into ``ring`` without the GIL.

    Parameters
    ----------
    ring : RingBuffer
        The ring to push into; the thread co-owns the native ring, so deleting ``ring`` is safe.
    total_samples : int
        Samples to push, at most 2**24 (so every value is an exact float32).
    block : int
        Samples per push.
    backpressure : bool
        Wait while a block does not fit (lossless) instead of letting the ring drop.

    Returns
    -------
    handle
        ``handle.join()`` waits and returns the samples pushed; dropping the handle stops and
        joins the thread.
    """
    return _ext._start_native_producer(ring, total_samples, block, backpressure)
