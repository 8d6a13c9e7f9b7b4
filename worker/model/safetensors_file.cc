#include "worker/model/safetensors_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "worker/common/json_util.h"
#include "worker/common/status_macros.h"

namespace doze {
namespace {

using Json = nlohmann::json;

// Reads a JSON value as a size_t; false when it is not a non-negative integer.
bool GetSize(const Json& value, size_t* out) {
  if (!value.is_number_unsigned()) return false;
  *out = value.get<size_t>();
  return true;
}

// Parses a tensor entry's "shape" array into `shape` and its element count into `num_elements`.
absl::Status ParseShape(const Json& entry, const std::string& name, std::vector<int64_t>* shape,
                        size_t* num_elements) {
  auto it = entry.find("shape");
  if (it == entry.end() || !it->is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has no \"shape\" array"));
  }
  size_t count = 1;
  for (const Json& dim : *it) {
    size_t size;
    // Dimensions past 2^62 cannot describe bytes of a real file; the cap keeps int64 views exact.
    if (!GetSize(dim, &size) || size > (size_t{1} << 62)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor '", name, "' has a bad shape entry ", DescribeJson(dim)));
    }
    if (__builtin_mul_overflow(count, size, &count)) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has a shape too large to address"));
    }
    shape->push_back(static_cast<int64_t>(size));
  }
  *num_elements = count;
  return absl::OkStatus();
}

// Parses "data_offsets": [begin, end] into `tensor`.
absl::Status ParseOffsets(const Json& entry, SafetensorsTensor* tensor) {
  auto it = entry.find("data_offsets");
  if (it == entry.end() || !it->is_array() || it->size() != 2 || !GetSize((*it)[0], &tensor->begin) ||
      !GetSize((*it)[1], &tensor->end)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", tensor->name, "' needs \"data_offsets\": [begin, end] of non-negative integers"));
  }
  if (tensor->begin > tensor->end) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", tensor->name, "' has data_offsets begin ",
                                                   tensor->begin, " > end ", tensor->end));
  }
  return absl::OkStatus();
}

// Parses one header entry: dtype, shape, offsets, and that the byte range holds exactly the shape's elements.
absl::StatusOr<SafetensorsTensor> ParseEntry(const std::string& name, const Json& entry) {
  if (!entry.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is not a JSON object"));
  }
  SafetensorsTensor tensor;
  tensor.name = name;
  auto dtype = entry.find("dtype");
  if (dtype == entry.end() || !dtype->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' has no \"dtype\" string"));
  }
  if (!ParseDType(dtype->get_ref<const std::string&>(), &tensor.view.dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported dtype ", dtype->get_ref<const std::string&>(), " for tensor ", name));
  }
  size_t num_elements = 0;
  RETURN_IF_ERROR(ParseShape(entry, name, &tensor.view.shape, &num_elements));
  RETURN_IF_ERROR(ParseOffsets(entry, &tensor));
  size_t needed;
  if (__builtin_mul_overflow(num_elements, DTypeSize(tensor.view.dtype), &needed) ||
      tensor.end - tensor.begin != needed) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor '", name, "' has ", tensor.end - tensor.begin, " bytes (data_offsets [",
                     tensor.begin, ", ", tensor.end, "]) but shape [", absl::StrJoin(tensor.view.shape, ", "),
                     "] of ", std::string(DTypeName(tensor.view.dtype)), " needs ", num_elements, " x ",
                     DTypeSize(tensor.view.dtype)));
  }
  return tensor;
}

// Parses "__metadata__": a flat object of strings.
absl::Status ParseMetadata(const Json& value, std::map<std::string, std::string>* metadata) {
  if (!value.is_object()) return absl::InvalidArgumentError("\"__metadata__\" is not a JSON object");
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"__metadata__\" value of '", key, "' is not a string"));
    }
    (*metadata)[key] = item.get<std::string>();
  }
  return absl::OkStatus();
}

// Checks tensors (sorted by offset) for overlap and against the `data_size` bytes after the header.
absl::Status CheckLayout(const std::vector<SafetensorsTensor>& tensors, size_t data_size) {
  size_t covered = 0;  // end of the tensors so far, when they tile [0, covered) with no gap
  bool contiguous = true;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const SafetensorsTensor& t = tensors[i];
    if (i > 0 && t.begin < tensors[i - 1].end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensors '", tensors[i - 1].name, "' and '", t.name, "' overlap (data_offsets [",
          tensors[i - 1].begin, ", ", tensors[i - 1].end, "] and [", t.begin, ", ", t.end, "])"));
    }
    contiguous = contiguous && t.begin == covered;
    covered = t.end;
  }
  for (const SafetensorsTensor& t : tensors) {
    if (t.end <= data_size) continue;
    if (contiguous) {
      return absl::InvalidArgumentError(absl::StrCat("truncated: the header describes ", covered,
                                                     " bytes of tensor data but only ", data_size,
                                                     " bytes follow it"));
    }
    return absl::InvalidArgumentError(absl::StrCat("data_offsets [", t.begin, ", ", t.end, "] of tensor '",
                                                   t.name, "' are out of range: the data section is ",
                                                   data_size, " bytes"));
  }
  return absl::OkStatus();
}

