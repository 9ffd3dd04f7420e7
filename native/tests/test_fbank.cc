// OnlineFbank: chunking independence (bit-exact), Kaldi frame counts, errors, reset, int16.
// Numerical agreement with kaldi-native-fbank is tested from Python (tests/test_fbank.py).
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "aim_edge/fbank.h"
#include "check.h"

using aim_edge::FbankOptions;
using aim_edge::OnlineFbank;

namespace {

std::vector<float> test_signal(int64_t n, unsigned seed = 7) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> noise(0.0f, 0.05f);
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    x[static_cast<size_t>(i)] =
        0.3f * static_cast<float>(std::sin(2.0 * 3.14159265358979 * 440.0 * i / 16000.0)) +
        noise(gen);
  }
  return x;
}

// Feeds `x` in chunks of `chunk` samples, popping after every chunk (pop_every > 0: at most
// that many frames a pop), then input_finished() and pops the rest.
std::vector<float> run_stream(const FbankOptions &opts, const std::vector<float> &x, int64_t chunk,
                              int64_t pop_every = -1) {
  OnlineFbank fb(opts);
  std::vector<float> out, tmp;
  int64_t expected_index = 0;
  auto drain = [&](int64_t limit) {
    const int64_t want = limit < 0 ? fb.num_frames_ready() : limit;
    tmp.resize(static_cast<size_t>(want) * opts.n_mels + 1);
    CHECK_EQ(fb.first_frame_index(), expected_index);
    const int64_t k = fb.pop_frames(want, tmp.data());
    expected_index += k;
    out.insert(out.end(), tmp.begin(), tmp.begin() + k * opts.n_mels);
  };
  const int64_t n = static_cast<int64_t>(x.size());
  for (int64_t off = 0; off < n; off += chunk) {
    fb.accept_waveform(x.data() + off, std::min(chunk, n - off));
    drain(pop_every);
  }
  fb.input_finished();
  drain(-1);
  CHECK_EQ(fb.num_frames_ready(), int64_t{0});
  return out;
}

int64_t kaldi_num_frames(int64_t n, int64_t length, int64_t shift, bool snip) {
  if (snip) return n < length ? 0 : 1 + (n - length) / shift;
  return (n + shift / 2) / shift;
}

bool bit_equal(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

bool message_contains(const std::exception &e, const std::string &s) {
  return std::string(e.what()).find(s) != std::string::npos;
}

}  // namespace

TEST(fbank_streaming_equals_one_shot_bit_exact) {
  const auto x = test_signal(16000 * 2 + 123);
  for (bool snip : {true, false}) {
    for (double dither : {0.0, 1e-3}) {
      FbankOptions opts;
      opts.snip_edges = snip;
      opts.dither = dither;
      opts.dither_seed = 42;
      const auto ref = run_stream(opts, x, static_cast<int64_t>(x.size()));
      CHECK_EQ(ref.size(), static_cast<size_t>(kaldi_num_frames(x.size(), 400, 160, snip) * 80));
      for (int64_t chunk : {1, 17, 160, 509, 1281, 8193}) {
        if (!bit_equal(run_stream(opts, x, chunk), ref)) {
          throw aim_edge_test::CheckFailure("chunk " + std::to_string(chunk) + " snip " +
                                            std::to_string(snip) + " dither " +
                                            std::to_string(dither) + " differs from one-shot");
        }
      }
      CHECK(bit_equal(run_stream(opts, x, 320, 1), ref));  // pop one frame at a time
    }
  }
}

TEST(fbank_frame_counts_match_kaldi_around_boundaries) {
  const auto x = test_signal(3000);
  for (bool snip : {true, false}) {
    FbankOptions opts;
    opts.snip_edges = snip;
    std::vector<int64_t> lengths;
    for (int64_t n = 0; n <= 20; ++n) lengths.push_back(n);
    for (int64_t base : {79, 80, 240, 280, 400, 440, 560, 600, 720, 2000}) {
      for (int64_t d = -2; d <= 2; ++d) lengths.push_back(base + d);
    }
    for (int64_t n : lengths) {
      OnlineFbank fb(opts);
      fb.accept_waveform(x.data(), n);
      // Without the end of the stream, non-snipped frames must end within the samples:
      // frame f covers [160 f + 80 - 200, 160 f + 280).
      const int64_t before = snip ? kaldi_num_frames(n, 400, 160, true)
                                  : (n < 280 ? 0 : (n - 280) / 160 + 1);
      CHECK_EQ(fb.num_frames_ready(), before);
      CHECK_EQ(aim_edge::num_frames(n, opts, false), before);
      fb.input_finished();
      CHECK_EQ(fb.num_frames_ready(), kaldi_num_frames(n, 400, 160, snip));
      CHECK_EQ(aim_edge::num_frames(n, opts, true), kaldi_num_frames(n, 400, 160, snip));
    }
  }
}

