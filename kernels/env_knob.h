// Measurement knobs: DOZE_* environment variables that the kernels' launchers read once, so that a variant
// can be timed against the default in one binary (kernels/PERF_NOTES.md). Host code only.
#pragma once

#include <cstdlib>

namespace doze::kernels {

// A positive integer from the environment, or `fallback` when unset or not positive.
inline int EnvInt(const char* name, int fallback) {
  const char* env = std::getenv(name);
  const int value = env != nullptr ? std::atoi(env) : 0;
  return value > 0 ? value : fallback;
}

// A switch from the environment: on unless set to 0.
inline bool EnvFlag(const char* name) {
  const char* env = std::getenv(name);
  return env == nullptr || std::atoi(env) != 0;
}

}  // namespace doze::kernels
