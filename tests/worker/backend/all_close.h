// Element-wise comparison with a tolerance that scales with the reference value (atol + rtol * |ref|).
#pragma once

#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace doze::testing {

// Fails (once, naming the first bad element and the count) unless |actual[i] - expected[i]| <= atol + rtol *
// |expected[i]| for every i.
template <typename A, typename E>
void ExpectAllClose(const A* actual, const E* expected, size_t n, double atol, double rtol,
                    const std::string& what = "") {
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const double a = actual[i], e = expected[i];
    if (!(std::fabs(a - e) <= atol + rtol * std::fabs(e))) {
      if (bad++ == 0) first_bad = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << n << " elements differ; first at " << first_bad
                     << ": actual " << static_cast<double>(actual[first_bad]) << ", expected "
                     << static_cast<double>(expected[first_bad]);
}

template <typename A, typename E>
void ExpectAllClose(const std::vector<A>& actual, const std::vector<E>& expected, double atol, double rtol,
                    const std::string& what = "") {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  ExpectAllClose(actual.data(), expected.data(), actual.size(), atol, rtol, what);
}

}  // namespace doze::testing
