// doze_hop_bench: what one dependent kernel hop costs on this GPU, the latency floor under every decode
// kernel boundary. A CUDA graph of a chain of kernels, each reading the 4 KB its predecessor wrote and
// writing its own (the shape of a decode step's hand-offs, without the weights), timed as doze_kernel_bench
// times its kernels (bench/kernel_bench_util.h's TimeInGraph: the median of the graph's replays); the time
// per kernel is the hop. Three ways to order the chain:
//   stream     plain stream order: a kernel starts once the one before has completed;
//   pdl        programmatic dependent launch: each kernel lets the next launch right after its
//              griddepcontrol.wait (as every decode kernel does), so the next one's blocks are resident and
//              waiting when this one ends;
//   pdl_flag   the same launch, but the wait is a counter in global memory that every block of the producer
//              bumps after its stores (release) and the consumer's blocks poll (acquire), instead of
//              griddepcontrol.wait;
//   pdl_tagged the same launch, no counter and no wait before the reads: the producer stores each value with
//              its kernel's tag in one 64-bit word (no fence), and the consumer's threads poll the words they
//              read until each holds the tag it expects; griddepcontrol.wait only at the kernel's end (so
//              that completion still follows stream order);
//   tagged_nowait  the same without that final wait (only to see what it costs).
// Beside them, what the same hand-off costs inside one kernel between the blocks of a thread-block cluster
// (cluster_sync: each block writes its values to its shared memory, a cluster barrier, each reads its
// neighbour's through distributed shared memory; double-buffered, so one barrier a round), in clusters of 8,
// 4 or 2 blocks (the largest that divides the grid).
// For grids of 14 to 264 blocks, and blocks taking 120 KB or 100 KB of shared memory (one or two a
// multiprocessor, so the consumer's blocks cannot start beside the producer's, as with the batch-1 GEMVs).
// Prints one JSON line and a table.
//
// usage: doze_hop_bench [KERNELS]   (chain length, default 200)
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "bench/kernel_bench_util.h"
#include "kernels/cuda_check.h"

namespace {

enum class Order { kStream, kPdl, kPdlFlag, kPdlTagged, kTaggedNoWait };
constexpr const char* kOrderNames[] = {"stream", "pdl", "pdl_flag", "pdl_tagged", "tagged_nowait"};
constexpr int kOrders = static_cast<int>(std::size(kOrderNames));
constexpr int kThreads = 256;
constexpr int kVector = 1024;  // floats each kernel reads

struct HopArgs {
  const float* in;        // [kVector]: the predecessor's output
  float* out;             // [max(kVector, blocks * 8)]
  const unsigned* ready;  // kPdlFlag: the predecessor's counter (nullptr for the first kernel)
  unsigned ready_target;  // the predecessor's block count
  unsigned* done;         // kPdlFlag: this kernel's counter
  Order order;
  // kPdlTagged, kTaggedNoWait: the predecessor's words (nullptr for the first kernel), `in_count` of them,
  // and this kernel's; a word is a value's fp32 bits (low half) and its writer's tag (high half).
  const unsigned long long* words_in;
  int in_count;
  unsigned long long* words_out;  // [blocks * 8]
  unsigned tag;                   // this kernel's (the chain's index + 1); its predecessor's is tag - 1
};

__host__ __device__ bool Tagged(Order order) {
  return order == Order::kPdlTagged || order == Order::kTaggedNoWait;
}

// The sum of the predecessor's words once each holds its tag.
__device__ float SumTaggedWords(const HopArgs& a) {
  float sum = 0.f;
  if (a.words_in == nullptr) return sum;
  for (int i = threadIdx.x; i < a.in_count; i += kThreads) {
    unsigned long long w;
    do {
      asm volatile("ld.relaxed.gpu.global.u64 %0, [%1];" : "=l"(w) : "l"(a.words_in + i) : "memory");
    } while (static_cast<unsigned>(w >> 32) != a.tag - 1);
    sum += __uint_as_float(static_cast<unsigned>(w));
  }
  return sum;
}

__device__ __forceinline__ void WaitForPredecessor(const HopArgs& a) {
  if (a.order == Order::kPdl) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
  } else if (a.order == Order::kPdlFlag) {
    if (threadIdx.x == 0 && a.ready != nullptr) {
      unsigned seen = 0;
      do {
        asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(seen) : "l"(a.ready) : "memory");
      } while (seen < a.ready_target);
    }
    __syncthreads();
  }
  if (a.order != Order::kStream) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

