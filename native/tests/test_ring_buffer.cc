// SPSC ring buffer: wrap-around, exact overflow accounting, and two real threads.
#include "aim_edge/ring_buffer.h"

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../bindings/ring_buffer_test_hooks.h"  // the Python test hook, checked natively too
#include "check.h"

using aim_edge::RingBuffer;

namespace {

std::vector<float> ramp(float start, std::size_t n) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

}  // namespace

TEST(ring_starts_empty) {
  RingBuffer ring(8);
  CHECK_EQ(ring.capacity(), std::size_t{8});
  CHECK_EQ(ring.size(), std::size_t{0});
  float out[8];
  CHECK_EQ(ring.pop(out, 8), std::size_t{0});
  const auto s = ring.stats();
  CHECK_EQ(s.pushed + s.popped + s.dropped_samples + s.overflow_events + s.high_water,
           std::uint64_t{0});
  CHECK_EQ(s.capacity, std::uint64_t{8});
}

TEST(ring_wraps_around_in_order) {
  RingBuffer ring(8);
  float next_in = 0.0f, next_out = 0.0f;
  // Odd sizes so that pushes and pops straddle the end of the storage many times.
  for (int round = 0; round < 100; ++round) {
    const std::size_t n = 1 + static_cast<std::size_t>(round % 5);  // 1..5, always fits
    const auto block = ramp(next_in, n);
    CHECK_EQ(ring.push(block.data(), n), std::size_t{0});
    next_in += static_cast<float>(n);
    float out[8];
    const std::size_t got = ring.pop(out, 3);
    for (std::size_t i = 0; i < got; ++i) CHECK_EQ(out[i], next_out++);
    CHECK(ring.size() <= ring.capacity());
  }
  float out[8];
  std::size_t got;
  while ((got = ring.pop(out, 8)) > 0)
    for (std::size_t i = 0; i < got; ++i) CHECK_EQ(out[i], next_out++);
  CHECK_EQ(next_out, next_in);
  const auto s = ring.stats();
  CHECK_EQ(s.pushed, s.popped);
  CHECK_EQ(s.dropped_samples, std::uint64_t{0});
  CHECK_EQ(s.overflow_events, std::uint64_t{0});
}

TEST(ring_overflow_drops_oldest_and_counts_exactly) {
  RingBuffer ring(8);
  const auto a = ramp(0, 6);
  CHECK_EQ(ring.push(a.data(), 6), std::size_t{0});  // fill 6
  const auto b = ramp(6, 5);
  CHECK_EQ(ring.push(b.data(), 5), std::size_t{3});  // 11 > 8: drop 0, 1, 2
  CHECK_EQ(ring.size(), std::size_t{8});
  const auto c = ramp(11, 2);
  CHECK_EQ(ring.push(c.data(), 2), std::size_t{2});  // drop 3, 4
  auto s = ring.stats();
  CHECK_EQ(s.pushed, std::uint64_t{13});
  CHECK_EQ(s.dropped_samples, std::uint64_t{5});
  CHECK_EQ(s.overflow_events, std::uint64_t{2});
  CHECK_EQ(s.high_water, std::uint64_t{8});
  float out[8];
  CHECK_EQ(ring.pop(out, 8), std::size_t{8});
  for (int i = 0; i < 8; ++i) CHECK_EQ(out[i], static_cast<float>(5 + i));
  const auto d = ramp(13, 3);
  CHECK_EQ(ring.push(d.data(), 3), std::size_t{0});
  s = ring.stats();
  CHECK_EQ(s.overflow_events, std::uint64_t{2});
  CHECK_EQ(s.popped, std::uint64_t{8});
  CHECK_EQ(s.pushed, s.popped + s.dropped_samples + s.size);
}

TEST(ring_high_water_tracks_max_fill) {
  RingBuffer ring(16);
  const auto a = ramp(0, 5);
  ring.push(a.data(), 5);
  float out[16];
  ring.pop(out, 4);
  ring.push(a.data(), 3);
  CHECK_EQ(ring.stats().high_water, std::uint64_t{5});
  ring.push(a.data(), 5);
  CHECK_EQ(ring.stats().high_water, std::uint64_t{9});
}

