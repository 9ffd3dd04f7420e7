// Streaming Kaldi-compatible fbank. See fbank.h for provenance and the fixed Kaldi options.
//
// Per frame (hot path, ~one call per 10 ms hop): dither (optional) -> DC removal -> pre-emphasis
// fused with the Povey window -> 512-point real FFT -> power spectrum -> sparse mel weights ->
// floor + log. Everything is precomputed in the constructor; nothing allocates once the
// buffers have reached their working size.
#include "aim_edge/fbank.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

namespace aim_edge {

namespace {

constexpr double kTwoPi = 6.283185307179586476925286766559005;
constexpr int64_t kMaxFrameSamples = int64_t{1} << 24;  // keeps every size well inside int32
constexpr int64_t kAcceptBlock = int64_t{1} << 15;      // bounds the buffer for huge inputs

template <typename T>
[[noreturn]] void fail(const char *field, const T &value, const std::string &expected) {
  std::ostringstream os;
  os << "fbank." << field << " = " << value << " is invalid: expected " << expected;
  throw std::invalid_argument(os.str());
}

// Window or hop in samples, or -1 when the product is not a sane size (validate() says why).
int64_t ms_to_samples(int sample_rate, double ms) {
  const double v = sample_rate * ms / 1000.0;  // same expression as FbankConfig (bit-equal)
  if (!(v >= 0.0) || v > static_cast<double>(kMaxFrameSamples)) return -1;
  return static_cast<int64_t>(v);
}

bool finite(double v) { return std::isfinite(v); }

// Kaldi's mel scale, in float exactly like mel-computations.h (the bin membership of every FFT
// bin depends on these roundings).
float mel_scale(float freq) { return 1127.0f * std::log(1.0f + freq / 700.0f); }

// Index of the first NaN/inf in x[0, n), or -1. The block scan is branch-free (vectorisable);
// only a block that contains a bad sample is searched again one sample at a time.
int64_t first_non_finite(const float *x, int64_t n) {
  constexpr int64_t kBlock = 1024;
  for (int64_t base = 0; base < n; base += kBlock) {
    const int64_t end = std::min(n, base + kBlock);
    uint32_t bad = 0;
    for (int64_t i = base; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, x + i, sizeof bits);
      bad |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (bad) {
      for (int64_t i = base; i < end; ++i) {
        if (!std::isfinite(x[i])) return i;
      }
    }
  }
  return -1;
}

}  // namespace

namespace detail {

// out[i] = ln(max(v[i], floor)) for n values, vectorisable (glibc's logf is a call per value and
// was a quarter of the frame time). Algorithm: Cephes logf (S. L. Moshier): x = 2^e * m with m in
// [sqrt(1/2), sqrt(2)), ln(m) by a degree-9 polynomial in f = m - 1, ln 2 split in two parts;
// error within ~2 ulp of std::log for normal floats (tested in test_fbank.cc). Subnormal,
// infinite and NaN inputs take std::log in a second, rarely-branching pass.
void floor_log(const float *v, float *out, int n, float floor) {
  uint32_t special = 0;  // any subnormal / inf / NaN input (exponent field all zeros or ones)
  for (int i = 0; i < n; ++i) {
    const float x = std::max(v[i], floor);
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    const uint32_t exponent = bits & 0x7f800000u;
    special |= static_cast<uint32_t>(exponent == 0u) |
               static_cast<uint32_t>(exponent == 0x7f800000u);
    int32_t e = static_cast<int32_t>((bits >> 23) & 0xffu) - 126;  // x = 2^e * m, m in [0.5, 1)
    const uint32_t mbits = (bits & 0x007fffffu) | 0x3f000000u;
    float m;
    std::memcpy(&m, &mbits, sizeof m);
    const int32_t small = m < 0.707106781186547524f;  // then use 2m and e - 1 (no branch)
    e -= small;
    const float f = m * (1.0f + static_cast<float>(small)) - 1.0f;
    const float z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    const float fe = static_cast<float>(e);
    y += -2.12194440e-4f * fe;
    y += -0.5f * z;
    out[i] = (f + y) + 0.693359375f * fe;
  }
  if (!special) return;
  for (int i = 0; i < n; ++i) {
    const float x = std::max(v[i], floor);
    if (!(x >= FLT_MIN && x <= FLT_MAX)) out[i] = std::log(x);
  }
}

}  // namespace detail

int FbankOptions::frame_length() const {
  return static_cast<int>(ms_to_samples(sample_rate, frame_length_ms));
}

int FbankOptions::frame_shift() const {
  return static_cast<int>(ms_to_samples(sample_rate, frame_shift_ms));
}

int FbankOptions::padded_length() const {
  int n = 1;
  while (n < frame_length()) n <<= 1;
  return n;
}

void FbankOptions::validate() const {
  if (sample_rate < 1000 || sample_rate > 192000) {
    fail("sample_rate", sample_rate, "an int in [1000, 192000] Hz");
  }
  if (n_mels < 1 || n_mels > 512) fail("n_mels", n_mels, "an int in [1, 512]");
  if (!finite(frame_length_ms) || frame_length_ms <= 0) {
    fail("frame_length_ms", frame_length_ms, "a positive number of milliseconds");
  }
  if (!finite(frame_shift_ms) || frame_shift_ms <= 0) {
    fail("frame_shift_ms", frame_shift_ms, "a positive number of milliseconds");
  }
  const int64_t length = ms_to_samples(sample_rate, frame_length_ms);
  const int64_t shift = ms_to_samples(sample_rate, frame_shift_ms);
  if (length < 0 || shift < 0) {
    fail(length < 0 ? "frame_length_ms" : "frame_shift_ms",
         length < 0 ? frame_length_ms : frame_shift_ms, "a window of at most 2**24 samples");
  }
  if (shift < 1 || length < 2) {
    fail("frame_length_ms", frame_length_ms,
         "a window of at least 2 samples and a hop of at least 1 sample");
  }
  if (shift > length) {
    fail("frame_shift_ms", frame_shift_ms, "a hop no longer than the window");
  }
  if (!finite(dither) || dither < 0) fail("dither", dither, "a finite number >= 0");
  if (!finite(preemph_coeff) || preemph_coeff < 0 || preemph_coeff > 1) {
    fail("preemph_coeff", preemph_coeff, "a number in [0, 1]");
  }
  const double nyquist = sample_rate / 2.0;
  if (!finite(low_freq) || low_freq < 0 || low_freq >= nyquist) {
    fail("low_freq", low_freq, "a number in [0, Nyquist) Hz");
  }
  if (!finite(high_freq)) fail("high_freq", high_freq, "a finite number of Hz");
  const double high = high_freq > 0 ? high_freq : nyquist + high_freq;
  if (!(low_freq < high && high <= nyquist)) {
    fail("high_freq", high_freq,
         "an edge above low_freq and at most Nyquist; values <= 0 are offsets from Nyquist");
  }
  if (!finite(log_floor) || log_floor <= 0) fail("log_floor", log_floor, "a positive number");
}

int64_t first_sample_of_frame(int64_t frame, const FbankOptions &opts) {
  const int64_t shift = opts.frame_shift();
  if (opts.snip_edges) return frame * shift;
  const int64_t midpoint = shift * frame + shift / 2;
  return midpoint - opts.frame_length() / 2;
}

int64_t num_frames(int64_t num_samples, const FbankOptions &opts, bool flush) {
  const int64_t shift = opts.frame_shift();
  const int64_t length = opts.frame_length();
  if (opts.snip_edges) {
    return num_samples < length ? 0 : 1 + (num_samples - length) / shift;
  }
  // Round num_samples / shift to the nearest integer (Kaldi's rule) ...
  int64_t frames = (num_samples + shift / 2) / shift;
  if (flush) return frames;
  // ... but without the end of the stream, only frames that end within the samples.
  int64_t end = first_sample_of_frame(frames - 1, opts) + length;
  while (frames > 0 && end > num_samples) {
    --frames;
    end -= shift;
  }
  return frames;
}

void GaussianRng::reseed(uint64_t seed) {
  std::seed_seq seq{static_cast<uint32_t>(seed & 0xffffffffu), static_cast<uint32_t>(seed >> 32)};
  gen_.seed(seq);
  has_spare_ = false;
  spare_ = 0.0;
}

double GaussianRng::next() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Uniforms in the open interval (0, 1) from 32-bit draws, so log(u1) is finite.
  const double u1 = (static_cast<double>(gen_()) + 0.5) * (1.0 / 4294967296.0);
  const double u2 = (static_cast<double>(gen_()) + 0.5) * (1.0 / 4294967296.0);
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = kTwoPi * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

static const FbankOptions &validated(const FbankOptions &opts) {
  opts.validate();
  return opts;
}

OnlineFbank::OnlineFbank(const FbankOptions &opts)
    : opts_(validated(opts)),
      frame_length_(opts.frame_length()),
      padded_(opts.padded_length()),
      preemph_(static_cast<float>(opts.preemph_coeff)),
      log_floor_(static_cast<float>(opts.log_floor)),
      fft_(opts.padded_length()),
      rng_(opts.dither_seed) {
  // Povey window: (0.5 - 0.5 cos(2 pi i / (L - 1)))^0.85, computed in double like Kaldi.
  window_.resize(frame_length_);
  const double a = kTwoPi / (frame_length_ - 1);
  for (int i = 0; i < frame_length_; ++i) {
    window_[i] = static_cast<float>(std::pow(0.5 - 0.5 * std::cos(a * i), 0.85));
  }

  // Mel bank, Kaldi's MelBanks constructor in float. Only FFT bins 0 .. padded/2 - 1 take part
  // (Kaldi excludes the Nyquist bin); a bin gets weight only if strictly inside (left, right).
  const int num_fft_bins = padded_ / 2;
  const float sample_freq = static_cast<float>(opts_.sample_rate);
  const float nyquist = 0.5f * sample_freq;
  const float low = static_cast<float>(opts_.low_freq);
  const float high = opts_.high_freq > 0 ? static_cast<float>(opts_.high_freq)
                                         : nyquist + static_cast<float>(opts_.high_freq);
  const float fft_bin_width = sample_freq / static_cast<float>(padded_);
  const float mel_low = mel_scale(low);
  const float mel_high = mel_scale(high);
  const float mel_delta = (mel_high - mel_low) / static_cast<float>(opts_.n_mels + 1);
  for (int bin = 0; bin < opts_.n_mels; ++bin) {
    const float left = mel_low + static_cast<float>(bin) * mel_delta;
    const float center = mel_low + static_cast<float>(bin + 1) * mel_delta;
    const float right = mel_low + static_cast<float>(bin + 2) * mel_delta;
    int first = -1, last = -1;
    std::vector<float> weights;
    for (int i = 0; i < num_fft_bins; ++i) {
      const float mel = mel_scale(fft_bin_width * static_cast<float>(i));
      if (mel > left && mel < right) {
        const float w = mel <= center ? (mel - left) / (center - left)
                                      : (right - mel) / (right - center);
        if (first < 0) first = i;
        last = i;
        weights.resize(static_cast<size_t>(last - first + 1), 0.0f);
        weights[static_cast<size_t>(i - first)] = w;
      }
    }
    if (first < 0) {
      std::ostringstream os;
      os << "fbank.n_mels = " << opts_.n_mels << " is invalid: mel bin " << bin
         << " contains no FFT bin (a " << padded_ << "-point FFT between " << low << " and "
         << high << " Hz); use fewer mel bins, a longer frame or a wider frequency range";
      throw std::invalid_argument(os.str());
    }
    mel_first_.push_back(first);
    mel_size_.push_back(last - first + 1);
    mel_weights_.insert(mel_weights_.end(), weights.begin(), weights.end());
  }

  frame_.assign(frame_length_, 0.0f);
  fft_in_.assign(padded_, 0.0f);  // the tail past frame_length_ stays zero forever
  re_.assign(padded_ / 2 + 1, 0.0f);
  im_.assign(padded_ / 2 + 1, 0.0f);
  power_.assign(padded_ / 2, 0.0f);
}

void OnlineFbank::accept_waveform(const float *samples, int64_t n) {
  if (n < 0 || (n > 0 && samples == nullptr)) {
    throw std::invalid_argument("accept_waveform: null samples or negative count");
  }
  if (n == 0) return;
  if (finished_) {
    throw InvalidInput("accept_waveform() called after input_finished(); call reset() to start "
                       "a new stream");
  }
  const int64_t bad = first_non_finite(samples, n);
  if (bad >= 0) {
    const float v = samples[bad];
    std::ostringstream os;
    os << "sample " << (num_samples_ + bad) << " of the stream (index " << bad
       << " of this call) is " << (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"))
       << "; audio must be finite. Nothing from this call was accepted.";
    throw InvalidInput(os.str());
  }
  for (int64_t off = 0; off < n; off += kAcceptBlock) {
    const int64_t len = std::min(kAcceptBlock, n - off);
    buf_.insert(buf_.end(), samples + off, samples + off + len);
    num_samples_ += len;
    compute_ready_frames(false);
    release_consumed_samples();
  }
}

void OnlineFbank::accept_waveform_int16(const int16_t *samples, int64_t n) {
  if (n < 0 || (n > 0 && samples == nullptr)) {
    throw std::invalid_argument("accept_waveform_int16: null samples or negative count");
  }
  if (n == 0) return;
  if (finished_) {
    throw InvalidInput("accept_waveform() called after input_finished(); call reset() to start "
                       "a new stream");
  }
  constexpr float kScale = 1.0f / 32768.0f;  // a power of two: x * kScale == x / 32768.0f
  for (int64_t off = 0; off < n; off += kAcceptBlock) {
    const int64_t len = std::min(kAcceptBlock, n - off);
    const size_t old = buf_.size();
    buf_.resize(old + static_cast<size_t>(len));
    float *dst = buf_.data() + old;
    for (int64_t i = 0; i < len; ++i) dst[i] = static_cast<float>(samples[off + i]) * kScale;
    num_samples_ += len;
    compute_ready_frames(false);
    release_consumed_samples();
  }
}

void OnlineFbank::input_finished() {
  if (finished_) return;
  finished_ = true;
  compute_ready_frames(true);
  release_consumed_samples();
}

void OnlineFbank::compute_ready_frames(bool flush) {
  const int64_t target = num_frames(num_samples_, opts_, flush);
  if (target <= frames_computed_) return;
  const size_t old = feats_.size();
  feats_.resize(old + static_cast<size_t>(target - frames_computed_) * opts_.n_mels);
  float *out = feats_.data() + old;
  for (int64_t f = frames_computed_; f < target; ++f, out += opts_.n_mels) {
    compute_frame(f, out);
  }
  frames_computed_ = target;
}

void OnlineFbank::release_consumed_samples() {
  // Every future frame starts at or after the next frame's first sample, and its reflected
  // samples (snip_edges false, at the end) lie inside it; see Kaldi's ExtractWindow.
  int64_t keep_from = finished_ ? num_samples_ : first_sample_of_frame(frames_computed_, opts_);
  keep_from = std::max<int64_t>(keep_from, 0);
  const int64_t drop = std::min<int64_t>(keep_from - buf_start_, static_cast<int64_t>(buf_.size()));
  if (drop <= 0) return;
  buf_.erase(buf_.begin(), buf_.begin() + drop);
  buf_start_ += drop;
}

void OnlineFbank::compute_frame(int64_t frame, float *out) {
  const int64_t start = first_sample_of_frame(frame, opts_);
  const int64_t n = num_samples_;
  const float *src;
  if (start >= buf_start_ && start + frame_length_ <= n) {
    src = buf_.data() + (start - buf_start_);
  } else {
    // Edge frame (snip_edges false): reflect around the first / last sample, as often as
    // needed (only very short streams need more than once): -1 -> 0, n -> n - 1.
    for (int s = 0; s < frame_length_; ++s) {
      int64_t i = start + s;
      while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;
      if (i < buf_start_) {
        throw std::runtime_error("OnlineFbank: frame " + std::to_string(frame) +
                                 " needs sample " + std::to_string(i) +
                                 " which was already released (internal error)");
      }
      frame_[s] = buf_[static_cast<size_t>(i - buf_start_)];
    }
    src = frame_.data();
  }
  if (opts_.dither != 0.0) {
    if (src != frame_.data()) std::copy(src, src + frame_length_, frame_.begin());
    const float dither = static_cast<float>(opts_.dither);
    for (int s = 0; s < frame_length_; ++s) {
      frame_[s] += static_cast<float>(rng_.next()) * dither;
    }
    src = frame_.data();
  }
  process_window(src, out);
}

void OnlineFbank::process_window(const float *x, float *out) {
  // Loop indices are ptrdiff_t: Python builds extensions with -fwrapv, under which int indices
  // cost ~15% here (wrapping int arithmetic defeats the compiler's address analysis).
  using idx = std::ptrdiff_t;
  const idx L = frame_length_;
  float mean = 0.0f;
  if (opts_.remove_dc_offset) {
    // Eight independent partial sums: deterministic, and vectorisable without -ffast-math.
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    idx i = 0;
    for (; i + 8 <= L; i += 8) {
      for (idx j = 0; j < 8; ++j) lanes[j] += x[i + j];
    }
    float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; i < L; ++i) sum += x[i];
    mean = sum / static_cast<float>(L);
  }
  // DC removal, pre-emphasis y[i] -= c * y[i-1] (y[0] -= c * y[0]) and the window in one pass,
  // with Kaldi's float operations in Kaldi's order.
  const float c = preemph_;
  const float *w = window_.data();
  float *y = fft_in_.data();
  const float y0 = x[0] - mean;
  y[0] = (y0 - c * y0) * w[0];
  for (idx i = 1; i < L; ++i) {
    y[i] = ((x[i] - mean) - c * (x[i - 1] - mean)) * w[i];
  }

  fft_.forward(y, re_.data(), im_.data());
  const idx bins = padded_ / 2;
  const float *re = re_.data();
  const float *im = im_.data();
  float *p = power_.data();
  for (idx k = 0; k < bins; ++k) p[k] = re[k] * re[k] + im[k] * im[k];

  const float *wt = mel_weights_.data();
  const idx n_mels = opts_.n_mels;
  for (idx b = 0; b < n_mels; ++b) {
    const float *pb = p + mel_first_[b];
    const idx size = mel_size_[b];
    // Four partial sums (one SSE/NEON multiply-add per step once vectorised): shorter
    // dependency chains than Kaldi's single running sum; same terms, deterministic order.
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    idx j = 0;
    for (; j + 4 <= size; j += 4) {
      a0 += wt[j] * pb[j];
      a1 += wt[j + 1] * pb[j + 1];
      a2 += wt[j + 2] * pb[j + 2];
      a3 += wt[j + 3] * pb[j + 3];
    }
    for (; j < size; ++j) a0 += wt[j] * pb[j];
    wt += size;
    out[b] = (a0 + a1) + (a2 + a3);
  }
  detail::floor_log(out, out, opts_.n_mels, log_floor_);
}

int64_t OnlineFbank::pop_frames(int64_t n, float *out) {
  if (n < 0) throw std::invalid_argument("pop_frames: n = " + std::to_string(n) + " < 0");
  const int64_t k = std::min(n, num_frames_ready());
  if (k == 0) return 0;
  if (out == nullptr) throw std::invalid_argument("pop_frames: null output buffer");
  const size_t count = static_cast<size_t>(k) * static_cast<size_t>(opts_.n_mels);
  std::memcpy(out, feats_.data() + feats_head_, count * sizeof(float));
  feats_head_ += count;
  frames_popped_ += k;
  if (feats_head_ == feats_.size()) {
    feats_.clear();  // keeps the capacity: steady streaming never reallocates
    feats_head_ = 0;
  } else if (feats_head_ > feats_.size() / 2) {
    feats_.erase(feats_.begin(), feats_.begin() + static_cast<std::ptrdiff_t>(feats_head_));
    feats_head_ = 0;
  }
  return k;
}

void OnlineFbank::reset() {
  buf_.clear();
  buf_start_ = 0;
  num_samples_ = 0;
  frames_computed_ = 0;
  frames_popped_ = 0;
  feats_.clear();
  feats_head_ = 0;
  finished_ = false;
  rng_.reseed(opts_.dither_seed);
}

}  // namespace aim_edge
