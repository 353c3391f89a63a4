#include "serve/jobs.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "vlm/core/check.h"

namespace vlm::serve_detail {

void Job::fail(std::exception_ptr e) {
  if (answered) return;
  answered = true;
  reply.set_exception(e);
}

void Job::answer(JobResult result) {
  if (answered) return;
  answered = true;
  reply.set_value(std::move(result));
}

namespace {

std::vector<Pixels> to_pixels(const at::Tensor& images) {  // (N, C, H, W) float in [0, 1] -> PNG's (H, W, C) bytes
  auto bytes =
      (images.detach().cpu().to(at::kFloat).clamp(0, 1) * 255).round().to(at::kByte).permute({0, 2, 3, 1}).contiguous();
  const int64_t n = bytes.size(0), per = bytes.numel() / std::max<int64_t>(1, n);
  std::vector<Pixels> out(n);
  const uint8_t* p = bytes.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) out[i].assign(p + i * per, p + (i + 1) * per);
  return out;
}

template <class F>
void guarded(std::vector<Job*>& group, F&& body) {
  if (group.empty()) return;
  try {
    body();
  } catch (...) {
    for (Job* j : group) j->fail(std::current_exception());
  }
}

}  // namespace

int64_t square_image_size(const Engine& engine) {
  const auto& shape = engine.item_shape();
  VLM_CHECK(shape.size() == 3 && (shape[0] == 1 || shape[0] == 3) && shape[1] == shape[2],
            "vlm serve draws square grey or RGB images (1 or 3, S, S); the run '", engine.name(),
            "' has items of shape ", at::IntArrayRef(shape));
  return shape[1];
}

void run_jobs(Engine& engine, std::vector<Job>& jobs) {
  torch::NoGradGuard no_grad;
  std::vector<Job*> images, generates, decodes;
  for (auto& j : jobs)
    (j.kind == Job::Kind::kGenerate ? generates : j.kind == Job::Kind::kDecode ? decodes : images).push_back(&j);
  const int64_t s = square_image_size(engine), c = engine.item_shape()[0];
  std::vector<JobResult> image_results(images.size()), decode_results(decodes.size());

  // Classify and encode: one encoder pass for all their images, one GPT pass for the classifications.
  guarded(images, [&] {
    auto batch = at::empty({static_cast<int64_t>(images.size()), c, s, s}, at::kFloat);
    for (size_t i = 0; i < images.size(); ++i)
      std::copy(images[i]->pixels.begin(), images[i]->pixels.end(), batch.data_ptr<float>() + i * c * s * s);
    auto letters = engine.encode(batch);
    std::vector<std::string> to_classify;
    for (size_t i = 0; i < images.size(); ++i) {
      image_results[i].letters = letters[i];
      if (images[i]->kind == Job::Kind::kClassify) to_classify.push_back(letters[i]);
    }
    if (to_classify.empty()) return;
    auto probs = engine.classify(to_classify).contiguous();
    const int64_t C = probs.size(1);
    size_t k = 0;
    for (size_t i = 0; i < images.size(); ++i)
      if (images[i]->kind == Job::Kind::kClassify) {
        const float* p = probs.data_ptr<float>() + (k++) * C;
        image_results[i].probabilities.assign(p, p + C);
      }
  });

  // Decodes, and the reconstructions classify asked for: one decoder pass.
  std::vector<std::string> to_decode;
  auto wants_reconstruction = [](const Job* j) { return j->reconstruction && !j->answered; };
  for (size_t i = 0; i < images.size(); ++i)
    if (wants_reconstruction(images[i])) to_decode.push_back(image_results[i].letters);
  for (Job* j : decodes) to_decode.push_back(j->letters);
  std::vector<Job*> decoding = decodes;
  for (Job* j : images)
    if (wants_reconstruction(j)) decoding.push_back(j);
  guarded(decoding, [&] {
    if (to_decode.empty()) return;
    auto pixels = to_pixels(engine.decode(to_decode));
    size_t k = 0;
    for (size_t i = 0; i < images.size(); ++i)
      if (wants_reconstruction(images[i])) image_results[i].image = std::move(pixels[k++]);
    for (size_t i = 0; i < decodes.size(); ++i) {
      decode_results[i].letters = decodes[i]->letters;
      decode_results[i].image = std::move(pixels[k++]);
    }
  });
  for (size_t i = 0; i < images.size(); ++i) images[i]->answer(std::move(image_results[i]));
  for (size_t i = 0; i < decodes.size(); ++i) decodes[i]->answer(std::move(decode_results[i]));

  // Generation: one sampling loop for all requests, then one decoder and one reference-classifier pass.
  guarded(generates, [&] {
    std::vector<GenerateRequest> requests;
    for (Job* j : generates) requests.push_back(j->generate);
    auto generated = engine.generate(requests);
    std::vector<std::string> valid;
    for (const auto& g : generated)
      for (const auto& l : g.letters)
        if (!l.empty()) valid.push_back(l);
    std::vector<Pixels> pixels;
    at::Tensor grades;
    if (!valid.empty()) {
      auto decoded = engine.decode(valid);
      pixels = to_pixels(decoded);
      grades = engine.grade(decoded).contiguous();
    }
    std::vector<JobResult> results(generates.size());
    size_t k = 0;
    for (size_t r = 0; r < generates.size(); ++r) {
      for (const auto& l : generated[r].letters) {
        if (l.empty()) {
          results[r].images.emplace_back();
          results[r].grades.emplace_back();
          continue;
        }
        const float* p = grades.data_ptr<float>() + k * grades.size(1);
        results[r].grades.emplace_back(p, p + grades.size(1));
        results[r].images.push_back(std::move(pixels[k++]));
      }
      results[r].generated = std::move(generated[r]);
    }
    for (size_t r = 0; r < generates.size(); ++r) generates[r]->answer(std::move(results[r]));
  });
}

}  // namespace vlm::serve_detail
