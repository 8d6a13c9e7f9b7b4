#include "worker/cli/engine_flags.h"

namespace doze::cli {

void AddEngineOptions(po::options_description& options) {
  options.add_options()("model", po::value<std::string>()->required(), "Hugging Face model directory")(
      "backend", po::value<std::string>()->default_value("auto"), "auto | cpu | cuda")(
      "max-num-seqs", po::value<int>()->default_value(64), "sequences running at once")(
      "max-num-batched-tokens", po::value<int>()->default_value(8192), "tokens per engine step")(
      "kv-cache-tokens", po::value<int>()->default_value(0),
      "KV cache size in tokens (0: the backend's default)")("gpu-memory-fraction",
                                                            po::value<double>()->default_value(0.9, "0.9"),
                                                            "CUDA: share of GPU memory to use")(
      "threads", po::value<int>()->default_value(0), "CPU backend threads (0: every core)")(
      "async-scheduling", po::value<int>()->default_value(1),
      "1: schedule the next step while the GPU runs the current one; 0: one step at a time");
}

ModelInstanceOptions ModelInstanceOptionsFromFlags(const po::variables_map& vm) {
  ModelInstanceOptions options;
  options.model_dir = vm["model"].as<std::string>();
  options.backend = vm["backend"].as<std::string>();
  options.max_num_seqs = vm["max-num-seqs"].as<int>();
  options.max_num_batched_tokens = vm["max-num-batched-tokens"].as<int>();
  options.kv_cache_tokens = vm["kv-cache-tokens"].as<int>();
  options.gpu_memory_fraction = vm["gpu-memory-fraction"].as<double>();
  options.num_threads = vm["threads"].as<int>();
  options.async_scheduling = vm["async-scheduling"].as<int>() != 0;
  return options;
}

}  // namespace doze::cli