__global__ void __launch_bounds__(kThreads) HopKernel(HopArgs a) {
  extern __shared__ float partial[];  // [kThreads]; the rest only sets the blocks a multiprocessor
  if (Tagged(a.order)) {
    partial[threadIdx.x] = SumTaggedWords(a);
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    __syncthreads();
    if (threadIdx.x < 8) {
      const unsigned long long w =
          static_cast<unsigned long long>(a.tag) << 32 | __float_as_uint(partial[threadIdx.x] + 1.f);
      asm volatile("st.relaxed.gpu.global.u64 [%0], %1;" ::"l"(a.words_out + blockIdx.x * 8 + threadIdx.x),
                   "l"(w)
                   : "memory");
    }
    if (a.order == Order::kPdlTagged) asm volatile("griddepcontrol.wait;" ::: "memory");
    return;
  }
  WaitForPredecessor(a);
  float sum = 0.f;
  for (int i = threadIdx.x; i < kVector; i += kThreads) sum += a.in[i];
  partial[threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.x < 8) a.out[blockIdx.x * 8 + threadIdx.x] = partial[threadIdx.x] + 1.f;
  if (a.order == Order::kPdlFlag) {
    __syncthreads();
    if (threadIdx.x == 0) {
      __threadfence();
      atomicAdd(a.done, 1u);
    }
  }
}

// `rounds` hand-offs between the blocks of each cluster, one cluster barrier each.
__global__ void __launch_bounds__(kThreads) ClusterSyncKernel(float* out, int rounds) {  // out: [blocks * 8]
  extern __shared__ float values[];  // [2][kThreads]; the rest only sets the blocks a multiprocessor
  cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
  const unsigned next = (cluster.block_rank() + 1) % cluster.num_blocks();
  float v = static_cast<float>(threadIdx.x);
  for (int r = 0; r < rounds; ++r) {
    float* mine = values + (r & 1) * kThreads;
    mine[threadIdx.x] = v;
    cluster.sync();
    v = 0.5f * v + cluster.map_shared_rank(mine, next)[threadIdx.x];
  }
  cluster.sync();  // no block leaves while a neighbour may still read its shared memory
  if (threadIdx.x < 8) out[blockIdx.x * 8 + threadIdx.x] = v;
}

struct Case {
  int blocks, shared_kb;
};

int ClusterSize(int blocks) { return blocks % 8 == 0 ? 8 : blocks % 4 == 0 ? 4 : 2; }

// The launch of `blocks` blocks of `shared_bytes`, in clusters of `cluster` blocks (1: none) or, with `pdl`,
// allowed to start before the kernel before it has finished.
struct Launch {
  cudaLaunchAttribute attribute{};
  cudaLaunchConfig_t config{};

  Launch(int blocks, size_t shared_bytes, cudaStream_t stream, bool pdl, int cluster = 1) {
    config.gridDim = dim3(blocks);
    config.blockDim = dim3(kThreads);
    config.dynamicSmemBytes = shared_bytes;
    config.stream = stream;
    config.attrs = &attribute;
    if (cluster > 1) {
      attribute.id = cudaLaunchAttributeClusterDimension;
      attribute.val.clusterDim = {static_cast<unsigned>(cluster), 1, 1};
      config.numAttrs = 1;
    } else if (pdl) {
      attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
      attribute.val.programmaticStreamSerializationAllowed = 1;
      config.numAttrs = 1;
    }
  }
};

// Microseconds per round of ClusterSyncKernel (one launch of `rounds` rounds in a graph, the median replay).
double TimeClusterSync(const Case& c, int rounds, float* out, cudaStream_t stream) {
  const Launch launch(c.blocks, std::max<size_t>(c.shared_kb * 1024, 2 * kThreads * sizeof(float)), stream,
                      /*pdl=*/false, ClusterSize(c.blocks));
  const double us = doze::bench::TimeInGraph(
      stream, [&](int) { CUDA_CHECK(cudaLaunchKernelEx(&launch.config, ClusterSyncKernel, out, rounds)); },
      1);
  return us / rounds;
}

