// Lock-free single-producer / single-consumer ring of float32 audio samples.
//
// The audio callback (producer) pushes; the perceive thread (consumer) pops. Overflow policy:
// the OLDEST samples are dropped, counted, and the counts surface through stats(). push() never
// blocks and never allocates, so it is safe inside a real-time audio callback.
//
// C++17, header only, no Python headers.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace aim_edge {

// A snapshot of a ring's counters. All counts are in samples except overflow_events.
// Each field is written by one side only (see RingBuffer), so a snapshot taken while both sides
// run is a consistent-enough view for monitoring, not an atomic one.
struct RingStats {
  std::uint64_t pushed;           // samples handed to push(), including those dropped
  std::uint64_t popped;           // samples returned by pop() / pop_hops()
  std::uint64_t dropped_samples;  // samples lost to overflow (oldest first)
  std::uint64_t overflow_events;  // pushes that had to drop at least one sample
  std::uint64_t cleared;          // samples discarded by clear()
  std::uint64_t high_water;       // largest fill seen right after a push, <= capacity
  std::uint64_t size;             // current fill
  std::uint64_t capacity;         // capacity in samples
};
// When both sides are idle: pushed == popped + dropped_samples + cleared + size.

class RingBuffer {
 public:
  static constexpr std::size_t kMinCapacity = 2;
  static constexpr std::size_t kMaxCapacity = std::size_t{1} << 30;

  // @param capacity  samples the ring holds; a power of two in [2, 2^30].
  // @throws std::invalid_argument naming the value otherwise.
  explicit RingBuffer(std::size_t capacity)
      : capacity_(checked_capacity(capacity)), mask_(capacity - 1), data_(new float[capacity]()) {}

  RingBuffer(const RingBuffer &) = delete;
  RingBuffer &operator=(const RingBuffer &) = delete;

