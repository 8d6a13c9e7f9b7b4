// libFuzzer target for the safetensors reader: arbitrary bytes are parsed as a file (bad ones must be refused
// with a message, nothing may crash), and every tensor of an accepted file is read at both ends, so a view
// reaching past the bytes shows up under AddressSanitizer.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "worker/model/safetensors_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly `size` bytes, so AddressSanitizer flags any read past the end.
  std::vector<uint8_t> bytes(data, data + size);
  auto file = doze::SafetensorsFile::Parse(bytes.data(), bytes.size(), "fuzz");
  if (!file.ok()) {
    if (file.status().message().empty()) std::abort();  // every refusal must say why
    return 0;
  }
  std::vector<float> values(16);
  for (const doze::SafetensorsTensor& tensor : (*file)->tensors()) {
    if ((*file)->Find(tensor.name) != &tensor) std::abort();
    const int64_t n = tensor.view.num_elements();
    if (tensor.view.nbytes() != tensor.end - tensor.begin) std::abort();
    const int64_t count = std::min<int64_t>(n, 16);
    if (count == 0) continue;
    doze::ToFloat(tensor.view, 0, count, values.data());
    doze::ToFloat(tensor.view, n - count, count, values.data());
  }
  return 0;
}
