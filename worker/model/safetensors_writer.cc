#include "worker/model/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "worker/common/status_macros.h"

namespace doze {

int64_t TensorSpec::num_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string SafetensorsHeader(const std::vector<TensorSpec>& specs,
                              const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the keys in data order, which makes the header read like the file's layout.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  size_t offset = 0;
  for (const TensorSpec& spec : specs) {
    header[spec.name] = {{"dtype", DTypeName(spec.dtype)},
                         {"shape", spec.shape},
                         {"data_offsets", {offset, offset + spec.nbytes()}}};
    offset += spec.nbytes();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // keeps the tensor data 8-byte aligned
  std::string bytes(8, '\0');
  uint64_t length = json.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return bytes + json;
}

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, std::vector<TensorSpec> specs,
    const std::map<std::string, std::string>& metadata) {
  std::unique_ptr<SafetensorsWriter> writer(new SafetensorsWriter());
  writer->path_ = path;
  writer->temp_path_ = absl::StrCat(path, ".tmp.", ::getpid());
  writer->fd_ = ::open(writer->temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (writer->fd_ < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(writer->temp_path_, ": cannot create: ", std::strerror(errno)));
  }
  for (const TensorSpec& spec : specs) writer->expected_bytes_ += spec.nbytes();
  std::string header = SafetensorsHeader(specs, metadata);
  RETURN_IF_ERROR(writer->WriteAll(header.data(), header.size()));
  return writer;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) {  // never finished: leave no partial file behind
    ::close(fd_);
    ::unlink(temp_path_.c_str());
  }
}

absl::Status SafetensorsWriter::Append(const void* data, size_t nbytes) {
  if (written_bytes_ + nbytes > expected_bytes_) {
    return absl::InternalError(absl::StrCat(path_, ": more tensor bytes appended than the header describes"));
  }
  RETURN_IF_ERROR(WriteAll(data, nbytes));
  written_bytes_ += nbytes;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  if (written_bytes_ != expected_bytes_) {
    return absl::InternalError(absl::StrCat(path_, ": ", written_bytes_,
                                            " tensor bytes written, header describes ", expected_bytes_));
  }
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    ::unlink(temp_path_.c_str());
    return absl::DataLossError(absl::StrCat(temp_path_, ": close failed: ", std::strerror(errno)));
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    ::unlink(temp_path_.c_str());
    return absl::InternalError(absl::StrCat(path_, ": cannot rename into place: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::WriteAll(const void* data, size_t nbytes) {
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    ssize_t n = ::write(fd_, p, nbytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return absl::DataLossError(absl::StrCat(temp_path_, ": write failed: ", std::strerror(errno)));
    p += n;
    nbytes -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status WriteSafetensorsFile(const std::string& path, const std::vector<TensorSpec>& specs,
                                  const std::vector<std::string>& data,
                                  const std::map<std::string, std::string>& metadata) {
  if (specs.size() != data.size())
    return absl::InvalidArgumentError("one data buffer per tensor spec needed");
  ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create(path, specs, metadata));
  for (size_t i = 0; i < specs.size(); ++i) {
    if (data[i].size() != specs[i].nbytes()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", specs[i].name, ": ", data[i].size(),
                                                     " bytes given, shape needs ", specs[i].nbytes()));
    }
    RETURN_IF_ERROR(writer->Append(data[i].data(), data[i].size()));
  }
  return writer->Finish();
}

}  // namespace doze
