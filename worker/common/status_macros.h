// Early-return helpers for absl::Status and absl::StatusOr.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DOZE_CONCAT_INNER(a, b) a##b
#define DOZE_CONCAT(a, b) DOZE_CONCAT_INNER(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define RETURN_IF_ERROR(expr)                    \
  do {                                           \
    ::absl::Status doze_status_ = (expr);        \
    if (!doze_status_.ok()) return doze_status_; \
  } while (0)

// Declares `lhs` from a StatusOr `rexpr`, returning its status when it holds an error.
#define ASSIGN_OR_RETURN(lhs, rexpr) ASSIGN_OR_RETURN_IMPL(DOZE_CONCAT(doze_statusor_, __LINE__), lhs, rexpr)
#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                          \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
