// FailingChecks with hand-picked times: how long one worker's health checks have failed in a row.
#include "gateway/dispatch/failing_checks.h"

#include <memory>

#include "gtest/gtest.h"

namespace doze::gateway {
namespace {

// Only its identity matters here.
class IdleClient : public WorkerClient {
 public:
  void CheckHealth(absl::Duration, std::function<void(bool)>) override {}
  std::shared_ptr<GenerateCall> Generate(const v1::GenerateRequest&,
                                         std::shared_ptr<GenerateObserver>) override {
    return nullptr;
  }
  void Stats(absl::Duration, std::function<void(absl::StatusOr<v1::StatsResponse>)>) override {}
  void Sleep(absl::Duration, std::function<void(absl::Status)>) override {}
  void Wake(absl::Duration, std::function<void(absl::Status)>) override {}
  void Drain(absl::Duration, std::function<void(absl::Status)>) override {}
};

const absl::Time kStart = absl::FromUnixSeconds(1'800'000'000);

TEST(FailingChecksTest, CountsFromTheFirstFailureOfARun) {
  auto worker = std::make_shared<IdleClient>();
  FailingChecks checks;
  EXPECT_EQ(checks.Record(worker, false, kStart), absl::ZeroDuration());
  EXPECT_EQ(checks.Record(worker, false, kStart + absl::Seconds(3)), absl::Seconds(3));
  EXPECT_EQ(checks.Record(worker, false, kStart + absl::Seconds(10)), absl::Seconds(10));
}

TEST(FailingChecksTest, AnAnswerEndsTheRun) {
  auto worker = std::make_shared<IdleClient>();
  FailingChecks checks;
  checks.Record(worker, false, kStart);
  EXPECT_EQ(checks.Record(worker, true, kStart + absl::Seconds(5)), absl::ZeroDuration());
  EXPECT_EQ(checks.Record(worker, false, kStart + absl::Seconds(6)), absl::ZeroDuration());
  EXPECT_EQ(checks.Record(worker, false, kStart + absl::Seconds(8)), absl::Seconds(2));
}

TEST(FailingChecksTest, AnotherWorkerStartsAfresh) {
  auto dead = std::make_shared<IdleClient>();
  auto next = std::make_shared<IdleClient>();
  FailingChecks checks;
  checks.Record(dead, false, kStart);
  EXPECT_EQ(checks.Record(dead, false, kStart + absl::Seconds(9)), absl::Seconds(9));
  EXPECT_EQ(checks.Record(next, false, kStart + absl::Seconds(10)), absl::ZeroDuration());
  EXPECT_EQ(checks.Record(next, false, kStart + absl::Seconds(11)), absl::Seconds(1));
  // The worker last checked goes away and one made since (perhaps at the same address) starts afresh.
  next.reset();
  auto later = std::make_shared<IdleClient>();
  EXPECT_EQ(checks.Record(later, false, kStart + absl::Seconds(12)), absl::ZeroDuration());
}

}  // namespace
}  // namespace doze::gateway
