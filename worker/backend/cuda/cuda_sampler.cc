#include "worker/backend/cuda/cuda_sampler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_check.h"
#include "kernels/sampling.h"
#include "worker/common/status_macros.h"

namespace doze {

CudaSampler::Arrays CudaSampler::Carve(void* base, int num_rows, size_t* bytes) {
  cuda::BumpAllocator bump(base);
  Arrays a;
  a.seed = bump.Take<uint64_t>(num_rows);
  a.step = bump.Take<uint64_t>(num_rows);
  a.temperature = bump.Take<float>(num_rows);
  a.top_p = bump.Take<float>(num_rows);
  a.min_p = bump.Take<float>(num_rows);
  a.top_k = bump.Take<int32_t>(num_rows);
  a.out = bump.Take<int32_t>(num_rows);
  a.workspace = bump.Take<char>(kernels::SamplingWorkspaceBytes(num_rows));
  if (bytes != nullptr) *bytes = bump.used();
  return a;
}

CudaSampler::CudaSampler(cudaStream_t stream) : stream_(stream) {
  for (Slot& slot : slots_) CUDA_CHECK(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming));
}

CudaSampler::~CudaSampler() {
  for (Slot& slot : slots_) {
    if (slot.done != nullptr) cudaEventDestroy(slot.done);
  }
}

