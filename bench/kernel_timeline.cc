#include "bench/kernel_timeline.h"

#include <cupti.h>
#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace doze::bench {
namespace {

constexpr size_t kBufferBytes = 8 << 20;

std::mutex mu;
std::vector<KernelSpan>* spans = new std::vector<KernelSpan>();  // guarded by mu; never freed

void CheckCupti(CUptiResult result, const char* what) {
  if (result == CUPTI_SUCCESS) return;
  const char* message = nullptr;
  cuptiGetResultString(result, &message);
  std::fprintf(stderr, "doze_kernel_bench: %s: %s\n", what, message != nullptr ? message : "CUPTI error");
  std::exit(1);
}

// "void doze::kernels::(anonymous namespace)::Foo<64, true>(Params, int)" -> "Foo".
std::string ShortName(const char* mangled) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(mangled, nullptr, nullptr, &status),
                                                   std::free);
  std::string name = status == 0 ? demangled.get() : mangled;
  const std::string anonymous = "(anonymous namespace)";
  for (size_t at = name.find(anonymous); at != std::string::npos; at = name.find(anonymous))
    name.erase(at, anonymous.size());
  const size_t arguments = std::min(name.find('<'), name.find('('));  // template arguments or parameters
  if (arguments != std::string::npos) name.resize(arguments);
  const size_t colon = name.rfind("::");
  if (colon != std::string::npos) name = name.substr(colon + 2);
  const size_t space = name.rfind(' ');
  return space == std::string::npos ? name : name.substr(space + 1);
}

void CUPTIAPI BufferRequested(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = kBufferBytes;
  *max_records = 0;
}

void CUPTIAPI BufferCompleted(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid_bytes) {
  CUpti_Activity* record = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  while (cuptiActivityGetNextRecord(buffer, valid_bytes, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* copy = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
      const char* kind = copy->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_HTOD   ? "MemcpyHtoD"
                         : copy->copyKind == CUPTI_ACTIVITY_MEMCPY_KIND_DTOH ? "MemcpyDtoH"
                                                                             : "Memcpy";
      spans->push_back({kind, {static_cast<int>(copy->bytes), 0, 0}, copy->start, copy->end});
      continue;
    }
    if (record->kind != CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) continue;
    const auto* kernel = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
    spans->push_back(
        {ShortName(kernel->name), {kernel->gridX, kernel->gridY, kernel->gridZ}, kernel->start, kernel->end});
  }
  std::free(buffer);
}

}  // namespace

void StartKernelTimeline() {
  static const bool registered = [] {
    CheckCupti(cuptiActivityRegisterCallbacks(BufferRequested, BufferCompleted),
               "cuptiActivityRegisterCallbacks");
    return true;
  }();
  (void)registered;
  {
    std::lock_guard<std::mutex> lock(mu);
    spans->clear();
  }
  CheckCupti(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityEnable");
  CheckCupti(cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY), "cuptiActivityEnable");
}

std::vector<KernelSpan> StopKernelTimeline() {
  CheckCupti(cuptiActivityFlushAll(1), "cuptiActivityFlushAll");
  CheckCupti(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL), "cuptiActivityDisable");
  CheckCupti(cuptiActivityDisable(CUPTI_ACTIVITY_KIND_MEMCPY), "cuptiActivityDisable");
  std::lock_guard<std::mutex> lock(mu);
  std::vector<KernelSpan> out = *spans;
  std::sort(out.begin(), out.end(),
            [](const KernelSpan& a, const KernelSpan& b) { return a.start_ns < b.start_ns; });
  return out;
}

}  // namespace doze::bench