TEST(fbank_every_short_length_and_odd_geometry_streams_exactly) {
  // Exercises the reflection and sample-release logic: every length up to 700 samples, chunk 1
  // vs one shot, for the default geometry and for odd windows / hops.
  const auto x = test_signal(700, 3);
  struct Geometry {
    double length_ms, shift_ms;
  };
  for (const Geometry g : {Geometry{25, 10}, Geometry{25, 25}, Geometry{25, 7}, Geometry{3, 1},
                           Geometry{10.0625, 3.0625}}) {
    for (bool snip : {true, false}) {
      FbankOptions opts;
      opts.frame_length_ms = g.length_ms;
      opts.frame_shift_ms = g.shift_ms;
      opts.snip_edges = snip;
      opts.n_mels = 8;
      for (int64_t n = 1; n <= 700; n += (n < 60 ? 1 : 13)) {
        const std::vector<float> part(x.begin(), x.begin() + n);
        const auto ref = run_stream(opts, part, n);
        CHECK_EQ(static_cast<int64_t>(ref.size()),
                 kaldi_num_frames(n, opts.frame_length(), opts.frame_shift(), snip) * 8);
        CHECK(bit_equal(run_stream(opts, part, 1), ref));
        CHECK(bit_equal(run_stream(opts, part, 37, 2), ref));
      }
    }
  }
}

TEST(fbank_buffer_stays_bounded) {
  const auto x = test_signal(16000 * 10);
  FbankOptions opts;
  OnlineFbank fb(opts);
  std::vector<float> out(80 * 8);
  for (size_t off = 0; off < x.size(); off += 320) {
    fb.accept_waveform(x.data() + off, 320);
    CHECK(fb.num_samples_buffered() <= 400 + 320);
    fb.pop_frames(8, out.data());
  }
  CHECK_EQ(fb.num_samples_accepted(), static_cast<int64_t>(x.size()));
  CHECK_EQ(fb.first_frame_index(), kaldi_num_frames(x.size(), 400, 160, true));
}

TEST(fbank_bad_options_throw_invalid_argument_naming_the_field) {
  struct Case {
    const char *field;
    void (*mutate)(FbankOptions &);
  };
  const Case cases[] = {
      {"sample_rate", [](FbankOptions &o) { o.sample_rate = 0; }},
      {"sample_rate", [](FbankOptions &o) { o.sample_rate = 500000; }},
      {"n_mels", [](FbankOptions &o) { o.n_mels = 0; }},
      {"n_mels", [](FbankOptions &o) { o.n_mels = 513; }},
      {"frame_length_ms", [](FbankOptions &o) { o.frame_length_ms = 0; }},
      {"frame_length_ms", [](FbankOptions &o) { o.frame_length_ms = std::nan(""); }},
      {"frame_length_ms", [](FbankOptions &o) { o.frame_length_ms = 1e12; }},
      {"frame_shift_ms", [](FbankOptions &o) { o.frame_shift_ms = -1; }},
      {"frame_shift_ms", [](FbankOptions &o) { o.frame_shift_ms = 30; }},
      {"frame_length_ms", [](FbankOptions &o) { o.frame_shift_ms = 0.01; }},
      {"dither", [](FbankOptions &o) { o.dither = -1; }},
      {"dither", [](FbankOptions &o) { o.dither = INFINITY; }},
      {"preemph_coeff", [](FbankOptions &o) { o.preemph_coeff = 1.5; }},
      {"low_freq", [](FbankOptions &o) { o.low_freq = 9000; }},
      {"low_freq", [](FbankOptions &o) { o.low_freq = -1; }},
      {"high_freq", [](FbankOptions &o) { o.high_freq = 9000; }},
      {"high_freq", [](FbankOptions &o) { o.high_freq = -8000; }},
      {"high_freq", [](FbankOptions &o) { o.high_freq = NAN; }},
      {"log_floor", [](FbankOptions &o) { o.log_floor = 0; }},
      // Kaldi's "empty mel bin" error: too many bins for the FFT resolution.
      {"n_mels", [](FbankOptions &o) { o.n_mels = 200; }},
  };
  for (const Case &c : cases) {
    FbankOptions opts;
    c.mutate(opts);
    bool thrown = false;
    try {
      OnlineFbank fb(opts);
    } catch (const std::invalid_argument &e) {
      thrown = true;
      if (!message_contains(e, std::string("fbank.") + c.field)) {
        throw aim_edge_test::CheckFailure(std::string("message does not name ") + c.field +
                                          ": " + e.what());
      }
    }
    if (!thrown) throw aim_edge_test::CheckFailure(std::string("no throw for ") + c.field);
  }
}

