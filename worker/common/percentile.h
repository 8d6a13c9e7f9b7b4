// Percentiles of a sample.
#pragma once

#include <vector>

namespace doze {

// Returns the nearest-rank percentile `p` (0-100) of `values`; 0 when empty.
double Percentile(std::vector<double> values, double p);

}  // namespace doze
