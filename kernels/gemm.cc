#include "kernels/gemm.h"

#include "kernels/cuda_check.h"

namespace doze::kernels {
namespace {

// Hopper kernels of cuBLASLt ask for up to 32 MiB of workspace.
constexpr size_t kWorkspaceBytes = 32u << 20;

}  // namespace

// Row-major y[m, n] is column-major y^T[n, m] = W * x^T, where row-major W[n, k] read column-major is W^T[k,
// n] (so op A = transpose) and row-major x[m, k] read column-major is x^T[k, m] (op B = none).
struct GemmContext::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

GemmContext::GemmContext() {
  CUBLAS_CHECK(cublasLtCreate(&handle_));
  CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
}

GemmContext::~GemmContext() {
  for (auto& [key, plan] : plans_) {
    cublasLtMatrixLayoutDestroy(plan->a);
    cublasLtMatrixLayoutDestroy(plan->b);
    cublasLtMatrixLayoutDestroy(plan->d);
    cublasLtMatmulDescDestroy(plan->desc);
    delete plan;
  }
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

GemmContext::Plan& GemmContext::GetPlan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  const auto [m, n, k, has_bias, out_type] = key;
  auto* plan = new Plan;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t trans = CUBLAS_OP_T;
  CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)));
  if (has_bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                                sizeof(epilogue)));
    const cudaDataType_t bias_type = CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                sizeof(bias_type)));
  }
  const cudaDataType_t d_type = out_type == OutType::kF32 ? CUDA_R_32F : CUDA_R_16BF;
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->a, CUDA_R_16BF, k, n, k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->b, CUDA_R_16BF, k, m, k));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan->d, d_type, n, m, n));

  const std::vector<cublasLtMatmulHeuristicResult_t> results = Heuristics(*plan, 1);
  if (results.empty())
    CudaFail("cublasLtMatmulAlgoGetHeuristic", "no algorithm for this shape", __FILE__, __LINE__);
  plan->algo = results[0].algo;
  plans_.emplace(key, plan);
  return *plan;
}

std::vector<cublasLtMatmulHeuristicResult_t> GemmContext::Heuristics(const Plan& plan, int count) {
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                    &kWorkspaceBytes, sizeof(kWorkspaceBytes)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(count);
  int found = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle_, plan.desc, plan.a, plan.b, plan.d, plan.d, pref, count,
                                              results.data(), &found));
  cublasLtMatmulPreferenceDestroy(pref);
  results.resize(found);
  return results;
}

bool GemmContext::UseAlgorithm(int m, int n, int k, bool has_bias, OutType out_type, int rank) {
  Plan& plan = GetPlan({m, n, k, has_bias, out_type});
  const std::vector<cublasLtMatmulHeuristicResult_t> results = Heuristics(plan, rank + 1);
  if (rank >= static_cast<int>(results.size())) return false;
  plan.algo = results[rank].algo;
  return true;
}

bool GemmContext::UseSplitK(int m, int n, int k, bool has_bias, OutType out_type, int rank, int splits) {
  Plan& plan = GetPlan({m, n, k, has_bias, out_type});
  const std::vector<cublasLtMatmulHeuristicResult_t> results = Heuristics(plan, rank + 1);
  if (rank >= static_cast<int>(results.size())) return false;
  cublasLtMatmulAlgo_t algo = results[rank].algo;
  int32_t support = 0;
  size_t written = 0;
  CUBLAS_CHECK(cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &support,
                                                 sizeof(support), &written));
  if (splits > 1 && support == 0) return false;
  const int32_t num = splits;
  CUBLAS_CHECK(
      cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &num, sizeof(num)));
  if (splits > 1) {
    const uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    CUBLAS_CHECK(cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &scheme,
                                                      sizeof(scheme)));
  }
  cublasLtMatmulHeuristicResult_t check{};
  if (cublasLtMatmulAlgoCheck(handle_, plan.desc, plan.a, plan.b, plan.d, plan.d, &algo, &check) !=
          CUBLAS_STATUS_SUCCESS ||
      check.workspaceSize > kWorkspaceBytes) {
    return false;
  }
  plan.algo = algo;
  return true;
}

void GemmContext::Linear(const __nv_bfloat16* x, const __nv_bfloat16* w, const __nv_bfloat16* bias, void* y,
                         OutType out_type, int m, int n, int k, cudaStream_t stream) {
  if (m == 0) return;
  Plan& plan = GetPlan({m, n, k, bias != nullptr, out_type});
  if (bias != nullptr) {
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  }
  const float alpha = 1.f, beta = 0.f;
  CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &alpha, w, plan.a, x, plan.b, &beta, y, plan.d, y, plan.d,
                              &plan.algo, workspace_, kWorkspaceBytes, stream));
}

}  // namespace doze::kernels
