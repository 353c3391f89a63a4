#include "vlm/serve/requests.h"

#include <cmath>
#include <limits>
#include <set>

#include <fmt/format.h>

#include "vlm/io/image_decode.h"

namespace vlm {

nlohmann::json HttpError::to_json() const {
  nlohmann::json j = {{"error", what()}};
  if (!expected_.empty()) j["expected"] = expected_;
  for (const auto& [k, v] : details_.items()) j[k] = v;
  return j;
}

namespace {

nlohmann::json parse_json_object(const std::string& body, const std::string& expected) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    throw HttpError(400, std::string("malformed JSON: ") + e.what(), expected);
  }
  if (!j.is_object()) throw HttpError(400, "the body must be a JSON object, got " + std::string(j.type_name()), expected);
  return j;
}

void reject_unknown_keys(const nlohmann::json& j, const std::set<std::string>& known, const std::string& expected) {
  for (const auto& [key, value] : j.items())
    if (!known.count(key)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw HttpError(400, "unknown key \"" + key + "\" (known: " + list + ")", expected);
    }
}

int64_t get_integer(const nlohmann::json& j, const char* key, int64_t lo, int64_t hi, int64_t fallback,
                    const std::string& expected) {
  if (!j.contains(key)) return fallback;
  const auto& v = j[key];
  const std::string range = fmt::format("an integer in [{}, {}]", lo, hi);
  if (!v.is_number_integer())
    throw HttpError(400, fmt::format("\"{}\" must be {}, got {}", key, range, v.dump()), expected);
  // nlohmann reads a non-negative literal as unsigned: compare as unsigned first, so 2^64-1 is not -1.
  const bool above = v.is_number_unsigned() ? v.get<uint64_t>() > static_cast<uint64_t>(hi) : v.get<int64_t>() > hi;
  if (above || (!v.is_number_unsigned() && v.get<int64_t>() < lo) || (v.is_number_unsigned() && lo > 0 && v.get<uint64_t>() < static_cast<uint64_t>(lo)))
    throw HttpError(400, fmt::format("\"{}\" = {} is out of range: expected {}", key, v.dump(), range), expected);
  return v.get<int64_t>();
}

std::string image_expected(const RequestLimits& limits, bool allow_reconstruction) {
  const int64_t s = limits.image_size, c = limits.image_channels;
  return fmt::format("a {}x{} {} image: a body of Content-Type image/png, or JSON {{\"pixels\": [{} numbers in "
                     "[0, 1], {}row by row]}} or {{\"png\": \"<base64 PNG>\"}}{}",
                     s, s, c == 1 ? "grayscale" : "RGB", c * s * s, c == 1 ? "" : "channel by channel, ",
                     allow_reconstruction ? ", optionally with \"reconstruction\": true" : "");
}

}  // namespace

std::vector<float> decode_png_request(const std::string& bytes, const RequestLimits& limits) {
  const std::string expected = image_expected(limits, false);
  const int64_t s = limits.image_size;
  if (static_cast<int64_t>(bytes.size()) > limits.max_image_bytes)
    throw HttpError(413, fmt::format("the image is {} bytes, over the limit of {} bytes", bytes.size(),
                                     limits.max_image_bytes),
                    expected);
  ImageLimits il;
  il.max_file_bytes = limits.max_image_bytes;
  il.max_width = il.max_height = 4096;
  il.max_pixels = 4096 * 4096;
  DecodedImage img;
  try {
    img = decode_image(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "request body",
                       static_cast<int>(limits.image_channels), il);
  } catch (const Error& e) {
    throw HttpError(400, e.what(), expected);
  }
  if (img.width != s || img.height != s)
    throw HttpError(400, fmt::format("the image is {}x{} pixels", img.width, img.height), expected);
  const int channels = img.source_channels, want = static_cast<int>(limits.image_channels);
  auto name = [](int c) { return c == 1 ? "grayscale" : c == 2 ? "gray + alpha" : c == 3 ? "RGB" : "RGBA"; };
  if (channels != want)
    throw HttpError(400, fmt::format("the image has {} channels ({}), not {} ({})", channels, name(channels), want,
                                     name(want)),
                    expected);
  // Interleaved (H, W, C) bytes -> (C, H, W) floats.
  const size_t plane = static_cast<size_t>(s * s);
  std::vector<float> pixels(img.pixels.size());
  for (size_t i = 0; i < plane; ++i)
    for (size_t c = 0; c < static_cast<size_t>(want); ++c)
      pixels[c * plane + i] = static_cast<float>(img.pixels[i * want + c]) / 255.0f;
  return pixels;
}

