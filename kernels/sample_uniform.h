// The random numbers of GPU sampling, shared by the kernel and its CPU reference so both draw the same
// tokens.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DOZE_HOST_DEVICE __host__ __device__
#else
#define DOZE_HOST_DEVICE
#endif

namespace doze::kernels {

// The uniform number in (0, 1) drawn for `token` under `seed`: splitmix64 of the pair, top 24 bits.
DOZE_HOST_DEVICE inline float SampleUniform(uint64_t seed, uint32_t token) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (static_cast<uint64_t>(token) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (static_cast<float>(z >> 40) + 0.5f) * (1.0f / 16777216.0f);
}

}  // namespace doze::kernels
