// Linear layers through cuBLASLt: y = x @ w^T (+ bias), bf16 operands, fp32 accumulation.
#pragma once

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

namespace doze::kernels {

// Element type of a linear layer's output.
enum class OutType { kBf16, kF32 };

// Owns a cuBLASLt handle, its workspace and one matmul plan (descriptors and the heuristic's algorithm) per
// shape, so a repeated shape costs no heuristic query; plans are made on first use, which also works inside
// graph capture.
class GemmContext {
 public:
  GemmContext();
  ~GemmContext();
  GemmContext(const GemmContext&) = delete;
  GemmContext& operator=(const GemmContext&) = delete;

  // y[m, n] = x[m, k] @ w[n, k]^T (+ bias[n] when not null), bias added in the matmul epilogue.
  void Linear(const __nv_bfloat16* x,     // [m, k]
              const __nv_bfloat16* w,     // [n, k], Hugging Face's [out_features, in_features]
              const __nv_bfloat16* bias,  // [n] or nullptr
              void* y,                    // [m, n], bf16 or fp32 as `out_type` says
              OutType out_type, int m, int n, int k, cudaStream_t stream);

  // Makes Linear of this shape use the heuristic's `rank`-th algorithm (0: its first choice, the default);
  // false when it offers fewer. For measurements of the alternatives.
  bool UseAlgorithm(int m, int n, int k, bool has_bias, OutType out_type, int rank);
  // Same with k split `splits` ways (partial sums reduced in fp32 through the workspace); false when that
  // algorithm cannot split k or cuBLASLt rejects the configuration. For measurements.
  bool UseSplitK(int m, int n, int k, bool has_bias, OutType out_type, int rank, int splits);

 private:
  struct Plan;
  using Key = std::tuple<int, int, int, bool, OutType>;

  Plan& GetPlan(const Key& key);
  // The heuristic's algorithms for the plan's shape, best first (at most `count`).
  std::vector<cublasLtMatmulHeuristicResult_t> Heuristics(const Plan& plan, int count);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;  // [kWorkspaceBytes]
  std::map<Key, Plan*> plans_;
};

}  // namespace doze::kernels
