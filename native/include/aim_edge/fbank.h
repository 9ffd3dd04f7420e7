// Streaming Kaldi-compatible log-mel filterbank ("fbank") features.
//
// Provenance: follows the semantics of Kaldi's src/feat/feature-window.cc (FirstSampleOfFrame,
// NumFrames, ExtractWindow with reflection at the edges, ProcessWindow: dither, DC removal,
// pre-emphasis, Povey window), src/feat/mel-computations.cc (mel scale 1127 ln(1 + f/700),
// triangular bins with Kaldi's strict membership rule, FFT bins 0 .. n/2 - 1) and
// src/feat/feature-fbank.cc (power spectrum, floor, natural log), and the streaming behaviour of
// src/feat/online-feature.cc (OnlineGenericBaseFeature: frames that need samples past the end
// become ready only after InputFinished()). Re-implemented here (no Kaldi code), checked against
// kaldi-native-fbank in tests/test_fbank.py. Kaldi options that are fixed here: window_type =
// povey, round_to_power_of_two = true, use_energy = false, use_power = true, htk_compat = false,
// no VTLN.
#pragma once

#include <cfloat>
#include <cstdint>
#include <random>
#include <vector>

#include "aim_edge/errors.h"
#include "aim_edge/rfft.h"

namespace aim_edge {

/// Options of the fbank front end. Field names, meanings and the checks of validate() mirror
/// aim_edge.config.FbankConfig.
struct FbankOptions {
  int sample_rate = 16000;         ///< input sample rate, Hz, in [1000, 192000]
  int n_mels = 80;                 ///< number of mel bins, in [1, 512]
  double frame_length_ms = 25.0;   ///< analysis window, milliseconds
  double frame_shift_ms = 10.0;    ///< hop, milliseconds (<= window)
  double dither = 0.0;             ///< std of Gaussian dither, in [-1, 1] sample units; 0 = off
  uint64_t dither_seed = 0;        ///< seed of the (portable) dither generator
  double preemph_coeff = 0.97;     ///< pre-emphasis coefficient, in [0, 1]
  bool remove_dc_offset = true;    ///< subtract each frame's mean before pre-emphasis
  bool snip_edges = true;          ///< true: whole frames only; false: centred frames, reflected edges
  double low_freq = 20.0;          ///< lowest mel edge, Hz, in [0, Nyquist)
  double high_freq = 0.0;          ///< highest mel edge, Hz; <= 0: offset from Nyquist
  double log_floor = FLT_EPSILON;  ///< mel energies are floored at this before the log (> 0)

  /// Window length in samples: int(sample_rate * frame_length_ms / 1000).
  int frame_length() const;
  /// Hop in samples: int(sample_rate * frame_shift_ms / 1000).
  int frame_shift() const;
  /// FFT size: frame_length rounded up to a power of two (512 at 16 kHz / 25 ms).
  int padded_length() const;
  /// Throws std::invalid_argument naming the first bad field and its value.
  void validate() const;
};

/// Index of the first sample of frame `frame` (negative for the first frames when
/// snip_edges is false). Kaldi's FirstSampleOfFrame.
int64_t first_sample_of_frame(int64_t frame, const FbankOptions &opts);

/// Number of frames computable from `num_samples` samples. With snip_edges false and
/// flush false, frames that would reach past the last sample are not counted (they need the
/// end of the stream to be reflected). Kaldi's NumFrames.
int64_t num_frames(int64_t num_samples, const FbankOptions &opts, bool flush);

namespace detail {
/// out[i] = ln(max(v[i], floor)) for i < n (out may equal v): a vectorisable logf within a few
/// ulp of std::log (exposed for tests).
void floor_log(const float *v, float *out, int n, float floor);
}  // namespace detail

/// Seeded Gaussian generator whose output is identical on every platform: std::mt19937
/// (fully specified by the standard) seeded through std::seed_seq (also specified), and an
/// explicit Box-Muller transform (std::normal_distribution is implementation-defined).
class GaussianRng {
 public:
  explicit GaussianRng(uint64_t seed) { reseed(seed); }
  void reseed(uint64_t seed);
  /// One standard-normal draw.
  double next();

