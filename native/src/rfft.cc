// Real FFT: a radix-2 complex FFT of n/2 points on the even/odd interleaved input, then the
// standard real-signal post-processing. See rfft.h for provenance.
//
// Layout choices, all for speed without intrinsics (plain C++ that compilers vectorise for
// SSE2 / NEON; the same source is the scalar fallback):
// - split real/imaginary arrays, so every butterfly loop is stride-1;
// - the bit-reversal gather and the first two stages (twiddles 1 and -i) form one
//   multiplication-free radix-4 pass;
// - later stages go in fused pairs (radix-2^2), each reading contiguous twiddle tables
//   precomputed in double;
// - the real post-processing runs as one loop over bins k and m - k.
#include "aim_edge/rfft.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace aim_edge {

namespace {

constexpr double kPi = 3.14159265358979323846264338327950288;

bool is_power_of_two(int n) { return n > 0 && (n & (n - 1)) == 0; }

// The pointer parameters of the kernels below never overlap (distinct quarters of a group,
// or the low and high halves of the spectrum); __restrict on function parameters lets the
// compiler vectorise the loops without runtime alias checks (restrict-qualified locals are not
// enough for GCC).

// One radix-2 stage for one group: a' = a + w b, b' = a - w b.
inline void radix2_group(float *__restrict ar, float *__restrict ai, float *__restrict br,
                         float *__restrict bi, const float *__restrict wr,
                         const float *__restrict wi, int half) {
  for (int j = 0; j < half; ++j) {
    const float tr = br[j] * wr[j] - bi[j] * wi[j];
    const float ti = br[j] * wi[j] + bi[j] * wr[j];
    const float xr = ar[j], xi = ai[j];
    br[j] = xr - tr;
    bi[j] = xi - ti;
    ar[j] = xr + tr;
    ai[j] = xi + ti;
  }
}

// Two radix-2 stages (half = h, then 2h) fused for one group of 4h points: the same arithmetic
// as two radix2_group passes (the stage-2h twiddle of the upper pair is w2 * -i, applied as a
// swap), with half the loads and stores.
inline void radix22_group(float *__restrict r0, float *__restrict i0, float *__restrict r1,
                          float *__restrict i1, float *__restrict r2, float *__restrict i2,
                          float *__restrict r3, float *__restrict i3,
                          const float *__restrict w1r, const float *__restrict w1i,
                          const float *__restrict w2r, const float *__restrict w2i, int h) {
  for (int j = 0; j < h; ++j) {
    // stage h: (0, 1) and (2, 3) with w1
    const float t1r = r1[j] * w1r[j] - i1[j] * w1i[j];
    const float t1i = r1[j] * w1i[j] + i1[j] * w1r[j];
    const float t3r = r3[j] * w1r[j] - i3[j] * w1i[j];
    const float t3i = r3[j] * w1i[j] + i3[j] * w1r[j];
    const float b0r = r0[j] + t1r, b0i = i0[j] + t1i;
    const float b1r = r0[j] - t1r, b1i = i0[j] - t1i;
    const float b2r = r2[j] + t3r, b2i = i2[j] + t3i;
    const float b3r = r2[j] - t3r, b3i = i2[j] - t3i;
    // stage 2h: (0, 2) with w2, (1, 3) with w2 * -i
    const float ur = b2r * w2r[j] - b2i * w2i[j];
    const float ui = b2r * w2i[j] + b2i * w2r[j];
    const float vr = b3r * w2r[j] - b3i * w2i[j];
    const float vi = b3r * w2i[j] + b3i * w2r[j];  // (vr + i vi)(-i) = vi - i vr
    r0[j] = b0r + ur;
    i0[j] = b0i + ui;
    r2[j] = b0r - ur;
    i2[j] = b0i - ui;
    r1[j] = b1r + vi;
    i1[j] = b1i - vr;
    r3[j] = b1r - vi;
    i3[j] = b1i + vr;
  }
}

// Real-signal post-processing for k = 1 .. count (lo_* point at bin 1, hi_* at bin m - 1 and
// are indexed downwards): with A = Z[k], B = conj Z[m-k],
//   E = (A + B) / 2,  O = (A - B) / 2i,  X[k] = E + W^k O,  X[m-k] = conj(E - W^k O).
inline void split_spectrum(float *__restrict lo_r, float *__restrict lo_i, float *__restrict hi_r,
                           float *__restrict hi_i, const float *__restrict wr,
                           const float *__restrict wi, int count) {
  for (int j = 0; j < count; ++j) {
    const float ar = lo_r[j], ai = lo_i[j];
    const float br = hi_r[-j], bi = hi_i[-j];
    const float er = 0.5f * (ar + br), ei = 0.5f * (ai - bi);
    const float orr = 0.5f * (ai + bi), oi = -0.5f * (ar - br);
    const float tr = wr[j] * orr - wi[j] * oi;
    const float ti = wr[j] * oi + wi[j] * orr;
    lo_r[j] = er + tr;
    lo_i[j] = ei + ti;
    hi_r[-j] = er - tr;
    hi_i[-j] = ti - ei;
  }
}

}  // namespace

