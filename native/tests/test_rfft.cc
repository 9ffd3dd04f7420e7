// RealFft against a naive double-precision DFT (the golden reference is the DFT definition
// itself, X[k] = sum_t x[t] exp(-2 pi i k t / n), evaluated in double).
#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "aim_edge/rfft.h"
#include "check.h"

namespace {

// Max |X_fft - X_dft| over all bins, relative to max |X_dft|.
double rfft_relative_error(int n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(n);
  for (auto &v : x) v = dist(gen);
  const aim_edge::RealFft fft(n);
  std::vector<float> re(n / 2 + 1, 123.0f), im(n / 2 + 1, 456.0f);
  fft.forward(x.data(), re.data(), im.data());
  const double pi = 3.14159265358979323846;
  double max_err = 0.0, max_mag = 0.0;
  for (int k = 0; k <= n / 2; ++k) {
    double sr = 0.0, si = 0.0;
    for (int t = 0; t < n; ++t) {
      const double a = -2.0 * pi * static_cast<double>(k) * t / n;
      sr += x[t] * std::cos(a);
      si += x[t] * std::sin(a);
    }
    max_err = std::fmax(max_err, std::hypot(re[k] - sr, im[k] - si));
    max_mag = std::fmax(max_mag, std::hypot(sr, si));
  }
  return max_err / std::fmax(max_mag, 1e-30);
}

}  // namespace

TEST(rfft_matches_naive_dft_all_sizes) {
  for (int n = 2; n <= 4096; n *= 2) {
    const double err = rfft_relative_error(n, 1234u + n);
    if (!(err < 2e-6)) {
      throw aim_edge_test::CheckFailure("rfft n=" + std::to_string(n) +
                                        " relative error " + std::to_string(err));
    }
  }
}

TEST(rfft_512_several_signals) {
  for (unsigned seed = 0; seed < 8; ++seed) CHECK(rfft_relative_error(512, seed) < 1e-6);
}

TEST(rfft_impulse_and_dc) {
  const int n = 512;
  const aim_edge::RealFft fft(n);
  std::vector<float> x(n, 0.0f), re(n / 2 + 1), im(n / 2 + 1);
  x[0] = 1.0f;  // impulse: flat spectrum of ones
  fft.forward(x.data(), re.data(), im.data());
  for (int k = 0; k <= n / 2; ++k) {
    CHECK_NEAR(re[k], 1.0, 1e-6);
    CHECK_NEAR(im[k], 0.0, 1e-6);
  }
  std::fill(x.begin(), x.end(), 1.0f);  // DC: n at bin 0, zero elsewhere
  fft.forward(x.data(), re.data(), im.data());
  CHECK_NEAR(re[0], n, 1e-4);
  for (int k = 1; k <= n / 2; ++k) {
    CHECK_NEAR(re[k], 0.0, 1e-4);
    CHECK_NEAR(im[k], 0.0, 1e-4);
  }
  CHECK_EQ(im[0], 0.0f);
  CHECK_EQ(im[n / 2], 0.0f);
}

TEST(rfft_bad_sizes_throw) {
  CHECK_THROWS(aim_edge::RealFft(0), std::invalid_argument);
  CHECK_THROWS(aim_edge::RealFft(1), std::invalid_argument);
  CHECK_THROWS(aim_edge::RealFft(400), std::invalid_argument);
  CHECK_THROWS(aim_edge::RealFft(-512), std::invalid_argument);
  CHECK_EQ(aim_edge::RealFft(512).num_bins(), 257);
}
