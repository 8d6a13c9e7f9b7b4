// Plain double-precision references for the CPU backend's ops and for the whole Qwen2 forward pass, written
// for reading, not speed: the loops follow the Hugging Face modelling code line by line.
#pragma once

#include <cstdint>
#include <vector>

#include "worker/model/model_config.h"
#include "worker/model/model_weights.h"

namespace doze::testing {

// Every element of `tensor`, widened to double.
std::vector<double> ToDouble(const TensorView& tensor);

// x * w / sqrt(mean(x^2) + eps) per row.
std::vector<double> RefRmsNorm(const std::vector<double>& x,  // [rows, dim]
                               const std::vector<double>& w,  // [dim]
                               double eps);

// y = x w^T + bias.
std::vector<double> RefMatmul(const std::vector<double>& x,  // [m, k]
                              const std::vector<double>& w,  // [n, k]
                              const std::vector<double>* bias, int64_t n);

// Rotates the num_heads heads of one token at `position` in place, rotate-half convention, angles in double.
void RefRope(double* x,  // [num_heads, head_dim]
             int num_heads, int head_dim, int64_t position, double theta);

// softmax(q k^T / sqrt(head_dim)) v for one query head over `context` key/value rows.
std::vector<double> RefAttendHead(const double* q,       // [head_dim]
                                  const double* keys,    // [context, head_dim]
                                  const double* values,  // [context, head_dim]
                                  int context, int head_dim);

// The whole model over `tokens` from position 0, recomputing everything without a cache: logits of every
// position.
std::vector<std::vector<double>> RefForward(const ModelConfig& config, const ModelWeights& weights,
                                            const std::vector<int32_t>& tokens);  // [num_tokens][vocab]

}  // namespace doze::testing
