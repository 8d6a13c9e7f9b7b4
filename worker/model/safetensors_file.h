// Reader of the safetensors format: an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw tensor bytes. See https://github.com/huggingface/safetensors.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "worker/model/tensor.h"

namespace doze {

// One validated tensor of a safetensors file; `data` points into the file's bytes.
struct SafetensorsTensor {
  std::string name;
  TensorView view;
  size_t begin = 0;  // byte offsets within the data section (after the header)
  size_t end = 0;
};

// A parsed safetensors file. Every byte range is checked at parse time, so views never read past the bytes.
// Files are mmap'd without MAP_POPULATE (which would fault in every page before returning, ~100 ms per GB
// even from the page cache): opening costs only the header parse, and MADV_WILLNEED has the kernel read ahead
// while the caller gets on with start-up.
class SafetensorsFile {
 public:
  // Largest header accepted, as in the reference implementation: a bigger one is corrupt or hostile.
  static constexpr size_t kMaxHeaderBytes = 100 << 20;

  // Maps and parses the file at `path`; errors name the path and the problem.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  // Parses `size` bytes at `data`, which must outlive the result; `source` names the bytes in errors.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(const void* data, size_t size,
                                                                std::string_view source);

  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // The path (or source name) the file was opened from.
  const std::string& path() const { return path_; }
  // Size in bytes of the whole file.
  size_t size() const { return size_; }
  // Tensors in the order of their data in the file.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  // The tensor called `name`, or nullptr.
  const SafetensorsTensor* Find(std::string_view name) const;
  // The header's optional "__metadata__" string map.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  absl::Status ParseBytes();

  std::string path_;
  const char* bytes_ = nullptr;
  size_t size_ = 0;
  void* mapping_ = nullptr;  // set when this object owns an mmap of `size_` bytes
  std::vector<SafetensorsTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

// Parses a safetensors dtype name ("F32", "F16", "BF16"); false for any other.
bool ParseDType(std::string_view name, DType* dtype);

}  // namespace doze
