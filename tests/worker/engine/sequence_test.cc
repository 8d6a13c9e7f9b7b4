#include "worker/engine/sequence.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace doze {
namespace {

using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// The counts are taken on demand; reads between appends must see exactly the output so far, never the prompt.
TEST(SequenceTest, OutputTokenCountsFollowAppends) {
  Sequence seq(1, {5, 5, 9}, SamplingParams{}, 0);
  EXPECT_TRUE(seq.output_token_counts().empty());
  seq.AppendToken(5);
  seq.AppendToken(7);
  EXPECT_THAT(seq.output_token_counts(), UnorderedElementsAre(Pair(5, 1), Pair(7, 1)));
  seq.AppendToken(7);
  seq.AppendToken(7);
  seq.AppendToken(2);
  EXPECT_THAT(seq.output_token_counts(), UnorderedElementsAre(Pair(5, 1), Pair(7, 3), Pair(2, 1)));
  EXPECT_THAT(seq.output_token_counts(), UnorderedElementsAre(Pair(5, 1), Pair(7, 3), Pair(2, 1)));
}

}  // namespace
}  // namespace doze
