// Minimal leveled logging to stderr: DOZE_LOG(INFO) << "..." ; FATAL aborts after printing.
#pragma once

#include <sstream>
#include <string_view>

namespace doze {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3, kFatal = 4 };

// Messages below this level are dropped (default kInfo; DOZE_LOG_LEVEL=debug|info|warning|error overrides).
LogLevel MinLogLevel();
void SetMinLogLevel(LogLevel level);

// Collects one message and writes it, with level, time and source location, when destroyed.
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace doze

#define DOZE_LOG_DEBUG ::doze::LogLevel::kDebug
#define DOZE_LOG_INFO ::doze::LogLevel::kInfo
#define DOZE_LOG_WARNING ::doze::LogLevel::kWarning
#define DOZE_LOG_ERROR ::doze::LogLevel::kError
#define DOZE_LOG_FATAL ::doze::LogLevel::kFatal

#define DOZE_LOG(level)                           \
  if (DOZE_LOG_##level < ::doze::MinLogLevel()) { \
  } else                                          \
    ::doze::LogMessage(DOZE_LOG_##level, __FILE__, __LINE__).stream()

// Aborts with the condition's text when it is false: for invariants, never for input validation.
#define DOZE_CHECK(cond) \
  if (cond) {            \
  } else                 \
    ::doze::LogMessage(::doze::LogLevel::kFatal, __FILE__, __LINE__).stream() << "Check failed: " #cond " "