ImageRequest parse_image_request(const std::string& body, const std::string& content_type, const RequestLimits& limits,
                                 bool allow_reconstruction) {
  ImageRequest out;
  if (content_type.rfind("image/", 0) == 0) {
    out.pixels = decode_png_request(body, limits);
    return out;
  }
  const std::string expected = image_expected(limits, allow_reconstruction);
  auto j = parse_json_object(body, expected);
  std::set<std::string> known = {"pixels", "png"};
  if (allow_reconstruction) known.insert("reconstruction");
  reject_unknown_keys(j, known, expected);
  if (j.contains("pixels") == j.contains("png"))
    throw HttpError(400, "give exactly one of \"pixels\" and \"png\"", expected);
  if (j.contains("reconstruction")) {
    if (!j["reconstruction"].is_boolean())
      throw HttpError(400, "\"reconstruction\" must be true or false, got " + j["reconstruction"].dump(), expected);
    out.reconstruction = j["reconstruction"].get<bool>();
  }
  if (j.contains("png")) {
    if (!j["png"].is_string()) throw HttpError(400, "\"png\" must be a base64 string, got " + std::string(j["png"].type_name()), expected);
    out.pixels = decode_png_request(base64_decode(j["png"].get<std::string>()), limits);
    return out;
  }
  const auto& p = j["pixels"];
  const size_t n = static_cast<size_t>(limits.image_channels * limits.image_size * limits.image_size);
  if (!p.is_array()) throw HttpError(400, "\"pixels\" must be an array, got " + std::string(p.type_name()), expected);
  if (p.size() != n)
    throw HttpError(400, fmt::format("\"pixels\" has {} values, not {} ({}{}x{})", p.size(), n,
                                     limits.image_channels == 1 ? "" : std::to_string(limits.image_channels) + "x",
                                     limits.image_size, limits.image_size),
                    expected);
  out.pixels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (!p[i].is_number())
      throw HttpError(400, fmt::format("\"pixels\"[{}] is {}, not a number", i, p[i].dump()), expected);
    const double v = p[i].get<double>();
    if (!(v >= 0 && v <= 1)) throw HttpError(400, fmt::format("\"pixels\"[{}] = {} is outside [0, 1]", i, v), expected);
    out.pixels[i] = static_cast<float>(v);
  }
  return out;
}

