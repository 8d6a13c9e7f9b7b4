// Streaming writer of safetensors files: the header first, then each tensor's bytes in order, so a file far
// larger than memory can be produced chunk by chunk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/model/tensor.h"

namespace doze {

// A tensor to be written: its name, element type and shape.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;

  // Product of the shape (1 for a scalar).
  int64_t num_elements() const;
  // Bytes of the tensor's data.
  size_t nbytes() const { return static_cast<size_t>(num_elements()) * DTypeSize(dtype); }
};

// The header bytes (8-byte length + JSON padded with spaces to a multiple of 8, as the reference writer
// pads) for tensors stored back to back in `specs` order.
std::string SafetensorsHeader(const std::vector<TensorSpec>& specs,
                              const std::map<std::string, std::string>& metadata);

// Writes a safetensors file to `path` through a temporary file renamed into place on Finish(), so readers
// never see a half-written file. Tensor bytes are appended in spec order.
class SafetensorsWriter {
 public:
  // Creates the temporary file and writes the header.
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, std::vector<TensorSpec> specs,
      const std::map<std::string, std::string>& metadata);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends `nbytes` of tensor data; the bytes of consecutive calls run through the tensors in spec order.
  absl::Status Append(const void* data, size_t nbytes);
  // Checks that every tensor's bytes were written, then closes and renames the file into place.
  absl::Status Finish();

 private:
  SafetensorsWriter() = default;
  absl::Status WriteAll(const void* data, size_t nbytes);

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  size_t expected_bytes_ = 0;  // total tensor bytes the header promises
  size_t written_bytes_ = 0;
};

// Writes a whole small file from in-memory tensors: `data[i]` holds the bytes of `specs[i]`.
absl::Status WriteSafetensorsFile(const std::string& path, const std::vector<TensorSpec>& specs,
                                  const std::vector<std::string>& data,
                                  const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

}  // namespace doze
