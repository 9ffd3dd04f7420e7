# cython: language_level=3
"""Cython binding of ``native/include/aim_edge/ring_buffer.h`` (glue only).

Use :class:`aim_edge.ring.RingBuffer`; this private module holds the hot methods it inherits.
Samples are float32 in [-1, 1]; every count is in samples. One producer thread calls ``push``,
one consumer thread calls ``pop`` / ``pop_hops`` / ``clear``; the C++ core is lock-free.

Why the GIL is released only for long copies: dropping and re-taking it costs ~40 ns here,
more than copying a 320-sample block (~20 ns), and it invites a GIL hand-off to another Python
thread in the middle of the perceive loop. push/pop never block, so holding the GIL for a short
copy stalls nobody; native producers (the audio callback, ``capsule()``) never need the GIL.
"""

from cpython.pycapsule cimport PyCapsule_GetContext, PyCapsule_New, PyCapsule_SetContext
from libc.stdint cimport uint64_t
from libcpp cimport bool as cbool
from libcpp.memory cimport make_shared, shared_ptr

cimport numpy as cnp

import numpy as np

from aim_edge.config import RingConfig
from aim_edge.errors import AudioInputError, AudioTypeError, NativeError

cnp.import_array()


cdef extern from "aim_edge/ring_buffer.h" nogil:
    cdef struct CRingStats "aim_edge::RingStats":
        uint64_t pushed
        uint64_t popped
        uint64_t dropped_samples
        uint64_t overflow_events
        uint64_t cleared
        uint64_t high_water
        uint64_t size
        uint64_t capacity

    cdef cppclass CRingBuffer "aim_edge::RingBuffer":
        CRingBuffer(size_t capacity) except +
        size_t push(const float *samples, size_t n) except +
        size_t pop(float *out, size_t max) except +
        size_t pop_hops(float *out, size_t hop, size_t max_hops) except +
        void clear() except +
        size_t size()
        size_t capacity()
        CRingStats stats()


cdef extern from "ring_buffer_test_hooks.h" nogil:
    cdef cppclass CRampProducer "aim_edge::test_hooks::RampProducer":
        CRampProducer(shared_ptr[CRingBuffer] ring, uint64_t total, size_t block,
                      cbool backpressure) except +
        uint64_t join() except +
        void stop()


# The capsule's name: C/C++ code gets the pointer with
# PyCapsule_GetPointer(capsule, "aim_edge::RingBuffer").
cdef const char *CAPSULE_NAME = b"aim_edge::RingBuffer"

cdef object _float32 = np.float32

# Copies of at least this many samples run with the GIL released (64 KiB, a few microseconds).
cdef enum:
    NOGIL_MIN_SAMPLES = 16384


cdef void _release_capsule(object capsule) noexcept:
    cdef shared_ptr[CRingBuffer] *owner = <shared_ptr[CRingBuffer] *>PyCapsule_GetContext(capsule)
    if owner != NULL:
        del owner


cdef cnp.ndarray _as_samples(object samples):
    """Slow path of push(): anything that is not a 1-D C-contiguous native float32 ndarray."""
    arr = np.asarray(samples)
    kind = arr.dtype.kind
    if kind != "f":
        if kind in "iu":
            raise AudioTypeError(
                f"samples have dtype {arr.dtype}: integer PCM is not accepted; scale it to float "
                f"in [-1, 1] first (e.g. x.astype(np.float32) / 32768 for int16)")
        raise AudioTypeError(
            f"samples have dtype {arr.dtype}: expected real floating-point samples "
            f"(float32 or float64) in [-1, 1]")
    if arr.ndim != 1:
        raise AudioInputError(
            f"samples have shape {arr.shape}: expected a 1-D array of mono samples; "
            f"select or mix down a channel first")
    return np.ascontiguousarray(arr, dtype=_float32)