TEST(fbank_nan_input_throws_with_absolute_index_and_accepts_nothing) {
  auto x = test_signal(2000);
  FbankOptions opts;
  OnlineFbank fb(opts);
  fb.accept_waveform(x.data(), 1000);
  const auto frames_before = fb.num_frames_ready();
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY}) {
    std::vector<float> chunk(x.begin() + 1000, x.end());
    chunk[123] = bad;
    chunk[500] = bad;  // only the first bad index is reported
    bool thrown = false;
    try {
      fb.accept_waveform(chunk.data(), static_cast<int64_t>(chunk.size()));
    } catch (const aim_edge::InvalidInput &e) {
      thrown = true;
      CHECK(message_contains(e, "sample 1123 "));
      CHECK(message_contains(e, "index 123 "));
      CHECK(message_contains(e, std::isnan(bad) ? "nan" : (bad > 0 ? "inf" : "-inf")));
    }
    CHECK(thrown);
    CHECK_EQ(fb.num_samples_accepted(), int64_t{1000});
    CHECK_EQ(fb.num_frames_ready(), frames_before);
  }
  // InvalidInput is a std::invalid_argument for C++ callers.
  CHECK_THROWS(fb.accept_waveform(&std::vector<float>{NAN}[0], 1), std::invalid_argument);
  // The stream continues as if the bad calls never happened.
  fb.accept_waveform(x.data() + 1000, 1000);
  fb.input_finished();
  std::vector<float> got(static_cast<size_t>(fb.num_frames_ready()) * 80);
  fb.pop_frames(fb.num_frames_ready(), got.data());
  CHECK(bit_equal(got, run_stream(opts, x, 2000)));
}

TEST(fbank_input_after_finish_throws_and_reset_restarts) {
  const auto x = test_signal(5000);
  FbankOptions opts;
  opts.dither = 1e-4;
  opts.dither_seed = 9;
  opts.snip_edges = false;
  OnlineFbank fb(opts);
  fb.accept_waveform(x.data(), 5000);
  fb.input_finished();
  fb.input_finished();  // idempotent
  CHECK_THROWS(fb.accept_waveform(x.data(), 10), aim_edge::InvalidInput);
  fb.accept_waveform(x.data(), 0);  // empty input stays a no-op
  std::vector<float> first(static_cast<size_t>(fb.num_frames_ready()) * 80);
  fb.pop_frames(fb.num_frames_ready(), first.data());
  CHECK(fb.first_frame_index() > 0);
  fb.reset();
  CHECK_EQ(fb.first_frame_index(), int64_t{0});
  CHECK_EQ(fb.num_frames_ready(), int64_t{0});
  CHECK_EQ(fb.num_samples_accepted(), int64_t{0});
  CHECK(!fb.is_finished());
  fb.accept_waveform(x.data(), 5000);
  fb.input_finished();
  std::vector<float> second(first.size());
  CHECK_EQ(fb.pop_frames(1000000, second.data()), static_cast<int64_t>(first.size() / 80));
  CHECK(bit_equal(first, second));  // same audio, same seed: same frames, dither included
}

TEST(fbank_int16_equals_scaled_float) {
  std::mt19937 gen(5);
  std::uniform_int_distribution<int> dist(-32768, 32767);
  std::vector<int16_t> pcm(7000);
  for (auto &v : pcm) v = static_cast<int16_t>(dist(gen));
  pcm[10] = -32768;
  pcm[11] = 32767;
  std::vector<float> scaled(pcm.size());
  for (size_t i = 0; i < pcm.size(); ++i) scaled[i] = static_cast<float>(pcm[i]) / 32768.0f;
  for (bool snip : {true, false}) {
    FbankOptions opts;
    opts.snip_edges = snip;
    OnlineFbank fb(opts);
    for (size_t off = 0; off < pcm.size(); off += 333) {
      fb.accept_waveform_int16(pcm.data() + off,
                               static_cast<int64_t>(std::min<size_t>(333, pcm.size() - off)));
    }
    fb.input_finished();
    std::vector<float> got(static_cast<size_t>(fb.num_frames_ready()) * 80);
    fb.pop_frames(fb.num_frames_ready(), got.data());
    CHECK(bit_equal(got, run_stream(opts, scaled, 7000)));
  }
}