RealFft::RealFft(int n) : n_(n), m_(n / 2) {
  if (n < 2 || !is_power_of_two(n) || n > (1 << 28)) {
    throw std::invalid_argument("RealFft: size n = " + std::to_string(n) +
                                " is invalid: expected a power of two in [2, 2**28]");
  }
  int bits = 0;
  while ((1 << bits) < m_) ++bits;
  bitrev_.resize(m_);
  for (int j = 0; j < m_; ++j) {
    int r = 0;
    for (int b = 0; b < bits; ++b) r |= ((j >> b) & 1) << (bits - 1 - b);
    bitrev_[j] = r;
  }
  // Per stage (half = 4, 8, ...): exp(-2 pi i j / (2 half)), j < half. A fused pass over the
  // stages (h, 2h) reads the table of h and the first h entries of the table of 2h.
  for (int half = 4; half < m_; half <<= 1) {
    for (int j = 0; j < half; ++j) {
      const double angle = -kPi * j / half;
      stage_re_.push_back(static_cast<float>(std::cos(angle)));
      stage_im_.push_back(static_cast<float>(std::sin(angle)));
    }
  }
  for (int k = 0; k <= m_ / 2; ++k) {
    const double angle = -2.0 * kPi * k / n_;
    post_re_.push_back(static_cast<float>(std::cos(angle)));
    post_im_.push_back(static_cast<float>(std::sin(angle)));
  }
}

void RealFft::forward(const float *in, float *re, float *im) const {
  const int m = m_;
  // z[j] = x[2j] + i x[2j+1] in bit-reversed order, for the in-place decimation-in-time stages.
  int half = 1;
  if (m >= 4) {
    // Gather fused with the first two stages (twiddles 1 and -i: no multiplications). For k a
    // multiple of 4, bitrev(k + 1, 2, 3) = bitrev(k) + m/2, m/4, 3m/4.
    const int q = m / 4;
    for (int k = 0; k < m; k += 4) {
      const float *p0 = in + 2 * bitrev_[k];
      const float *p1 = p0 + 4 * q;  // 2 * (m/2)
      const float *p2 = p0 + 2 * q;  // 2 * (m/4)
      const float *p3 = p0 + 6 * q;  // 2 * (3m/4)
      const float r0 = p0[0] + p1[0], i0 = p0[1] + p1[1];  // half = 1
      const float r1 = p0[0] - p1[0], i1 = p0[1] - p1[1];
      const float r2 = p2[0] + p3[0], i2 = p2[1] + p3[1];
      const float r3 = p2[0] - p3[0], i3 = p2[1] - p3[1];
      re[k] = r0 + r2;  // half = 2: (0, 2) with 1, (1, 3) with -i: (x + iy)(-i) = y - ix
      im[k] = i0 + i2;
      re[k + 2] = r0 - r2;
      im[k + 2] = i0 - i2;
      re[k + 1] = r1 + i3;
      im[k + 1] = i1 - r3;
      re[k + 3] = r1 - i3;
      im[k + 3] = i1 + r3;
    }
    half = 4;
  } else {
    for (int j = 0; j < m; ++j) {
      re[j] = in[2 * bitrev_[j]];
      im[j] = in[2 * bitrev_[j] + 1];
    }
    if (m == 2) {
      static const float one[1] = {1.0f}, zero[1] = {0.0f};
      radix2_group(re, im, re + 1, im + 1, one, zero, 1);
      half = 2;
    }
  }
  const float *wr = stage_re_.data();
  const float *wi = stage_im_.data();
  for (; 4 * half <= m; half <<= 2) {
    const float *w2r = wr + half, *w2i = wi + half;
    for (int k = 0; k < m; k += 4 * half) {
      radix22_group(re + k, im + k, re + k + half, im + k + half, re + k + 2 * half,
                    im + k + 2 * half, re + k + 3 * half, im + k + 3 * half, wr, wi, w2r, w2i,
                    half);
    }
    wr += 3 * half;  // skip the tables of h and 2h
    wi += 3 * half;
  }
  if (half < m) {  // one radix-2 stage left over (log2 m odd)
    for (int k = 0; k < m; k += 2 * half) {
      radix2_group(re + k, im + k, re + k + half, im + k + half, wr, wi, half);
    }
  }

  if (m >= 4) {
    split_spectrum(re + 1, im + 1, re + m - 1, im + m - 1, post_re_.data() + 1,
                   post_im_.data() + 1, m / 2 - 1);
  }
  if (m >= 2) im[m / 2] = -im[m / 2];  // X[m/2] = conj Z[m/2]
  const float z0r = re[0], z0i = im[0];
  re[0] = z0r + z0i;
  im[0] = 0.0f;
  re[m] = z0r - z0i;
  im[m] = 0.0f;
}

}  // namespace aim_edge