cdef class RingBuffer:
    """Native lock-free SPSC ring of float32 samples; drops the oldest samples on overflow.

    Parameters
    ----------
    capacity : int
        Samples the ring holds, a power of two in [2, 2**30].
    """

    cdef shared_ptr[CRingBuffer] _owner  # shared with capsules and native producer threads
    cdef CRingBuffer *_ring              # _owner.get(), NULL until __init__ ran
    cdef object __weakref__

    def __init__(self, capacity=RingConfig.capacity):
        if self._ring != NULL:
            raise NativeError("RingBuffer.__init__ called twice: the ring may be in use by "
                              "native threads; create a new RingBuffer instead")
        RingConfig(capacity=capacity).validate()  # ConfigError naming the value
        self._owner = make_shared[CRingBuffer](<size_t>capacity)
        self._ring = self._owner.get()

    cdef inline CRingBuffer *_get(self) except NULL:
        if self._ring == NULL:
            raise NativeError("RingBuffer was not initialised (its __init__ did not run)")
        return self._ring

    def push(self, samples):
        """Append samples (producer side); drops the oldest samples when full.

        Returns the number of samples this push dropped (0 when everything fit).
        """
        cdef CRingBuffer *ring = self._get()
        cdef cnp.ndarray arr
        cdef size_t dropped
        if (cnp.PyArray_Check(samples)
                and cnp.PyArray_TYPE(<cnp.ndarray>samples) == cnp.NPY_FLOAT32
                and cnp.PyArray_NDIM(<cnp.ndarray>samples) == 1
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>samples)
                and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>samples)):
            arr = <cnp.ndarray>samples
        else:
            arr = _as_samples(samples)
        cdef const float *data = <const float *>cnp.PyArray_DATA(arr)
        cdef size_t n = <size_t>cnp.PyArray_DIM(arr, 0)
        if n >= NOGIL_MIN_SAMPLES:
            with nogil:
                dropped = ring.push(data, n)
        else:
            dropped = ring.push(data, n)
        return dropped

    def pop(self, Py_ssize_t n):
        """Remove and return up to ``n`` of the oldest samples as a new float32 array."""
        cdef CRingBuffer *ring = self._get()
        if n < 0:
            raise ValueError(f"pop(n): n = {n} is invalid: expected a number of samples >= 0")
        cdef size_t avail = ring.size()
        cdef cnp.npy_intp k = n if <size_t>n < avail else <cnp.npy_intp>avail
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(1, &k, cnp.NPY_FLOAT32, 0)
        if k == 0:
            return out
        cdef float *dst = <float *>cnp.PyArray_DATA(out)
        cdef size_t got
        if k >= NOGIL_MIN_SAMPLES:
            with nogil:
                got = ring.pop(dst, <size_t>k)
        else:
            got = ring.pop(dst, <size_t>k)
        if <cnp.npy_intp>got != k:  # the producer dropped samples while we looked: rare
            return out[:got].copy()
        return out

    def pop_hops(self, Py_ssize_t hop, max_hops=None):
        """Remove whole hops only; return a ``(k, hop)`` float32 array, ``k <= max_hops``."""
        cdef CRingBuffer *ring = self._get()
        if hop <= 0:
            raise ValueError(f"pop_hops: hop = {hop} is invalid: expected samples per hop > 0")
        cdef Py_ssize_t limit
        if max_hops is None:
            limit = <Py_ssize_t>(ring.capacity() // <size_t>hop)
        else:
            limit = max_hops
            if limit < 0:
                raise ValueError(f"pop_hops: max_hops = {max_hops} is invalid: expected >= 0")
        cdef Py_ssize_t ready = <Py_ssize_t>(ring.size() // <size_t>hop)
        cdef cnp.npy_intp dims[2]
        dims[0] = ready if ready < limit else limit
        dims[1] = hop
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, dims, cnp.NPY_FLOAT32, 0)
        if dims[0] == 0:
            return out
        cdef float *dst = <float *>cnp.PyArray_DATA(out)
        cdef size_t got
        if dims[0] * hop >= NOGIL_MIN_SAMPLES:
            with nogil:
                got = ring.pop_hops(dst, <size_t>hop, <size_t>dims[0])
        else:
            got = ring.pop_hops(dst, <size_t>hop, <size_t>dims[0])
        if <cnp.npy_intp>got != dims[0]:  # the producer dropped samples while we looked: rare
            return out[:got].copy()
        return out

    def clear(self):
        """Discard everything in the ring (consumer side); counted in ``stats()["cleared"]``."""
        cdef CRingBuffer *ring = self._get()
        with nogil:
            ring.clear()

    def stats(self):
        """Counters as a dict: pushed, popped, dropped_samples, overflow_events, cleared,
        high_water, size, capacity (all in samples except overflow_events)."""
        cdef CRingStats s = self._get().stats()
        return {
            "pushed": s.pushed,
            "popped": s.popped,
            "dropped_samples": s.dropped_samples,
            "overflow_events": s.overflow_events,
            "cleared": s.cleared,
            "high_water": s.high_water,
            "size": s.size,
            "capacity": s.capacity,
        }

    def __len__(self):
        return self._get().size()

    @property
    def capacity(self):
        """Capacity in samples."""
        return self._get().capacity()

    def capsule(self):
        """A ``PyCapsule`` named ``"aim_edge::RingBuffer"`` holding the ``aim_edge::RingBuffer*``.

        Native code may push through it without the GIL. The capsule co-owns the C++ ring: the
        pointer stays valid while the capsule lives, even after this object is gone.
        """
        cdef CRingBuffer *ring = self._get()
        # The destructor tolerates a NULL context, so the capsule is complete at every step.
        cap = PyCapsule_New(<void *>ring, CAPSULE_NAME, <void (*)(object) noexcept>_release_capsule)
        PyCapsule_SetContext(cap, <void *>new shared_ptr[CRingBuffer](self._owner))
        return cap

    def __repr__(self):
        if self._ring == NULL:
            return f"<{type(self).__name__} (uninitialised)>"
        return (f"<{type(self).__name__} capacity={self._ring.capacity()} "
                f"size={self._ring.size()}>")

    def __reduce__(self):
        raise TypeError(f"{type(self).__name__} cannot be pickled: it is a live native buffer")


cdef class _NativeProducer:
    """Handle of a native thread pushing a ramp; see :func:`_start_native_producer`."""

    cdef CRampProducer *_impl

    def join(self):
        """Wait for the thread to finish; return the number of samples it pushed."""
        if self._impl == NULL:
            raise NativeError("producer handle is not started")
        cdef uint64_t pushed
        with nogil:
            pushed = self._impl.join()
        return pushed

    def stop(self):
        """Ask the thread to stop early (it finishes its current block)."""
        if self._impl != NULL:
            self._impl.stop()

    def __dealloc__(self):
        # The destructor stops a waiting thread and joins it: the thread never outlives us.
        cdef CRampProducer *impl = self._impl
        self._impl = NULL
        if impl != NULL:
            with nogil:
                del impl


def _start_native_producer(RingBuffer ring not None, total_samples, block, backpressure=False):
    """Test hook: start a C++ thread that pushes ``0.0, 1.0, ..., total_samples - 1`` into
    ``ring`` in blocks of ``block`` samples, never holding the GIL.

    With ``backpressure`` the thread waits while a block does not fit (lossless); without it,
    it pushes flat out and the ring drops the oldest samples. ``total_samples <= 2**24``.
    Returns a handle with ``join()``; dropping the handle stops and joins the thread.
    """
    ring._get()
    if total_samples < 0 or block <= 0:
        raise ValueError(f"_start_native_producer: total_samples = {total_samples} and "
                         f"block = {block} must be >= 0 and > 0")
    handle = _NativeProducer()
    handle._impl = new CRampProducer(ring._owner, <uint64_t>total_samples, <size_t>block,
                                     <cbool>bool(backpressure))
    return handle