 private:
  std::mt19937 gen_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

/// Streaming fbank: push audio in chunks of any size, pop frames as they become ready.
///
/// Frames do not depend on how the input was chunked (bit-exact), including the dither, which
/// is drawn in frame order. Only the samples still needed by future frames are kept. Frame
/// indices are absolute from the start of the stream (or the last reset()).
///
/// Not thread-safe: one object per thread, or a lock around it (the Python binding has one).
class OnlineFbank {
 public:
  /// Validates `opts` (std::invalid_argument naming the field; also when the mel bank would
  /// have an empty bin) and precomputes the window, FFT plan and sparse mel weights.
  explicit OnlineFbank(const FbankOptions &opts);

  const FbankOptions &options() const { return opts_; }
  int n_mels() const { return opts_.n_mels; }

  /// Appends `n` float samples (nominally in [-1, 1]) and computes every frame that became
  /// ready. Every sample must be finite: otherwise throws InvalidInput naming the first bad
  /// sample's absolute stream index, and nothing from this call is accepted. Also throws
  /// InvalidInput after input_finished() (call reset() to start a new stream). n == 0 is a no-op.
  void accept_waveform(const float *samples, int64_t n);

  /// Same for 16-bit PCM: each sample is scaled by 1/32768 (so it equals the float path fed
  /// with samples[i] / 32768.0f exactly).
  void accept_waveform_int16(const int16_t *samples, int64_t n);

  /// Declares the end of the stream: with snip_edges false the last frames (reflected at the
  /// end) become ready. Idempotent.
  void input_finished();
  bool is_finished() const { return finished_; }

  /// Frames computed and not yet popped.
  int64_t num_frames_ready() const { return frames_computed_ - frames_popped_; }
  /// Absolute index of the next frame pop_frames() returns (= frames popped so far).
  int64_t first_frame_index() const { return frames_popped_; }
  /// Samples accepted since construction / reset().
  int64_t num_samples_accepted() const { return num_samples_; }
  /// Samples currently held for frames not yet computed (bounded by about one window).
  int64_t num_samples_buffered() const { return static_cast<int64_t>(buf_.size()); }

  /// Copies up to `n` ready frames, oldest first, into `out` (row-major, n_mels floats a frame)
  /// and removes them. @return the number of frames copied, min(n, num_frames_ready()).
  int64_t pop_frames(int64_t n, float *out);

  /// Forgets all audio, frames and end-of-stream state; reseeds the dither generator.
  void reset();

 private:
  void append_and_compute(const float *samples, int64_t n);
  void compute_ready_frames(bool flush);
  void release_consumed_samples();
  void compute_frame(int64_t frame, float *out);
  void process_window(const float *frame, float *out);

  FbankOptions opts_;
  int frame_length_, padded_;  // window and FFT size, samples
  float preemph_;
  float log_floor_;
  RealFft fft_;
  std::vector<float> window_;       // Povey window, frame_length_
  std::vector<int32_t> mel_first_;  // per mel bin: first FFT bin with a non-zero weight
  std::vector<int32_t> mel_size_;   // per mel bin: number of weights
  std::vector<float> mel_weights_;  // all bins' weights, concatenated

  // Scratch, sized once.
  std::vector<float> frame_;     // extracted (reflected / dithered) frame, frame_length_
  std::vector<float> fft_in_;    // processed frame zero-padded to padded_
  std::vector<float> re_, im_;   // FFT output, padded_/2 + 1
  std::vector<float> power_;     // power spectrum, padded_/2

  // Stream state.
  std::vector<float> buf_;       // samples [buf_start_, num_samples_)
  int64_t buf_start_ = 0;
  int64_t num_samples_ = 0;
  int64_t frames_computed_ = 0;
  int64_t frames_popped_ = 0;
  std::vector<float> feats_;     // frames [frames_popped_, frames_computed_) from feats_head_
  size_t feats_head_ = 0;
  bool finished_ = false;
  GaussianRng rng_;
};

}  // namespace aim_edge