  // Producer side. Appends n samples; never blocks, never allocates.
  // When they do not fit, the oldest samples in the ring are dropped first; a push longer than
  // the capacity keeps only its last capacity() samples.
  // @param samples  n float32 samples (nominally in [-1, 1]; values are not inspected).
  // @param n        number of samples; 0 is a no-op.
  // @return number of samples dropped by this push (0 when everything fit).
  // @throws std::invalid_argument when samples is null and n > 0 (a caller bug).
  std::size_t push(const float *samples, std::size_t n) {
    if (n == 0) return 0;
    if (samples == nullptr) throw std::invalid_argument("RingBuffer::push: null samples with n > 0");
    const std::uint64_t offered = n;
    const std::uint64_t w = write_.load(std::memory_order_relaxed);  // only we write it
    std::uint64_t dropped = 0;
    if (n > capacity_) {  // only the newest capacity_ samples can survive
      dropped = n - capacity_;
      samples += dropped;
      n = capacity_;
    }
    const std::uint64_t w_end = w + n;
    std::uint64_t r = read_.load(std::memory_order_acquire);
    if (w_end - r > capacity_) {
      // Not enough room: move the read index to w_end - capacity_, dropping the oldest samples.
      // Why a CAS: the consumer may be popping concurrently. Exactly one of us wins each
      // transition of read_, so every sample is either popped or counted as dropped, never both.
      const std::uint64_t new_r = w_end - capacity_;
      while (r < new_r) {
        if (read_.compare_exchange_weak(r, new_r, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
          dropped += new_r - r;
          break;
        }
        // r now holds the consumer's newer index; it may have freed enough room by itself.
      }
    }
    // Why overwriting is safe: the slots [w, w_end) are either free (read_ already passed them)
    // or were freed by our successful CAS above. A consumer that copied those slots before our
    // CAS will find read_ changed and its own CAS (in pop) fails, so it discards the torn copy
    // and retries: a seqlock in which read_ is the sequence. The acquire on our CAS keeps our
    // writes after it; the release on the consumer's CAS keeps its reads before it.
    // (Formally the discarded copy races with these writes, as in every seqlock; it is never
    // used. ThreadSanitizer would report it.)
    const std::size_t start = static_cast<std::size_t>(w) & mask_;
    const std::size_t first = std::min(n, capacity_ - start);
    std::memcpy(data_.get() + start, samples, first * sizeof(float));
    std::memcpy(data_.get(), samples + first, (n - first) * sizeof(float));
    write_.store(w_end, std::memory_order_release);

    bump(pushed_, offered);
    if (dropped > 0) {
      bump(dropped_, dropped);
      bump(overflow_events_, 1);
    }
    const std::uint64_t fill = std::min<std::uint64_t>(
        w_end - read_.load(std::memory_order_relaxed), capacity_);
    if (fill > high_water_.load(std::memory_order_relaxed))
      high_water_.store(fill, std::memory_order_relaxed);
    return static_cast<std::size_t>(dropped);
  }

  // Consumer side. Moves up to max of the oldest samples into out.
  // @param out  room for max samples.
  // @param max  most samples to take.
  // @return samples written to out (0 when empty or max == 0).
  std::size_t pop(float *out, std::size_t max) { return pop_multiple(out, max, 1); }

  // Consumer side. Moves whole hops only: k * hop samples with k <= max_hops, k as large as the
  // ring's content allows. The k hops are taken atomically (never a partial hop).
  // @param out       room for hop * max_hops samples.
  // @param hop       samples per hop, > 0.
  // @param max_hops  most hops to take.
  // @return k, the number of hops written to out.
  // @throws std::invalid_argument when hop == 0 or hop * max_hops overflows.
  std::size_t pop_hops(float *out, std::size_t hop, std::size_t max_hops) {
    if (hop == 0) throw std::invalid_argument("RingBuffer::pop_hops: hop must be > 0, got 0");
    if (max_hops > SIZE_MAX / hop)
      throw std::invalid_argument("RingBuffer::pop_hops: hop * max_hops overflows (hop=" +
                                  std::to_string(hop) + ", max_hops=" +
                                  std::to_string(max_hops) + ")");
    return pop_multiple(out, hop * max_hops, hop) / hop;
  }

  // Consumer side. Discards everything currently in the ring (counted in stats().cleared).
  void clear() {
    std::uint64_t r = read_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t w = write_.load(std::memory_order_acquire);
      if (r >= w) return;
      if (read_.compare_exchange_weak(r, w, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        bump(cleared_, w - r);
        return;
      }
    }
  }

  // Samples currently stored; callable from any thread (a momentary value).
  std::size_t size() const noexcept {
    const std::uint64_t r = read_.load(std::memory_order_acquire);  // r first: w only grows
    const std::uint64_t w = write_.load(std::memory_order_acquire);
    return static_cast<std::size_t>(std::min<std::uint64_t>(w - r, capacity_));
  }

  // Capacity in samples (a power of two).
  std::size_t capacity() const noexcept { return capacity_; }

  // Snapshot of the counters; callable from any thread.
  RingStats stats() const noexcept {
    RingStats s;
    s.pushed = pushed_.load(std::memory_order_relaxed);
    s.popped = popped_.load(std::memory_order_relaxed);
    s.dropped_samples = dropped_.load(std::memory_order_relaxed);
    s.overflow_events = overflow_events_.load(std::memory_order_relaxed);
    s.cleared = cleared_.load(std::memory_order_relaxed);
    s.high_water = high_water_.load(std::memory_order_relaxed);
    s.size = size();
    s.capacity = capacity_;
    return s;
  }

 private:
  static std::size_t checked_capacity(std::size_t c) {
    if (c < kMinCapacity || c > kMaxCapacity || (c & (c - 1)) != 0)
      throw std::invalid_argument("RingBuffer capacity " + std::to_string(c) +
                                  " is invalid: expected a power of two in [2, 2^30] samples");
    return c;
  }

  // Counters are each written by one side only, so a plain load + store suffices (no RMW).
  static void bump(std::atomic<std::uint64_t> &counter, std::uint64_t by) noexcept {
    counter.store(counter.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
  }

  // Pops the largest multiple of `multiple` that is <= max and available.
  std::size_t pop_multiple(float *out, std::size_t max, std::size_t multiple) {
    if (max < multiple) return 0;
    if (out == nullptr) throw std::invalid_argument("RingBuffer::pop: null output with max > 0");
    std::uint64_t r = read_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint64_t w = write_.load(std::memory_order_acquire);
      // r may be stale only in the direction of being too small; then w - r can exceed the
      // capacity for a moment (the producer dropped), and our CAS below fails anyway.
      std::uint64_t avail = std::min<std::uint64_t>(w - r, capacity_);
      std::uint64_t k = std::min<std::uint64_t>(avail, max);
      k -= k % multiple;
      if (k == 0) return 0;
      const std::size_t start = static_cast<std::size_t>(r) & mask_;
      const std::size_t first = std::min<std::size_t>(k, capacity_ - start);
      std::memcpy(out, data_.get() + start, first * sizeof(float));
      std::memcpy(out + first, data_.get(), (k - first) * sizeof(float));
      // Commit: succeeds only if the producer did not drop (move read_) while we copied.
      // Release keeps the copies above before the commit (see push()).
      if (read_.compare_exchange_strong(r, r + k, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
        bump(popped_, k);
        return static_cast<std::size_t>(k);
      }
      // Failed: r now holds the producer's new read index; the copy may be torn, redo it.
    }
  }

  const std::size_t capacity_;
  const std::size_t mask_;
  const std::unique_ptr<float[]> data_;

  // Indices are monotonic sample counts (64 bits never wrap at audio rates); slot = index & mask.
  // write_: producer only. read_: consumer (pop/clear commits) and producer (overflow drops).
  alignas(64) std::atomic<std::uint64_t> write_{0};
  // Producer-written counters, on the producer's line.
  std::atomic<std::uint64_t> pushed_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> overflow_events_{0};
  std::atomic<std::uint64_t> high_water_{0};
  alignas(64) std::atomic<std::uint64_t> read_{0};
  // Consumer-written counters.
  alignas(64) std::atomic<std::uint64_t> popped_{0};
  std::atomic<std::uint64_t> cleared_{0};
};

}  // namespace aim_edge
