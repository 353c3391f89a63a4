#include "vlm/tokenizer/image_token_codec.h"

#include <algorithm>
#include <set>

#include <ATen/ATen.h>

#include "vlm/core/check.h"
#include "vlm/io/checkpoint.h"
#include "vlm/io/png.h"
#include "vlm/tokenizer/token_string.h"

namespace vlm {

void check_alphabet(const std::string& alphabet, int64_t num_embeddings) {
  VLM_CHECK(static_cast<int64_t>(alphabet.size()) == num_embeddings, "image alphabet \"", alphabet, "\" has ",
            alphabet.size(), " letters but the codebook has ", num_embeddings,
            " codes; give one letter per code (--alphabet or --num_embeddings)");
  std::set<char> seen;
  for (size_t i = 0; i < alphabet.size(); ++i) {
    char c = alphabet[i];
    VLM_CHECK(c > ' ' && c < 127, "image alphabet \"", alphabet, "\": character ", static_cast<int>(c),
              " at position ", i, " is not printable non-space ASCII");
    VLM_CHECK(seen.insert(c).second, "image alphabet \"", alphabet, "\": letter '", c, "' at position ", i,
              " appears twice; every code needs its own letter");
  }
}

std::string codes_to_text(const at::Tensor& codes, const std::string& alphabet) {
  VLM_CHECK(codes.dim() == 1, "codes_to_text: expected codes (L), got ", codes.sizes());
  auto c = codes.to(at::kLong).cpu().contiguous();
  const int64_t* p = c.data_ptr<int64_t>();
  std::string text(c.size(0), '?');
  for (int64_t i = 0; i < c.size(0); ++i) {
    VLM_CHECK(p[i] >= 0 && p[i] < static_cast<int64_t>(alphabet.size()), "codes_to_text: code ", p[i],
              " at position ", i, " is outside the alphabet \"", alphabet, "\"");
    text[i] = alphabet[p[i]];
  }
  return text;
}

std::vector<std::string> codes_to_texts(const at::Tensor& codes, const std::string& alphabet) {
  VLM_CHECK(codes.dim() == 2, "codes_to_texts: expected codes (N, L), got ", codes.sizes());
  auto c = codes.to(at::kLong).cpu().contiguous();
  std::vector<std::string> out;
  out.reserve(c.size(0));
  for (int64_t i = 0; i < c.size(0); ++i) out.push_back(codes_to_text(c[i], alphabet));
  return out;
}

namespace {
void fill_codes(const std::string& text, const std::string& alphabet, int64_t length, int64_t* out) {
  image_text_to_code_indices(text, alphabet, length, out);
}
}  // namespace

at::Tensor text_to_codes(const std::string& text, const std::string& alphabet, int64_t length) {
  auto codes = at::empty({length}, at::kLong);
  fill_codes(text, alphabet, length, codes.data_ptr<int64_t>());
  return codes;
}

at::Tensor texts_to_codes(const std::vector<std::string>& texts, const std::string& alphabet, int64_t length) {
  auto codes = at::empty({static_cast<int64_t>(texts.size()), length}, at::kLong);  // (N, L)
  int64_t* p = codes.data_ptr<int64_t>();
  for (size_t i = 0; i < texts.size(); ++i) fill_codes(texts[i], alphabet, length, p + i * length);
  return codes;
}

ImageTokenCodec::ImageTokenCodec(VQVAE model, std::string alphabet, c10::Device device)
    : model_(std::move(model)), alphabet_(std::move(alphabet)), device_(device) {
  check_alphabet(alphabet_, model_->num_embeddings());
  model_->to(device_);
}

ImageTokenCodec ImageTokenCodec::load(const std::string& path, c10::Device device) {
  CheckpointReader reader(path, kTokenizerCheckpointKind, kTokenizerCheckpointVersion);
  const auto& meta = reader.meta();
  VLM_CHECK(meta.contains("options") && meta.contains("alphabet"), "tokenizer checkpoint ", path,
            " lacks 'options' or 'alphabet' in its meta; was it written by ImageTokenCodec::save?");
  VQVAE model(options_from_json<VQVAEOptions>(meta["options"], path + ": options"));
  reader.load_module("model", *model);
  model->eval();
  ImageTokenCodec codec(model, meta["alphabet"].get<std::string>(), device);
  codec.meta_ = meta;
  return codec;
}

void ImageTokenCodec::save(const std::string& path, const nlohmann::json& extra_meta) const {
  nlohmann::json meta = extra_meta.is_object() ? extra_meta : nlohmann::json::object();
  meta["options"] = options_to_json(model_->options);
  meta["alphabet"] = alphabet_;
  meta["codes_per_image"] = codes_per_image();
  CheckpointWriter writer(kTokenizerCheckpointKind, kTokenizerCheckpointVersion, meta);
  // Serialise from the CPU so that a checkpoint written on a GPU loads anywhere.
  if (device_.is_cpu()) {
    writer.add_module("model", *model_);
  } else {
    auto copy = std::dynamic_pointer_cast<VQVAEImpl>(model_->clone(c10::Device(c10::kCPU)));
    writer.add_module("model", *copy);
  }
  writer.save(path);
}

namespace {
// Runs `fn` on the model in eval mode without gradients, restoring the caller's mode afterwards.
template <class F>
auto in_eval(const VQVAE& model, F&& fn) {
  at::NoGradGuard no_grad;
  VQVAE m = model;
  const bool was_training = m->is_training();
  m->eval();
  struct Restore {
    VQVAE m;
    bool training;
    ~Restore() { m->train(training); }
  } restore{m, was_training};
  return fn(m);
}
}  // namespace

at::Tensor ImageTokenCodec::encode_codes(const at::Tensor& images, int64_t batch_size) const {
  VLM_CHECK(batch_size > 0, "encode_codes: batch_size must be positive, got ", batch_size);
  return in_eval(model_, [&](VQVAE& m) {
    std::vector<at::Tensor> parts;
    for (int64_t i = 0; i < images.size(0); i += batch_size) {
      auto batch = images.slice(0, i, i + batch_size).to(device_, at::kFloat);  // (b, C, H, W)
      parts.push_back(m->quantize(batch).cpu());                                 // (b, L)
    }
    return parts.empty() ? at::empty({0, codes_per_image()}, at::kLong) : at::cat(parts);  // (N, L)
  });
}

at::Tensor ImageTokenCodec::decode_codes(const at::Tensor& codes, int64_t batch_size) const {
  VLM_CHECK(batch_size > 0, "decode_codes: batch_size must be positive, got ", batch_size);
  return in_eval(model_, [&](VQVAE& m) {
    std::vector<at::Tensor> parts;
    for (int64_t i = 0; i < codes.size(0); i += batch_size) {
      parts.push_back(m->decode_codes(codes.slice(0, i, i + batch_size).to(device_)).cpu());  // (b, C, H, W)
    }
    const int64_t S = m->options.image_size(), C = m->options.image_channels();
    return parts.empty() ? at::empty({0, C, S, S}) : at::cat(parts);  // (N, C, H, W)
  });
}

std::vector<std::string> ImageTokenCodec::encode_text(const at::Tensor& images, int64_t batch_size) const {
  return codes_to_texts(encode_codes(images, batch_size), alphabet_);
}

at::Tensor ImageTokenCodec::decode_text(const std::vector<std::string>& texts, int64_t batch_size) const {
  return decode_codes(texts_to_codes(texts, alphabet_, codes_per_image()), batch_size);
}

std::string ImageTokenCodec::encode_text_one(const at::Tensor& image) const {
  VLM_CHECK(image.dim() == 2 || image.dim() == 3, "encode_text_one: expected an image (C, H, W) or (H, W), got ",
            image.sizes());
  auto batch = image.dim() == 2 ? image.unsqueeze(0).unsqueeze(0) : image.unsqueeze(0);  // (1, C, H, W)
  return encode_text(batch).front();
}

at::Tensor ImageTokenCodec::decode_text_one(const std::string& text) const { return decode_text({text})[0]; }

bool ImageTokenCodec::write_grid_png(const std::string& path, const std::vector<std::vector<std::string>>& rows,
                                     int64_t columns) const {
  VLM_CHECK(columns > 0, "write_grid_png: columns must be positive");
  const int64_t size = model_->options.image_size();
  std::vector<at::Tensor> tiles;
  for (const auto& row : rows)
    for (int64_t c = 0; c < columns; ++c) {
      if (c < static_cast<int64_t>(row.size()) && !row[c].empty()) tiles.push_back(decode_text_one(row[c]));
      else tiles.push_back(at::zeros({model_->options.image_channels(), size, size}));
    }
  write_png(path, image_grid(at::stack(tiles), columns));
  return true;
}

}  // namespace vlm
