// Helpers of the kernel tests: skipping without a GPU, device arrays, random bf16 data, tolerance checks.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda_check.h"
#include "kernels/reference/reference_ops.h"

namespace doze::kernels::testing {

// Empty when a CUDA device is usable, else why not.
inline std::string NoGpuReason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
  if (count == 0) return "no CUDA device";
  return "";
}

// Skips the test, with the reason, on a machine without a GPU.
#define DOZE_SKIP_WITHOUT_GPU()                                                      \
  do {                                                                               \
    const std::string doze_no_gpu_ = ::doze::kernels::testing::NoGpuReason();        \
    if (!doze_no_gpu_.empty()) GTEST_SKIP() << "GPU test skipped: " << doze_no_gpu_; \
  } while (0)

// A device allocation of n elements of T, freed on destruction.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(size_t n) : size_(n) {
    CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(n, 1) * sizeof(T)));
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(host.size()) { Upload(host); }
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  T* get() { return data_; }
  size_t size() const { return size_; }
  void Upload(const std::vector<T>& host) {
    CUDA_CHECK(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Download() const {
    std::vector<T> host(size_);
    CUDA_CHECK(cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  // Fills every byte with 0xff: NaN in bf16 and fp32, -1 in integers, so an unwritten output shows. The
  // fill is done when this returns: cudaMemset may return before it is, and a kernel launched next on a
  // non-blocking stream would not wait for it (the fill would land over its outputs).
  void Poison() {
    CUDA_CHECK(cudaMemset(data_, 0xff, size_ * sizeof(T)));
    CUDA_CHECK(cudaDeviceSynchronize());
  }

 private:
  T* data_ = nullptr;
  size_t size_;
};

// Pinned host memory of n elements of T, freed on destruction.
template <typename T>
class PinnedArray {
 public:
  explicit PinnedArray(size_t n) : size_(n) {
    CUDA_CHECK(cudaMallocHost(&data_, std::max<size_t>(n, 1) * sizeof(T)));
  }
  ~PinnedArray() { cudaFreeHost(data_); }
  PinnedArray(const PinnedArray&) = delete;
  PinnedArray& operator=(const PinnedArray&) = delete;
  T* get() { return data_; }
  std::vector<T> Copy() const { return std::vector<T>(data_, data_ + size_); }

 private:
  T* data_ = nullptr;
  size_t size_;
};

// n uniform values in [lo, hi), each rounded to bf16 (never all zero).
inline std::vector<float> RandomBf16(size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = reference::RoundBf16(dist(rng));
  return v;
}

// Random x (m rows of k, in +-1) and w (n rows of k, +-w_bound), bf16 values, from `seed`: a linear layer's
// operands (the LM head's tests).
struct LinearOperands {
  std::vector<float> x, w;
  LinearOperands(int m, int n, int k, uint32_t seed, float w_bound) {
    std::mt19937 rng(seed);
    x = RandomBf16(static_cast<size_t>(m) * k, -1.f, 1.f, rng);
    w = RandomBf16(static_cast<size_t>(n) * k, -w_bound, w_bound, rng);
  }
};

// An LM head's operands (n >= 4001 rows of k >= 10) with rows of x that are not finite, and the tokens the
// greedy passes take (a NaN logit never wins; a row of NaNs gets token 0): row 0 holds a NaN, so every logit
// is NaN (token 0, torch.argmax's too); row 1 holds +inf at element 5, whose weights are negative but rows
// 137's and 300's, so every logit is -inf but those two +inf (token 137); row 2 holds -inf at element 9,
// whose weights are positive but row 20's negative and row 4000's zero, so logit 20 is +inf and logit 4000
// NaN (0 * inf; token 20, where torch.argmax would take the NaN).
struct NonFiniteLmHead {
  LinearOperands o;
  std::vector<int> want{0, 137, 20};
  NonFiniteLmHead(int n, int k, uint32_t seed) : o(3, n, k, seed, 0.1f) {
    auto x = [&](int r, int e) -> float& { return o.x[static_cast<size_t>(r) * k + e]; };
    auto w = [&](int row, int e) -> float& { return o.w[static_cast<size_t>(row) * k + e]; };
    x(0, 3) = std::nanf("");
    x(1, 5) = std::numeric_limits<float>::infinity();
    x(2, 9) = -std::numeric_limits<float>::infinity();
    for (int row = 0; row < n; ++row) {
      w(row, 5) = row == 137 || row == 300 ? 0.0625f : -0.0625f;
      w(row, 9) = row == 20 ? -0.0625f : row == 4000 ? 0.f : 0.0625f;
    }
  }
};

inline std::vector<__nv_bfloat16> ToBf16(const std::vector<float>& v) {
  std::vector<__nv_bfloat16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __float2bfloat16(v[i]);
  return out;
}

inline std::vector<float> ToFloat(const std::vector<__nv_bfloat16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = __bfloat162float(v[i]);
  return out;
}

// Every got[i] within atol + rtol * |want[i]|; NaN never passes. Reports the count and the first few misses.
inline ::testing::AssertionResult AllClose(const std::vector<float>& got, const std::vector<float>& want,
                                           float atol, float rtol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << want.size();
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < got.size(); ++i) {
    const float tol = atol + rtol * std::fabs(want[i]);
    if (std::fabs(got[i] - want[i]) <= tol) continue;  // false for NaN
    if (++bad <= 5)
      first +=
          " [" + std::to_string(i) + "] got " + std::to_string(got[i]) + " want " + std::to_string(want[i]);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements off:" << first;
}

// v with every element rounded to bf16, as a kernel that stores bf16 leaves it.
inline std::vector<float> Rounded(std::vector<float> v) {
  for (float& x : v) x = reference::RoundBf16(x);
  return v;
}

// x[m, k] @ w[n, k]^T (+ bias[n]) in fp32, rounded to bf16.
inline std::vector<float> LinearRef(const std::vector<float>& x, const std::vector<float>& w,
                                    const float* bias, int m, int n, int k) {
  std::vector<float> y(static_cast<size_t>(m) * n);
  reference::Linear(x.data(), w.data(), bias, y.data(), m, n, k);
  return Rounded(y);
}

// Checks the paged K and V caches (poisoned before) that a rotary + cache write left: only the rows of tokens
// with a slot (>= 0) are written, K row t is the K heads of qkv row t in `rotated`, V row t the V heads of
// `unrotated`. `row_width` is a qkv row's length, `k_offset` where its K heads begin, `kv_size` their width.
inline void ExpectCacheRows(const std::vector<float>& k, const std::vector<float>& v,
                            const std::vector<float>& rotated, const std::vector<float>& unrotated,
                            const std::vector<int32_t>& slots, size_t num_tokens, size_t row_width,
                            size_t k_offset, size_t kv_size, float k_tolerance, float v_tolerance) {
  size_t written = 0;
  for (float x : k) written += !std::isnan(x);
  EXPECT_EQ(written, static_cast<size_t>(std::count_if(slots.begin(), slots.begin() + num_tokens,
                                                       [](int32_t slot) { return slot >= 0; })) *
                         kv_size);
  const auto at = [&](const std::vector<float>& a, size_t offset) {
    return std::vector<float>(a.begin() + offset, a.begin() + offset + kv_size);
  };
  for (size_t t = 0; t < num_tokens; ++t) {
    if (slots[t] < 0) continue;
    const size_t cache = static_cast<size_t>(slots[t]) * kv_size, src = t * row_width + k_offset;
    EXPECT_TRUE(AllClose(at(k, cache), at(rotated, src), k_tolerance, k_tolerance)) << "K of row " << t;
    EXPECT_TRUE(AllClose(at(v, cache), at(unrotated, src + kv_size), v_tolerance, v_tolerance))
        << "V of row " << t;
  }
}

}  // namespace doze::kernels::testing
