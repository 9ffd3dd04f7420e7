// Test hook for the Cython binding: a native producer thread that pushes a ramp into a ring
// without ever touching Python (no GIL), the way a real audio callback does.
// Glue only; not part of the public C++ API.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "aim_edge/ring_buffer.h"

namespace aim_edge {
namespace test_hooks {

// Pushes the ramp 0, 1, 2, ... total-1 (sample i has the value float(i); exact below 2^24) in
// blocks of `block` samples. With backpressure the thread yields while a block does not fit
// (lossless); without it, it pushes as fast as it can and the ring drops the oldest samples.
// The thread holds a shared_ptr to the ring, so the ring outlives it whatever Python does.
class RampProducer {
 public:
  static constexpr std::uint64_t kMaxTotal = std::uint64_t{1} << 24;

  // @param ring          the ring to push into (shared ownership).
  // @param total         samples to push, <= 2^24 so every value is an exact float.
  // @param block         samples per push, in [1, ring capacity] when backpressure is on.
  // @param backpressure  wait for room instead of letting the ring drop.
  // @throws std::invalid_argument for out-of-range arguments; std::system_error if no thread.
  RampProducer(std::shared_ptr<RingBuffer> ring, std::uint64_t total, std::size_t block,
               bool backpressure)
      : ring_(std::move(ring)) {
    if (!ring_) throw std::invalid_argument("RampProducer: null ring");
    if (total > kMaxTotal)
      throw std::invalid_argument("RampProducer: total_samples " + std::to_string(total) +
                                  " exceeds 2^24 (values would not be exact floats)");
    if (block == 0 || (backpressure && block > ring_->capacity()))
      throw std::invalid_argument("RampProducer: block " + std::to_string(block) +
                                  " must be in [1, capacity=" +
                                  std::to_string(ring_->capacity()) + "]");
    thread_ = std::thread([this, total, block, backpressure] {
      try {
        run(total, block, backpressure);
      } catch (...) {
        error_ = std::current_exception();
      }
    });
  }

  RampProducer(const RampProducer &) = delete;
  RampProducer &operator=(const RampProducer &) = delete;

  // Stops the thread (a waiting one included) and joins it: it never outlives this object.
  ~RampProducer() {
    stop();
    if (thread_.joinable()) thread_.join();
  }

  // Asks the thread to stop after its current block.
  void stop() noexcept { stop_.store(true, std::memory_order_relaxed); }

  // Waits for the thread; rethrows anything it threw. Idempotent.
  // @return samples pushed.
  std::uint64_t join() {
    if (thread_.joinable()) thread_.join();
    if (error_) {
      std::exception_ptr e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
    return pushed_;
  }

 private:
  void run(std::uint64_t total, std::size_t block, bool backpressure) {
    std::vector<float> buf(block);
    std::uint64_t next = 0;
    while (next < total && !stop_.load(std::memory_order_relaxed)) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(block, total - next));
      for (std::size_t i = 0; i < n; ++i) buf[i] = static_cast<float>(next + i);
      if (backpressure) {
        while (ring_->capacity() - ring_->size() < n) {
          if (stop_.load(std::memory_order_relaxed)) return;
          std::this_thread::yield();
        }
      }
      ring_->push(buf.data(), n);
      next += n;
      pushed_ = next;
    }
  }

  std::shared_ptr<RingBuffer> ring_;
  std::uint64_t pushed_ = 0;  // read by join() only after the thread ended
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;
  std::thread thread_;  // last: started after every other member exists
};

}  // namespace test_hooks
}  // namespace aim_edge
