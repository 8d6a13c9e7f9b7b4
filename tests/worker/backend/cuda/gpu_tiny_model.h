// The tiny random model the CUDA runner tests share, and the check that a GPU is there.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "tests/worker/backend/tiny_model.h"

namespace doze::testing {

// TinyConfig within the CUDA kernels' constraints: head_dim 64, sizes divisible by 8; 4 query heads share
// each KV head.
inline ModelConfig GpuTinyConfig() {
  ModelConfig c = TinyConfig();
  c.hidden_size = 128;
  c.intermediate_size = 256;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.vocab_size = 1003;
  c.max_position_embeddings = 4096;
  return c;
}

// Why GPU tests must skip here, or "" when a CUDA device is present.
inline std::string NoGpuReason() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) return "no CUDA device";
  return "";
}

}  // namespace doze::testing