TEST(ring_push_larger_than_capacity_keeps_the_last_samples) {
  RingBuffer ring(8);
  const auto a = ramp(100, 3);
  ring.push(a.data(), 3);
  const auto big = ramp(0, 21);
  CHECK_EQ(ring.push(big.data(), 21), std::size_t{13 + 3});  // 13 never fit, 3 were in the ring
  CHECK_EQ(ring.size(), std::size_t{8});
  float out[8];
  CHECK_EQ(ring.pop(out, 8), std::size_t{8});
  for (int i = 0; i < 8; ++i) CHECK_EQ(out[i], static_cast<float>(13 + i));
  const auto s = ring.stats();
  CHECK_EQ(s.pushed, std::uint64_t{24});
  CHECK_EQ(s.dropped_samples, std::uint64_t{16});
  CHECK_EQ(s.overflow_events, std::uint64_t{1});
  CHECK_EQ(s.high_water, std::uint64_t{8});
}

TEST(ring_push_of_exactly_capacity_into_empty_ring_drops_nothing) {
  RingBuffer ring(8);
  const auto a = ramp(0, 8);
  CHECK_EQ(ring.push(a.data(), 8), std::size_t{0});
  CHECK_EQ(ring.stats().overflow_events, std::uint64_t{0});
  CHECK_EQ(ring.size(), std::size_t{8});
}

TEST(ring_pop_hops_takes_whole_hops_only) {
  RingBuffer ring(32);
  const auto a = ramp(0, 23);
  ring.push(a.data(), 23);
  float out[32];
  CHECK_EQ(ring.pop_hops(out, 5, 10), std::size_t{4});  // 20 of 23
  for (int i = 0; i < 20; ++i) CHECK_EQ(out[i], static_cast<float>(i));
  CHECK_EQ(ring.size(), std::size_t{3});
  CHECK_EQ(ring.pop_hops(out, 5, 10), std::size_t{0});
  CHECK_EQ(ring.size(), std::size_t{3});
  ring.push(a.data(), 10);
  CHECK_EQ(ring.pop_hops(out, 4, 2), std::size_t{2});  // limited by max_hops
  CHECK_EQ(out[0], 20.0f);
  CHECK_EQ(ring.size(), std::size_t{5});
  CHECK_THROWS(ring.pop_hops(out, 0, 1), std::invalid_argument);
  CHECK_THROWS(ring.pop_hops(out, SIZE_MAX / 2, 3), std::invalid_argument);
}

TEST(ring_clear_discards_and_counts) {
  RingBuffer ring(8);
  const auto a = ramp(0, 6);
  ring.push(a.data(), 6);
  ring.clear();
  CHECK_EQ(ring.size(), std::size_t{0});
  float out[8];
  CHECK_EQ(ring.pop(out, 8), std::size_t{0});
  const auto b = ramp(50, 2);
  ring.push(b.data(), 2);
  CHECK_EQ(ring.pop(out, 8), std::size_t{2});
  CHECK_EQ(out[0], 50.0f);
  const auto s = ring.stats();
  CHECK_EQ(s.cleared, std::uint64_t{6});
  CHECK_EQ(s.pushed, s.popped + s.dropped_samples + s.cleared + s.size);
  ring.clear();  // empty: a no-op
  CHECK_EQ(ring.stats().cleared, std::uint64_t{6});
}

TEST(ring_bad_capacity_throws_naming_the_value) {
  for (std::size_t bad : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000},
                          (std::size_t{1} << 31)}) {
    bool thrown = false;
    try {
      RingBuffer ring(bad);
    } catch (const std::invalid_argument &e) {
      thrown = true;
      CHECK(std::string(e.what()).find(std::to_string(bad)) != std::string::npos);
    }
    CHECK(thrown);
  }
  RingBuffer ok(2);
  CHECK_EQ(ok.capacity(), std::size_t{2});
}

TEST(ring_null_pointers_throw) {
  RingBuffer ring(8);
  CHECK_THROWS(ring.push(nullptr, 3), std::invalid_argument);
  CHECK_EQ(ring.push(nullptr, 0), std::size_t{0});
  const auto a = ramp(0, 3);
  ring.push(a.data(), 3);
  CHECK_THROWS(ring.pop(nullptr, 3), std::invalid_argument);
  CHECK_EQ(ring.size(), std::size_t{3});
}

namespace {
constexpr std::uint64_t kThreadSamples = 10'000'000;  // < 2^24: every value is an exact float
}