TEST(fbank_dither_depends_on_seed_only) {
  const auto x = test_signal(4000);
  FbankOptions opts;
  opts.dither = 1e-3;
  opts.dither_seed = 1;
  const auto a = run_stream(opts, x, 4000);
  CHECK(bit_equal(a, run_stream(opts, x, 17)));
  opts.dither_seed = 2;
  const auto b = run_stream(opts, x, 4000);
  CHECK(!bit_equal(a, b));
  opts.dither = 0.0;
  const auto c = run_stream(opts, x, 4000);
  CHECK(!bit_equal(a, c));
  double max_diff = 0;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::fmax(max_diff, std::fabs(a[i] - c[i]));
  CHECK(max_diff < 0.5);  // small dither: small change
}

TEST(fbank_gaussian_rng_is_standard_normal_and_reproducible) {
  aim_edge::GaussianRng rng(12345);
  const double first = rng.next();
  double sum = 0, sum2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double v = rng.next();
    sum += v;
    sum2 += v * v;
  }
  CHECK_NEAR(sum / n, 0.0, 0.01);
  CHECK_NEAR(sum2 / n, 1.0, 0.02);
  rng.reseed(12345);
  CHECK_EQ(rng.next(), first);
  // Golden values (x86-64 glibc): mt19937 and seed_seq are specified by the standard, so other
  // platforms may differ only by libm rounding of log/cos/sin.
  aim_edge::GaussianRng golden(0);
  const double expected[4] = {-0.52648517232216563, -0.86154700188981326, -0.16304733881669159,
                               -0.19359037894589226};
  for (double e : expected) CHECK_NEAR(golden.next(), e, 1e-12);
}

TEST(fbank_tone_peaks_in_the_right_mel_bin) {
  // A 1 kHz tone: the loudest mel bin must be the one whose centre is nearest 1 kHz.
  std::vector<float> x(16000);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = 0.5f * static_cast<float>(std::sin(2.0 * 3.14159265358979 * 1000.0 * i / 16000.0));
  }
  FbankOptions opts;
  const auto feats = run_stream(opts, x, 1000);
  const float *frame = feats.data() + 50 * 80;
  int best = 0;
  for (int b = 1; b < 80; ++b) {
    if (frame[b] > frame[best]) best = b;
  }
  // Mel centres: mel_low + (b + 1) * delta, mel(20 Hz) .. mel(8000 Hz) in 81 steps.
  const double mel_low = 1127.0 * std::log(1.0 + 20.0 / 700.0);
  const double mel_high = 1127.0 * std::log(1.0 + 8000.0 / 700.0);
  const double target = 1127.0 * std::log(1.0 + 1000.0 / 700.0);
  const int expected = static_cast<int>(std::lround((target - mel_low) / ((mel_high - mel_low) / 81) - 1));
  CHECK(std::abs(best - expected) <= 1);
}

TEST(fbank_fast_log_matches_std_log) {
  // Every 97th float bit pattern from the smallest subnormal to +inf, plus edge values.
  std::vector<float> v;
  for (uint64_t bits = 1; bits <= 0x7f800000u; bits += 97) {
    float x;
    const uint32_t b = static_cast<uint32_t>(bits);
    std::memcpy(&x, &b, sizeof x);
    v.push_back(x);
  }
  for (float x : {FLT_MIN, FLT_MAX, FLT_EPSILON, 1.0f, 0.70710677f, 0.70710683f, 2.0f, INFINITY}) {
    v.push_back(x);
  }
  std::vector<float> out(v.size());
  aim_edge::detail::floor_log(v.data(), out.data(), static_cast<int>(v.size()), 1e-45f);
  double max_rel = 0.0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double ref = std::log(static_cast<double>(v[i]));
    if (std::isinf(ref)) {
      CHECK(std::isinf(out[i]) && out[i] > 0);
      continue;
    }
    const double err = std::fabs(out[i] - ref);
    // absolute error near ln(x) = 0, relative elsewhere: a few float ulp either way
    max_rel = std::fmax(max_rel, err / std::fmax(std::fabs(ref), 1.0));
  }
  if (!(max_rel < 4 * FLT_EPSILON)) {
    throw aim_edge_test::CheckFailure("fast log error " + std::to_string(max_rel / FLT_EPSILON) +
                                      " float eps");
  }
  // The floor applies before the log, in place.
  std::vector<float> w = {0.0f, -1.0f, 1e-30f, 3.0f};
  aim_edge::detail::floor_log(w.data(), w.data(), 4, FLT_EPSILON);
  CHECK_NEAR(w[0], std::log(FLT_EPSILON), 1e-6);
  CHECK_NEAR(w[1], std::log(FLT_EPSILON), 1e-6);
  CHECK_NEAR(w[2], std::log(FLT_EPSILON), 1e-6);
  CHECK_NEAR(w[3], std::log(3.0), 1e-6);
}
