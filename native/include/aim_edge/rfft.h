// Real-input FFT of a power-of-two size, float32, written for the streaming fbank.
//
// Provenance: the textbook "two real halves in one complex FFT" construction (Cooley-Tukey
// radix-2 decimation in time on N/2 points, then the split into even/odd spectra, e.g.
// Oppenheim & Schafer, Discrete-Time Signal Processing, sec. 9; Numerical Recipes "realft").
// No code was copied from another FFT library.
//
// The plan is immutable after construction and may be shared between threads; each call works
// only in the caller's output arrays.
#pragma once

#include <cstdint>
#include <vector>

namespace aim_edge {

class RealFft {
 public:
  /// @param n transform size in samples: a power of two, >= 2. Throws std::invalid_argument.
  explicit RealFft(int n);

  /// Transform size in samples.
  int size() const { return n_; }

  /// Number of output bins: n/2 + 1 (DC ... Nyquist).
  int num_bins() const { return m_ + 1; }

  /// Forward transform X[k] = sum_t x[t] exp(-2 pi i k t / n), k = 0 .. n/2.
  /// @param in  n real samples (not modified).
  /// @param re  n/2 + 1 floats: real parts of X[0..n/2] (also used as workspace).
  /// @param im  n/2 + 1 floats: imaginary parts (im[0] and im[n/2] are 0).
  /// `in` must not overlap `re` or `im`.
  void forward(const float *in, float *re, float *im) const;

 private:
  int n_;  // real size
  int m_;  // complex size n/2
  std::vector<int32_t> bitrev_;  // m_ entries: bit-reversal permutation of log2(m_) bits
  // Twiddles of every radix-2 stage with half-size >= 4, stored contiguously per stage so the
  // butterfly loop reads them with stride 1 (and the compiler can vectorise it).
  std::vector<float> stage_re_, stage_im_;
  // exp(-2 pi i k / n) for k = 0 .. m_/2: the real-to-complex post-processing rotation.
  std::vector<float> post_re_, post_im_;
};

}  // namespace aim_edge