absl::Status CudaSampler::EnsureCapacity(int num_rows) {
  if (num_rows <= capacity_) return absl::OkStatus();
  // The buffers about to be replaced may still be read by enqueued work (a sampling not waited for, or a
  // step reading last_tokens()); tokens only on the device move to pinned memory first.
  for (Slot& slot : slots_) {
    if (slot.unpublished()) CopyTokens(slot);
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  const int capacity = std::max(num_rows, 2 * capacity_);
  size_t bytes = 0;
  Carve(nullptr, capacity, &bytes);
  // A pending slot's tokens are copied into the new staging first: Wait reads them from there.
  std::vector<int32_t> pending_tokens[2];
  for (int i = 0; i < 2; ++i) {
    if (!slots_[i].pending) continue;
    const int32_t* out = Carve(slots_[i].params.get(), capacity_).out;
    pending_tokens[i].assign(out, out + slots_[i].rows);
  }
  RETURN_IF_ERROR(params_.Allocate(bytes, "sampling parameters"));
  for (int i = 0; i < 2; ++i) {
    RETURN_IF_ERROR(slots_[i].params.Allocate(bytes, "sampling parameters (host)"));
    std::copy(pending_tokens[i].begin(), pending_tokens[i].end(),
              Carve(slots_[i].params.get(), capacity).out);
  }
  capacity_ = capacity;
  return absl::OkStatus();
}

absl::Status CudaSampler::ApplyEdits(float* logits, absl::Span<const DeviceSamplingRow> rows, int vocab) {
  size_t count = 0;
  for (const DeviceSamplingRow& row : rows) count += row.edits.size();
  if (count == 0) return absl::OkStatus();
  const Slot& other = slots_[next_slot_ ^ 1];
  if (other.pending) CUDA_CHECK(cudaEventSynchronize(other.done));
  if (count > edit_capacity_) {
    const size_t capacity = std::max(count, 2 * edit_capacity_);
    RETURN_IF_ERROR(edits_.Allocate(capacity * sizeof(kernels::LogitEdit), "logit edits"));
    RETURN_IF_ERROR(host_edits_.Allocate(capacity * sizeof(kernels::LogitEdit), "logit edits (host)"));
    edit_capacity_ = capacity;
  }
  auto* host = static_cast<kernels::LogitEdit*>(host_edits_.get());
  size_t i = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    for (const LogitEdit& e : rows[r].edits) {
      if (e.token_id < 0 || e.token_id >= vocab) {
        return absl::InvalidArgumentError(
            absl::StrCat("logit edit for token id ", e.token_id, " outside [0, ", vocab, ")"));
      }
      host[i++] = kernels::LogitEdit{static_cast<int32_t>(r), e.token_id, e.bias, e.repetition, e.subtract};
    }
  }
  auto* device = static_cast<kernels::LogitEdit*>(edits_.get());
  CUDA_CHECK(
      cudaMemcpyAsync(device, host, count * sizeof(kernels::LogitEdit), cudaMemcpyHostToDevice, stream_));
  kernels::ApplyLogitEdits(logits, device, static_cast<int>(count), vocab, stream_);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> CudaSampler::Sample(float* logits,
                                                         absl::Span<const DeviceSamplingRow> rows,
                                                         int vocab) {
  RETURN_IF_ERROR(Enqueue(logits, rows, vocab));
  return Wait();
}

absl::StatusOr<CudaSampler::Slot*> CudaSampler::FreeSlot() {
  Slot& slot = slots_[next_slot_];
  if (slot.pending) return absl::FailedPreconditionError("two samplings are waiting to be collected already");
  return &slot;
}

absl::Status CudaSampler::Enqueue(float* logits, absl::Span<const DeviceSamplingRow> rows, int vocab) {
  ASSIGN_OR_RETURN(Slot* const slot, FreeSlot());
  if (latest().unpublished()) CopyTokens(latest());  // before this sampling writes over them
  const int n = static_cast<int>(rows.size());
  RETURN_IF_ERROR(EnsureCapacity(std::max(n, 1)));
  RETURN_IF_ERROR(ApplyEdits(logits, rows, vocab));
  const Arrays host = Carve(slot->params.get(), capacity_);
  for (int i = 0; i < n; ++i) {
    host.temperature[i] = rows[i].temperature;
    host.top_k[i] = rows[i].top_k;
    host.top_p[i] = rows[i].top_p;
    host.min_p[i] = rows[i].min_p;
    host.seed[i] = rows[i].seed;
    host.step[i] = rows[i].step;
  }
  const Arrays device = Carve(params_.get(), capacity_);
  if (n > 0) {
    // The inputs are everything before `out`: one copy.
    const size_t input_bytes = reinterpret_cast<char*>(host.out) - reinterpret_cast<char*>(host.seed);
    CUDA_CHECK(cudaMemcpyAsync(device.seed, host.seed, input_bytes, cudaMemcpyHostToDevice, stream_));
    kernels::SamplingParams params{device.temperature, device.top_k, device.top_p,
                                   device.min_p,       device.seed,  device.step};
    const auto filtered = [vocab](const DeviceSamplingRow& row) {
      return kernels::UsesSamplingFilters(row.top_k, row.top_p, row.min_p, vocab);
    };
    params.any_temperature_alone = std::any_of(rows.begin(), rows.end(), [&](const DeviceSamplingRow& row) {
      return row.temperature > 0.f && !filtered(row);
    });
    params.any_filtered = std::any_of(rows.begin(), rows.end(), [&](const DeviceSamplingRow& row) {
      return row.temperature > 0.f && filtered(row);
    });
    kernels::SampleRows(logits, params, device.out, device.workspace, n, vocab, stream_);
  }
  FinishSlot(*slot, n);
  return absl::OkStatus();
}

absl::Status CudaSampler::Reserve(int num_rows) { return EnsureCapacity(num_rows); }

int32_t* CudaSampler::ChosenTokens(int num_rows) const {
  return num_rows <= capacity_ ? Carve(params_.get(), capacity_).out : nullptr;
}

absl::Status CudaSampler::EnqueueChosen(int num_rows) {
  ASSIGN_OR_RETURN(Slot* const slot, FreeSlot());
  if (latest().unpublished()) {
    return absl::FailedPreconditionError(
        "the step wrote its tokens over the previous sampling's, which no step's inputs had taken");
  }
  if (num_rows > capacity_) {
    return absl::FailedPreconditionError(
        absl::StrCat(num_rows, " chosen tokens, more than the ", capacity_, " reserved"));
  }
  FinishSlot(*slot, num_rows);
  return absl::OkStatus();
}

void CudaSampler::FinishSlot(Slot& slot, int num_rows) {
  CUDA_CHECK(cudaEventRecord(slot.done, stream_));
  slot.rows = num_rows;
  slot.pending = true;
  slot.published = num_rows == 0;
  next_slot_ ^= 1;
}

void CudaSampler::CopyTokens(Slot& slot) {
  const int32_t* device_out = Carve(params_.get(), capacity_).out;
  int32_t* host_out = Carve(slot.params.get(), capacity_).out;
  CUDA_CHECK(
      cudaMemcpyAsync(host_out, device_out, slot.rows * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaEventRecord(slot.done, stream_));
  slot.published = true;
}

CudaSampler::Unpublished CudaSampler::UnpublishedTokens() const {
  if (!latest().unpublished()) return {};
  return {Carve(latest().params.get(), capacity_).out, latest().rows};
}

void CudaSampler::TokensPublished() {
  CUDA_CHECK(cudaEventRecord(latest().done, stream_));
  latest().published = true;
}

absl::StatusOr<std::vector<int32_t>> CudaSampler::Wait() {
  Slot& slot = slots_[oldest_slot_];
  if (!slot.pending) return absl::FailedPreconditionError("no sampling to wait for");
  if (slot.unpublished()) CopyTokens(slot);  // no step since took them
  CUDA_CHECK(cudaEventSynchronize(slot.done));
  const int32_t* out = Carve(slot.params.get(), capacity_).out;
  slot.pending = false;
  oldest_slot_ ^= 1;
  return std::vector<int32_t>(out, out + slot.rows);
}

const int32_t* CudaSampler::last_tokens() const {
  return capacity_ == 0 ? nullptr : Carve(params_.get(), capacity_).out;
}

}  // namespace doze
