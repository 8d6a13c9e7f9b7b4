// One macro family for CUDA and cuBLAS(Lt) calls: a failure prints the failed statement, the error, file and
// line, then aborts. After start-up a CUDA error is unrecoverable for us: the worker exits and the gateway
// restarts it.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace doze::kernels {

// Prints "CUDA error: <what> failed: <reason> at file:line" and aborts.
[[noreturn]] inline void CudaFail(const char* what, const char* reason, const char* file, int line) {
  std::fprintf(stderr, "CUDA error: %s failed: %s at %s:%d\n", what, reason, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace doze::kernels

#define CUDA_CHECK(stmt)                                                                        \
  do {                                                                                          \
    cudaError_t doze_cuda_err_ = (stmt);                                                        \
    if (doze_cuda_err_ != cudaSuccess) {                                                        \
      ::doze::kernels::CudaFail(#stmt, cudaGetErrorString(doze_cuda_err_), __FILE__, __LINE__); \
    }                                                                                           \
  } while (0)

#define CUBLAS_CHECK(stmt)                                                                                \
  do {                                                                                                    \
    cublasStatus_t doze_cublas_status_ = (stmt);                                                          \
    if (doze_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                                   \
      ::doze::kernels::CudaFail(#stmt, cublasLtGetStatusString(doze_cublas_status_), __FILE__, __LINE__); \
    }                                                                                                     \
  } while (0)

// Checks the launch just made (bad grid, too much shared memory, a sticky earlier error).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
