// CountNonFinite, GatherRows, StageStepInputs, StepPrologue, RmsNorm, AddRmsNorm and SiluMul against their
// CPU references at awkward sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "kernels/activation.h"
#include "kernels/embedding.h"
#include "kernels/nonfinite.h"
#include "kernels/rms_norm.h"
#include "kernels/rotary_kv_cache.h"
#include "kernels/step_inputs.h"
#include "kernels/step_prologue.h"
#include "tests/kernels/kernel_test_util.h"

namespace doze::kernels {
namespace {

using testing::AllClose;
using testing::DeviceArray;
using testing::PinnedArray;
using testing::RandomBf16;
using testing::ToBf16;
using testing::ToFloat;

class RowsTest : public ::testing::TestWithParam<int> {};

TEST_P(RowsTest, GatherRowsCopiesRowsAndZeroesPadding) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam(), width = 904, table_rows = 1001;
  std::mt19937 rng(rows);
  const std::vector<float> table = RandomBf16(static_cast<size_t>(table_rows) * width, -1.f, 1.f, rng);
  std::vector<int32_t> indices(rows);
  for (int32_t& i : indices) i = static_cast<int32_t>(rng() % table_rows);
  if (rows > 2) indices[1] = -1;
  DeviceArray<__nv_bfloat16> d_table(ToBf16(table)), d_out(static_cast<size_t>(rows) * width);
  DeviceArray<int32_t> d_indices(indices);
  d_out.Poison();
  GatherRows(d_indices.get(), d_table.get(), d_out.get(), rows, width, nullptr);
  std::vector<float> want(d_out.size());
  reference::GatherRows(indices.data(), table.data(), want.data(), rows, width);
  EXPECT_TRUE(AllClose(ToFloat(d_out.Download()), want, 0.f, 0.f));
}

// A step's inputs as the runner lays them out: `rows` token ids, other ints, then every row's source (a
// row of the previous step's 37 tokens, or -1 to keep its own id); the previous tokens published to host
// memory. Once with sources and published tokens, once without either.
TEST_P(RowsTest, StageStepInputsCopiesTakesAndPublishes) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam(), previous_rows = 37;
  for (bool sources : {true, false}) {
    std::mt19937 rng(rows + 5);
    const int num_ints = 3 * rows + 101 + (sources ? rows : 0);
    const int sources_offset = sources ? num_ints - rows : -1;
    PinnedArray<int32_t> host(num_ints), published(previous_rows);
    for (int i = 0; i < num_ints; ++i) host.get()[i] = static_cast<int32_t>(rng() % 151936);
    for (int r = 0; sources && r < rows; ++r)
      host.get()[sources_offset + r] = r % 3 == 1 ? -1 : static_cast<int32_t>(rng() % previous_rows);
    std::vector<int32_t> previous(previous_rows);
    for (int32_t& t : previous) t = static_cast<int32_t>(rng() % 151936);
    std::fill(published.get(), published.get() + previous_rows, -7);
    DeviceArray<int32_t> d_ints(num_ints), d_previous(previous);
    d_ints.Poison();
    const int num_published = sources ? previous_rows : 0;
    StageStepInputs(host.get(), d_ints.get(), num_ints, rows, sources_offset, d_previous.get(),
                    sources ? published.get() : nullptr, num_published, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<int32_t> want(num_ints), want_published(previous_rows, -7);
    reference::StageStepInputs(host.get(), want.data(), num_ints, rows, sources_offset, previous.data(),
                               want_published.data(), num_published);
    EXPECT_EQ(d_ints.Download(), want) << "sources " << sources;
    EXPECT_EQ(published.Copy(), want_published) << "sources " << sources;
  }
}

// With the embeddings gathered in the same kernel: the ints as without, and each row's embedding that of the
// token id the kernel wrote for it (its own, or the previous step's token it took; a padding row's -1 gives
// zeros), exactly as GatherRows copies it.
TEST_P(RowsTest, StageStepInputsGathersTheRowsEmbeddings) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam(), previous_rows = 37, vocab = 1001, width = 904;
  std::mt19937 rng(rows + 9);
  const std::vector<float> table = RandomBf16(static_cast<size_t>(vocab) * width, -1.f, 1.f, rng);
  DeviceArray<__nv_bfloat16> d_table(ToBf16(table)), d_out(static_cast<size_t>(rows) * width);
  for (bool sources : {true, false}) {
    const int num_ints = 3 * rows + 101 + (sources ? rows : 0);
    const int sources_offset = sources ? num_ints - rows : -1;
    PinnedArray<int32_t> host(num_ints);
    for (int i = 0; i < num_ints; ++i) host.get()[i] = static_cast<int32_t>(rng() % vocab);
    if (rows > 2) host.get()[2] = -1;
    for (int r = 0; sources && r < rows; ++r)
      host.get()[sources_offset + r] = r % 3 == 2 ? -1 : static_cast<int32_t>(rng() % previous_rows);
    std::vector<int32_t> previous(previous_rows);
    for (int32_t& t : previous) t = static_cast<int32_t>(rng() % vocab);
    DeviceArray<int32_t> d_ints(num_ints), d_previous(previous);
    d_ints.Poison();
    d_out.Poison();
    StageStepInputs(host.get(), d_ints.get(), num_ints, rows, sources_offset, d_previous.get(), nullptr, 0,
                    nullptr, EmbeddingGather{d_table.get(), d_out.get(), width});
    CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<int32_t> want(num_ints);
    reference::StageStepInputs(host.get(), want.data(), num_ints, rows, sources_offset, previous.data(),
                               nullptr, 0);
    EXPECT_EQ(d_ints.Download(), want) << "sources " << sources;
    std::vector<float> want_rows(d_out.size());
    reference::GatherRows(want.data(), table.data(), want_rows.data(), rows, width);
    EXPECT_TRUE(AllClose(ToFloat(d_out.Download()), want_rows, 0.f, 0.f)) << "sources " << sources;
  }
}