// Microseconds per kernel of `kernels` chained kernels in one graph (the median replay); the graph's first
// node zeroes the counters.
double TimeChain(const Case& c, Order order, int kernels, float* const (&buffers)[2], unsigned* counters,
                 unsigned long long* const (&words)[2], size_t words_bytes, cudaStream_t stream) {
  const size_t shared = std::max<size_t>(c.shared_kb * 1024, kThreads * sizeof(float));
  return doze::bench::TimeInGraph(
      stream,
      [&](int i) {
        if (i == 0) {
          CUDA_CHECK(cudaMemsetAsync(counters, 0, sizeof(unsigned) * kernels, stream));
          for (unsigned long long* w : words) CUDA_CHECK(cudaMemsetAsync(w, 0, words_bytes, stream));
        }
        const HopArgs args{buffers[i % 2],
                           buffers[(i + 1) % 2],
                           i > 0 ? counters + i - 1 : nullptr,
                           static_cast<unsigned>(c.blocks),
                           counters + i,
                           order,
                           i > 0 ? words[i % 2] : nullptr,
                           std::min(kVector, c.blocks * 8),
                           words[(i + 1) % 2],
                           static_cast<unsigned>(i + 1)};
        const Launch launch(c.blocks, shared, stream, /*pdl=*/order != Order::kStream && i > 0);
        CUDA_CHECK(cudaLaunchKernelEx(&launch.config, HopKernel, args));
      },
      kernels);
}

}  // namespace

int main(int argc, char** argv) {
  const int kernels = argc > 1 ? std::max(2, std::atoi(argv[1])) : 200;
  if (!doze::bench::HaveCudaDevice("doze_hop_bench")) return 1;
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  CUDA_CHECK(cudaFuncSetAttribute(HopKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  CUDA_CHECK(
      cudaFuncSetAttribute(ClusterSyncKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 120 * 1024));
  const std::vector<Case> cases = {{14, 0}, {72, 0}, {132, 0}, {264, 0}, {132, 120}, {264, 100}};
  int max_blocks = 0;
  for (const Case& c : cases) max_blocks = std::max(max_blocks, c.blocks);
  float* buffers[2];  // each [max(kVector, blocks * 8)]: a kernel reads one and writes the other
  for (float*& b : buffers) {
    const size_t bytes = sizeof(float) * std::max(kVector, max_blocks * 8);
    CUDA_CHECK(cudaMalloc(&b, bytes));
    CUDA_CHECK(cudaMemset(b, 0, bytes));
  }
  unsigned* counters;  // [kernels]: kernel i's blocks done (pdl_flag)
  CUDA_CHECK(cudaMalloc(&counters, sizeof(unsigned) * kernels));
  unsigned long long* words[2];  // each [max_blocks * 8]: pdl_tagged's outputs, a kernel reads one
  const size_t words_bytes = sizeof(unsigned long long) * max_blocks * 8;
  for (unsigned long long*& w : words) CUDA_CHECK(cudaMalloc(&w, words_bytes));
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  std::string json = "{\"bench\":\"doze_hop_bench\",\"device\":\"" + std::string(prop.name) +
                     "\",\"kernels\":" + std::to_string(kernels) + ",\"us_per_hop\":[";
  // A column as wide as its name, at least a figure's width.
  const auto width = [](int o) { return std::max(8, static_cast<int>(std::strlen(kOrderNames[o]))); };
  std::string table = "blocks  shared KB";
  for (int o = 0; o < kOrders; ++o)
    table += std::string(2 + width(o) - std::strlen(kOrderNames[o]), ' ') + kOrderNames[o];
  table += "  cluster_sync (us a hand-off)\n";
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    char field[96];
    std::snprintf(field, sizeof(field), "%s{\"blocks\":%d,\"shared_kb\":%d", i ? "," : "", c.blocks,
                  c.shared_kb);
    json += field;
    std::snprintf(field, sizeof(field), "%6d  %9d", c.blocks, c.shared_kb);
    table += field;
    for (int o = 0; o < kOrders; ++o) {
      const double us =
          TimeChain(c, static_cast<Order>(o), kernels, buffers, counters, words, words_bytes, stream);
      std::snprintf(field, sizeof(field), ",\"%s\":%.3f", kOrderNames[o], us);
      json += field;
      std::snprintf(field, sizeof(field), "  %*.3f", width(o), us);
      table += field;
    }
    const double cluster_us = TimeClusterSync(c, 100 * kernels, buffers[0], stream);
    std::snprintf(field, sizeof(field), ",\"cluster_sync\":%.3f,\"cluster_blocks\":%d}", cluster_us,
                  ClusterSize(c.blocks));
    json += field;
    std::snprintf(field, sizeof(field), "  %12.3f (%d a cluster)\n", cluster_us, ClusterSize(c.blocks));
    table += field;
  }
  std::printf("%s]}\n\n%s", json.c_str(), table.c_str());
  CUDA_CHECK(cudaFree(counters));
  for (unsigned long long* w : words) CUDA_CHECK(cudaFree(w));
  for (float* b : buffers) CUDA_CHECK(cudaFree(b));
  CUDA_CHECK(cudaStreamDestroy(stream));
  return 0;
}