// The first tensor name the header's object holds twice, or "" (the JSON parser keeps the last silently,
// so which data the name stands for would be a guess).
std::string FirstRepeatedName(std::string_view text) {
  absl::flat_hash_set<std::string> seen;
  std::string repeated;
  const Json::parser_callback_t note_key = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && repeated.empty() &&
        !seen.insert(parsed.get<std::string>()).second) {
      repeated = parsed.get<std::string>();
    }
    return true;
  };
  Json::parse(text.begin(), text.end(), note_key, /*allow_exceptions=*/false);
  return repeated;
}

// Parses the JSON header text (a syntax error's byte position in the message).
absl::StatusOr<Json> ParseHeaderJson(std::string_view text) {
  absl::StatusOr<Json> header = ParseJsonObject(text);
  if (!header.ok())
    return absl::InvalidArgumentError(absl::StrCat("bad JSON header: ", header.status().message()));
  if (const std::string repeated = FirstRepeatedName(text); !repeated.empty())
    return absl::InvalidArgumentError(absl::StrCat("the header names '", repeated, "' twice"));
  return header;
}

}  // namespace

bool ParseDType(std::string_view name, DType* dtype) {
  for (DType d : {DType::kF32, DType::kF16, DType::kBF16}) {
    if (name == DTypeName(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  // O_NONBLOCK: a FIFO or device under the name is refused below rather than waited on at the open.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int err = errno;
    std::string message = absl::StrCat(path, ": cannot open: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(message) : absl::InvalidArgumentError(message);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* mapping = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": mmap failed: ", std::strerror(err)));
    }
    file->mapping_ = mapping;
    file->bytes_ = static_cast<const char*>(mapping);
    // Starts readahead of pages not yet cached without waiting for it (about 2 ms for 1 GB): the weights
    // stream in while the rest of start-up runs. Only a hint, so a failure is ignored.
    ::madvise(mapping, file->size_, MADV_WILLNEED);
  }
  ::close(fd);  // the mapping keeps the file open
  RETURN_IF_ERROR(file->ParseBytes());
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Parse(const void* data, size_t size,
                                                                        std::string_view source) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = std::string(source);
  file->bytes_ = static_cast<const char*>(data);
  file->size_ = size;
  RETURN_IF_ERROR(file->ParseBytes());
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_ != nullptr) ::munmap(mapping_, size_);
}

const SafetensorsTensor* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(absl::string_view(name.data(), name.size()));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Status SafetensorsFile::ParseBytes() {
  auto fail = [this](const absl::Status& status) {
    return absl::Status(status.code(), absl::StrCat(path_, ": ", status.message()));
  };
  if (size_ < 8) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("file is ", size_, " bytes, too short for the 8-byte header length")));
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes_[i]);
  if (header_len > size_ - 8) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("header length ", header_len, " runs past the end of the file (", size_, " bytes)")));
  }
  if (header_len > kMaxHeaderBytes) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("header length ", header_len, " exceeds the limit of ", kMaxHeaderBytes)));
  }
  auto header = ParseHeaderJson(std::string_view(bytes_ + 8, header_len));
  if (!header.ok()) return fail(header.status());
  for (const auto& [key, value] : header->items()) {
    if (key == "__metadata__") {
      if (absl::Status s = ParseMetadata(value, &metadata_); !s.ok()) return fail(s);
      continue;
    }
    auto tensor = ParseEntry(key, value);
    if (!tensor.ok()) return fail(tensor.status());
    tensors_.push_back(*std::move(tensor));
  }
  std::sort(tensors_.begin(), tensors_.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    return std::pair(a.begin, a.end) < std::pair(b.begin, b.end);
  });
  const char* data = bytes_ + 8 + header_len;
  if (absl::Status s = CheckLayout(tensors_, size_ - 8 - header_len); !s.ok()) return fail(s);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    tensors_[i].view.data = data + tensors_[i].begin;
    index_[tensors_[i].name] = i;
  }
  return absl::OkStatus();
}

}  // namespace doze