// The step's first kernel: the gathered rows (a padding row among them) exactly as the reference gathers
// them, their norm against the reference, and all of it, the rotary table included, bit for bit against
// GatherRows, RmsNorm and RotaryTable; once without the table (its blocks are not launched).
TEST_P(RowsTest, StepPrologueMatchesGatherNormAndTable) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam(), vocab = 1001, head_dim = 64, half = head_dim / 2;
  for (int hidden : {896, 2056}) {
    std::mt19937 rng(rows * 3 + hidden);
    const size_t n = static_cast<size_t>(rows) * hidden;
    const std::vector<float> table = RandomBf16(static_cast<size_t>(vocab) * hidden, -2.f, 2.f, rng);
    const std::vector<float> w = RandomBf16(hidden, 0.5f, 1.5f, rng);
    std::vector<int32_t> ids(rows), positions(rows);
    for (int32_t& i : ids) i = static_cast<int32_t>(rng() % vocab);
    if (rows > 2) ids[1] = -1;
    for (int32_t& p : positions) p = static_cast<int32_t>(rng() % 32768);
    const std::vector<float> inv_freq = reference::RopeInvFreq(head_dim, 1000000.0);
    DeviceArray<__nv_bfloat16> d_table(ToBf16(table)), d_w(ToBf16(w)), d_res(n), d_out(n), d_res2(n),
        d_out2(n);
    DeviceArray<int32_t> d_ids(ids), d_pos(positions);
    DeviceArray<float> d_inv_freq(inv_freq), d_cos_sin(static_cast<size_t>(rows) * head_dim),
        d_cos_sin2(d_cos_sin.size());
    for (const bool with_table : {true, false}) {
      d_res.Poison();
      d_out.Poison();
      d_cos_sin.Poison();
      float2* cos_sin = with_table ? reinterpret_cast<float2*>(d_cos_sin.get()) : nullptr;
      StepPrologue({d_ids.get(), d_table.get(), d_w.get(), d_res.get(), d_out.get(), 1e-6f, d_pos.get(),
                    d_inv_freq.get(), cos_sin, rows, hidden, head_dim},
                   nullptr);
      std::vector<float> want_res(n), want(n);
      reference::GatherRows(ids.data(), table.data(), want_res.data(), rows, hidden);
      reference::RmsNorm(nullptr, want_res.data(), w.data(), want.data(), rows, hidden, 1e-6f);
      const std::vector<float> got_res = ToFloat(d_res.Download()), got = ToFloat(d_out.Download());
      EXPECT_EQ(got_res, want_res) << "hidden " << hidden;
      EXPECT_TRUE(AllClose(got, want, 1e-2f, 1e-2f)) << "hidden " << hidden;

      GatherRows(d_ids.get(), d_table.get(), d_res2.get(), rows, hidden, nullptr);
      RmsNorm(d_res2.get(), d_w.get(), d_out2.get(), rows, hidden, 1e-6f, nullptr);
      EXPECT_EQ(got, ToFloat(d_out2.Download())) << "hidden " << hidden;
      const std::vector<float> got_cos_sin = d_cos_sin.Download();
      if (!with_table) {
        for (float v : got_cos_sin) ASSERT_TRUE(std::isnan(v)) << "the table was written without one";
        continue;
      }
      RotaryTable(d_pos.get(), d_inv_freq.get(), reinterpret_cast<float2*>(d_cos_sin2.get()), rows, head_dim,
                  nullptr);
      EXPECT_EQ(got_cos_sin, d_cos_sin2.Download()) << "hidden " << hidden << " half " << half;
    }
  }
}