GenerateRequestBody parse_generate_request(const std::string& body, const RequestLimits& limits) {
  std::string words;
  for (const auto& w : limits.words) words += (words.empty() ? "" : ", ") + w;
  const std::string expected = fmt::format(
      "JSON {{\"label\": one of [{}] (or its index), \"n\": 1..{}, \"temperature\": a number in (0, {}], "
      "\"top_k\": 0..{} (0 = off), \"seed\": a non-negative integer}}; all but label optional",
      words, limits.max_n, limits.max_temperature, limits.max_top_k);
  auto j = parse_json_object(body, expected);
  reject_unknown_keys(j, {"label", "n", "temperature", "top_k", "seed"}, expected);
  GenerateRequestBody out;
  if (!j.contains("label")) throw HttpError(400, "\"label\" is missing", expected);
  const auto& label = j["label"];
  const int64_t classes = static_cast<int64_t>(limits.words.size());
  if (label.is_string()) {
    out.label = -1;
    for (int64_t w = 0; w < classes; ++w)
      if (limits.words[w] == label.get<std::string>()) out.label = w;
    if (out.label < 0) throw HttpError(400, "\"label\" " + label.dump() + " is not a label of the model", expected);
  } else {
    out.label = get_integer(j, "label", 0, classes - 1, 0, expected);
  }
  out.n = get_integer(j, "n", 1, limits.max_n, out.n, expected);
  out.top_k = get_integer(j, "top_k", 0, limits.max_top_k, out.top_k, expected);
  if (j.contains("temperature")) {
    const auto& t = j["temperature"];
    if (!t.is_number()) throw HttpError(400, "\"temperature\" must be a number, got " + t.dump(), expected);
    out.temperature = t.get<double>();
    if (!(out.temperature > 0 && out.temperature <= limits.max_temperature))
      throw HttpError(400, fmt::format("\"temperature\" = {} is out of range (0, {}]", out.temperature,
                                       limits.max_temperature),
                      expected);
  }
  if (j.contains("seed")) {
    const auto& s = j["seed"];
    if (!s.is_number_integer() || (!s.is_number_unsigned() && s.get<int64_t>() < 0))
      throw HttpError(400, "\"seed\" must be a non-negative integer, got " + s.dump(), expected);
    out.seed = s.get<uint64_t>();
  }
  return out;
}

std::vector<int64_t> invalid_letter_positions(const std::string& letters, const std::string& alphabet) {
  std::vector<int64_t> out;
  for (size_t i = 0; i < letters.size(); ++i)
    if (alphabet.find(letters[i]) == std::string::npos) out.push_back(static_cast<int64_t>(i));
  return out;
}

std::string parse_decode_request(const std::string& body, const RequestLimits& limits) {
  const std::string expected =
      fmt::format("JSON {{\"letters\": {} letters of {}}}", limits.letters, limits.alphabet);
  auto j = parse_json_object(body, expected);
  reject_unknown_keys(j, {"letters"}, expected);
  if (!j.contains("letters")) throw HttpError(400, "\"letters\" is missing", expected);
  if (!j["letters"].is_string())
    throw HttpError(400, "\"letters\" must be a string, got " + j["letters"].dump(), expected);
  const std::string letters = j["letters"].get<std::string>();
  auto bad = invalid_letter_positions(letters, limits.alphabet);
  if (!bad.empty()) {
    std::string which;
    for (int64_t i : bad) which += fmt::format("{}'{}' at position {}", which.empty() ? "" : ", ", letters[i], i + 1);
    throw HttpError(400, "not letters of the tokenizer: " + which, expected, {{"invalid_positions", bad}});
  }
  if (static_cast<int64_t>(letters.size()) != limits.letters)
    throw HttpError(400, fmt::format("{} letters, not {}", letters.size(), limits.letters), expected,
                    {{"invalid_positions", nlohmann::json::array()}});
  return letters;
}

std::string base64_encode(const std::string& bytes) {
  static const char* kTable = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += kTable[v >> 18], out += kTable[(v >> 12) & 63], out += kTable[(v >> 6) & 63], out += kTable[v & 63];
  }
  if (i + 1 == bytes.size()) {
    const uint32_t v = uint8_t(bytes[i]) << 16;
    out += kTable[v >> 18], out += kTable[(v >> 12) & 63], out += "==";
  } else if (i + 2 == bytes.size()) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += kTable[v >> 18], out += kTable[(v >> 12) & 63], out += kTable[(v >> 6) & 63], out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  const std::string expected = "standard base64 (A-Z a-z 0-9 + /, padded with =)";
  if (text.size() % 4 != 0)
    throw HttpError(400, fmt::format("base64 of {} characters, not a multiple of 4", text.size()), expected);
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0, ++pad;
        continue;
      }
      if (pad > 0 || (v[k] = value(c)) < 0)
        throw HttpError(400, fmt::format("invalid base64 character at position {}", i + k), expected);
    }
    const uint32_t x = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>(x >> 16);
    if (pad < 2) out += static_cast<char>((x >> 8) & 255);
    if (pad < 1) out += static_cast<char>(x & 255);
  }
  return out;
}

}  // namespace vlm