TEST(ring_two_threads_lossless_with_backpressure) {
  RingBuffer ring(1 << 12);
  std::thread producer([&] {
    std::vector<float> block(333);
    std::uint64_t next = 0;
    while (next < kThreadSamples) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), kThreadSamples - next));
      for (std::size_t i = 0; i < n; ++i) block[i] = static_cast<float>(next + i);
      while (ring.capacity() - ring.size() < n) std::this_thread::yield();  // spin when full
      ring.push(block.data(), n);
      next += n;
    }
  });
  std::vector<float> out(1000);
  std::uint64_t expected = 0;
  bool in_order = true;
  while (expected < kThreadSamples) {
    const std::size_t got = ring.pop(out.data(), 1 + expected % out.size());
    if (got == 0) {
      std::this_thread::yield();
      continue;
    }
    for (std::size_t i = 0; i < got; ++i) in_order &= out[i] == static_cast<float>(expected + i);
    expected += got;
  }
  producer.join();
  CHECK(in_order);
  CHECK_EQ(expected, kThreadSamples);
  const auto s = ring.stats();
  CHECK_EQ(s.pushed, kThreadSamples);
  CHECK_EQ(s.popped, kThreadSamples);
  CHECK_EQ(s.dropped_samples, std::uint64_t{0});
  CHECK_EQ(s.overflow_events, std::uint64_t{0});
  CHECK(s.high_water <= s.capacity);
}

TEST(ring_two_threads_lossy_drops_oldest_and_accounts_for_every_sample) {
  RingBuffer ring(1 << 10);
  std::thread producer([&] {
    std::vector<float> block(256);
    std::uint64_t next = 0;
    while (next < kThreadSamples) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), kThreadSamples - next));
      for (std::size_t i = 0; i < n; ++i) block[i] = static_cast<float>(next + i);
      ring.push(block.data(), n);  // never waits: the ring drops when the consumer lags
      next += n;
    }
  });
  std::vector<float> out(700);
  double last = -1.0;
  bool increasing = true;
  std::uint64_t popped = 0;
  auto drain_once = [&] {
    const std::size_t got = ring.pop(out.data(), out.size());
    for (std::size_t i = 0; i < got; ++i) {
      increasing &= out[i] > last;  // strictly increasing: never a stale or torn sample
      last = out[i];
    }
    popped += got;
    return got;
  };
  while (ring.stats().pushed < kThreadSamples) {
    if (drain_once() == 0) std::this_thread::yield();
  }
  producer.join();  // now every push happened-before us
  while (drain_once() > 0) {
  }
  CHECK(increasing);
  const auto s = ring.stats();
  CHECK_EQ(s.pushed, kThreadSamples);
  CHECK_EQ(s.popped, popped);
  CHECK_EQ(s.size, std::uint64_t{0});
  CHECK_EQ(s.popped + s.dropped_samples, kThreadSamples);
  CHECK_EQ(last, static_cast<double>(kThreadSamples - 1));  // the newest sample always survives
  CHECK(s.dropped_samples == 0 || s.overflow_events > 0);
}

TEST(ramp_producer_hook_is_lossless_with_backpressure) {
  auto ring = std::make_shared<RingBuffer>(1 << 10);
  aim_edge::test_hooks::RampProducer producer(ring, 1'000'000, 320, true);
  std::vector<float> out(512);
  std::uint64_t expected = 0;
  bool in_order = true;
  while (expected < 1'000'000) {
    const std::size_t got = ring->pop(out.data(), out.size());
    for (std::size_t i = 0; i < got; ++i) in_order &= out[i] == static_cast<float>(expected + i);
    expected += got;
    if (got == 0) std::this_thread::yield();
  }
  CHECK_EQ(producer.join(), std::uint64_t{1'000'000});
  CHECK(in_order);
  CHECK_EQ(ring->stats().dropped_samples, std::uint64_t{0});
}

TEST(ramp_producer_hook_destructor_stops_a_waiting_thread) {
  auto ring = std::make_shared<RingBuffer>(1 << 8);
  {
    aim_edge::test_hooks::RampProducer producer(ring, 1 << 20, 64, true);
    while (ring->size() < ring->capacity()) std::this_thread::yield();
  }  // nobody consumes: only stop() in the destructor lets the join finish
  CHECK_EQ(ring->stats().pushed, std::uint64_t{1 << 8});
}

TEST(ramp_producer_hook_rejects_bad_arguments) {
  auto ring = std::make_shared<RingBuffer>(1 << 8);
  using aim_edge::test_hooks::RampProducer;
  CHECK_THROWS(RampProducer(ring, (std::uint64_t{1} << 24) + 1, 64, false), std::invalid_argument);
  CHECK_THROWS(RampProducer(ring, 100, 0, false), std::invalid_argument);
  CHECK_THROWS(RampProducer(ring, 100, 512, true), std::invalid_argument);
  CHECK_THROWS(RampProducer(nullptr, 100, 64, false), std::invalid_argument);
}
