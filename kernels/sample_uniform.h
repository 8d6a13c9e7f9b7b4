// The random number of one sampling draw, shared by the host Sampler (worker/engine) and the GPU kernels
// (kernels/sampling.cu) so both draw the same token for the same (seed, output index).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DOZE_HOST_DEVICE __host__ __device__
#else
#define DOZE_HOST_DEVICE
#endif

namespace doze::kernels {

// Sebastiano Vigna's splitmix64 finaliser step.
DOZE_HOST_DEVICE inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// A uniform number in [0, 1) that depends only on (seed, step): the draw of output token `step` of a sequence
// seeded with `seed`. 53 random bits, so every double in the grid is reachable.
DOZE_HOST_DEVICE inline double SeededUniform(uint64_t seed, uint64_t step) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ (step * 0xD1B54A32D192ED03ull));
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

}  // namespace doze::kernels