TEST_P(RowsTest, RmsNormMatchesReference) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam();
  for (int hidden : {896, 72, 2056}) {  // 2,056: past the vectors a thread holds in registers
    std::mt19937 rng(rows * 7 + hidden);
    const size_t n = static_cast<size_t>(rows) * hidden;
    const std::vector<float> x = RandomBf16(n, -3.f, 3.f, rng), w = RandomBf16(hidden, 0.5f, 1.5f, rng);
    DeviceArray<__nv_bfloat16> d_x(ToBf16(x)), d_w(ToBf16(w)), d_out(n);
    d_out.Poison();
    RmsNorm(d_x.get(), d_w.get(), d_out.get(), rows, hidden, 1e-6f, nullptr);
    std::vector<float> want(n);
    reference::RmsNorm(nullptr, x.data(), w.data(), want.data(), rows, hidden, 1e-6f);
    EXPECT_TRUE(AllClose(ToFloat(d_out.Download()), want, 1e-2f, 1e-2f)) << "hidden " << hidden;
  }
}

TEST_P(RowsTest, AddRmsNormUpdatesResidualAndNormalises) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam();
  for (int hidden : {896, 2056}) {
    std::mt19937 rng(rows + 11 + hidden);
    const size_t n = static_cast<size_t>(rows) * hidden;
    std::vector<float> residual = RandomBf16(n, -4.f, 4.f, rng);
    const std::vector<float> x = RandomBf16(n, -1.f, 1.f, rng), w = RandomBf16(hidden, 0.5f, 1.5f, rng);
    DeviceArray<__nv_bfloat16> d_res(ToBf16(residual)), d_x(ToBf16(x)), d_w(ToBf16(w)), d_out(n);
    d_out.Poison();
    AddRmsNorm(d_res.get(), d_x.get(), d_w.get(), d_out.get(), rows, hidden, 1e-6f, nullptr);
    std::vector<float> want(n);
    reference::RmsNorm(residual.data(), x.data(), w.data(), want.data(), rows, hidden, 1e-6f);
    EXPECT_TRUE(AllClose(ToFloat(d_res.Download()), residual, 0.f, 0.f)) << "hidden " << hidden;
    EXPECT_TRUE(AllClose(ToFloat(d_out.Download()), want, 1e-2f, 1e-2f)) << "hidden " << hidden;
  }
}

TEST_P(RowsTest, SiluMulMatchesReference) {
  DOZE_SKIP_WITHOUT_GPU();
  const int rows = GetParam();
  for (int intermediate : {4864, 24}) {
    std::mt19937 rng(rows * 3 + intermediate);
    const std::vector<float> gate_up =
        RandomBf16(static_cast<size_t>(rows) * 2 * intermediate, -6.f, 6.f, rng);
    DeviceArray<__nv_bfloat16> d_in(ToBf16(gate_up)), d_out(static_cast<size_t>(rows) * intermediate);
    d_out.Poison();
    SiluMul(d_in.get(), d_out.get(), rows, intermediate, nullptr);
    std::vector<float> want(d_out.size());
    reference::SiluMul(gate_up.data(), want.data(), rows, intermediate);
    EXPECT_TRUE(AllClose(ToFloat(d_out.Download()), want, 1e-2f, 1e-2f)) << "intermediate " << intermediate;
  }
}

// NaN and infinities planted at the ends and inside, among random values and bf16's largest finite ones, at
// every alignment of the array's start; the count is added to what the counter held.
TEST(CountNonFiniteTest, CountsNaNsAndInfinitiesAtAnyAlignment) {
  DOZE_SKIP_WITHOUT_GPU();
  const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
  for (int64_t n : {1, 2, 17, 511, 2049, (1 << 20) + 3}) {
    for (int64_t offset : {0, 1, 3, 7}) {
      std::mt19937 rng(static_cast<uint32_t>(n * 8 + offset));
      std::vector<float> values = RandomBf16(static_cast<size_t>(n), -1e38f, 1e38f, rng);
      std::vector<float> padded(static_cast<size_t>(offset), nan);  // before the array: must not be counted
      const float planted[] = {nan, inf, -inf, -nan};
      for (int i = 0; i < 1 + static_cast<int>(n / 5000); ++i) values[rng() % n] = planted[i % 4];
      values[n - 1] = planted[n % 4];
      if (n > 2) values[0] = planted[(n + 1) % 4];
      if (n > 3) values[1] = 3.3895314e38f;  // bf16's largest finite value
      padded.insert(padded.end(), values.begin(), values.end());
      padded.push_back(nan);  // after the array
      DeviceArray<__nv_bfloat16> d_x(ToBf16(padded));
      DeviceArray<unsigned long long> d_count(std::vector<unsigned long long>{5});
      CountNonFinite(d_x.get() + offset, n, d_count.get(), nullptr);
      const int64_t want = reference::CountNonFinite(values.data(), n);
      ASSERT_GT(want, 0);
      EXPECT_EQ(d_count.Download()[0], static_cast<unsigned long long>(want + 5))
          << "n " << n << " offset " << offset;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Batch, RowsTest, ::testing::Values(1, 3, 19, 64));

}  // namespace
}  // namespace doze::kernels
