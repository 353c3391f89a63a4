#pragma once
// The work the server's HTTP threads hand to the batching worker, and the worker's side: one call runs a whole
// batch of mixed jobs, each kind in one batched pass. Results are plain bytes and numbers: HTTP threads never touch a
// tensor.
#include <cstdint>
#include <exception>
#include <future>
#include <string>
#include <vector>

#include "vlm/engine/engine.h"

namespace vlm::serve_detail {

/// 8-bit grayscale pixels of one image, row-major.
using Pixels = std::vector<uint8_t>;

struct JobResult {
  std::string letters;                     ///< classify, encode, decode
  std::vector<float> probabilities;        ///< classify: one per label word
  Pixels image;                            ///< decode; classify's reconstruction when asked for
  GenerateResult generated;                ///< generate
  std::vector<Pixels> images;              ///< generate: one per sample (empty for an invalid string)
  std::vector<std::vector<float>> grades;  ///< generate: the reference classifier's probabilities per sample
};

struct Job {
  enum class Kind { kClassify, kEncode, kDecode, kGenerate };
  Kind kind = Kind::kClassify;
  std::vector<float> pixels;  ///< classify, encode: channels * image_size^2 values in [0, 1], (C, H, W)
  bool reconstruction = false;
  std::string letters;        ///< decode (already checked)
  GenerateRequest generate;
  std::promise<JobResult> reply;
  bool answered = false;

  void fail(std::exception_ptr e);
  void answer(JobResult result);
};

/// Runs every job of the batch and fulfils its promise; a failure fails the jobs of its kind only.
void run_jobs(Engine& engine, std::vector<Job>& jobs);

/// The side of the engine's square one-channel images (the page draws and uploads grey squares); throws for items of
/// another shape.
int64_t square_image_size(const Engine& engine);

}  // namespace vlm::serve_detail
