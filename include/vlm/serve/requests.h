#pragma once
// The JSON API's requests, parsed and checked before anything is queued (torch-free): every way a body can be wrong
// is an HttpError with the status to answer (4xx) and a message saying what was expected. docs/serve.md lists the
// bodies; the server turns an HttpError into {"error": message, "expected": expected}.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vlm/core/check.h"

namespace vlm {

/// A request the server refuses: the HTTP status, what was wrong, and what was expected instead.
class HttpError : public Error {
 public:
  HttpError(int status, const std::string& message, std::string expected = "",
            nlohmann::json details = nlohmann::json::object())
      : Error(message), status_(status), expected_(std::move(expected)), details_(std::move(details)) {}
  int status() const { return status_; }
  const std::string& expected() const { return expected_; }
  /// {"error": what(), "expected": expected()} plus the details (e.g. the positions of invalid letters).
  nlohmann::json to_json() const;

 private:
  int status_;
  std::string expected_;
  nlohmann::json details_;
};

/// What a request may hold: set from the run (image size, words, vocabulary) and the server's flags.
struct RequestLimits {
  int64_t image_size = 28;
  int64_t image_channels = 1;          ///< 1 grey, 3 RGB (the run's items are channels x size x size)
  int64_t max_image_bytes = 64 << 10;  ///< an uploaded PNG (a 28x28 one is well under 2 KiB)
  int64_t max_n = 64;                  ///< images per generate request
  int64_t max_top_k = 0;               ///< the GPT's vocabulary size
  double max_temperature = 10;
  std::string alphabet;                ///< the image field's letters
  int64_t letters = 8;                 ///< letters per image
  std::vector<std::string> words;      ///< the label field's words
};

/// An image of the run's shape (C, S, S), channel by channel, each row-major, values in [0, 1].
struct ImageRequest {
  std::vector<float> pixels;  ///< image_channels * image_size * image_size
  bool reconstruction = false;
};
/// POST /api/classify and /api/encode: a body of Content-Type image/png (the PNG itself), or JSON
/// {"pixels": [C*S*S numbers in [0, 1], channel by channel, row by row]} or {"png": "<base64 PNG>"}; classify takes
/// "reconstruction": true. `allow_reconstruction` is false for encode.
ImageRequest parse_image_request(const std::string& body, const std::string& content_type, const RequestLimits& limits,
                                 bool allow_reconstruction);
/// The PNG (or BMP/PGM) bytes as the run's C x S x S pixels, channel by channel: anything else (another size, other
/// channels than the run's - colour for a grey run, grey or alpha for an RGB one -, not an image) is a 400.
std::vector<float> decode_png_request(const std::string& bytes, const RequestLimits& limits);

struct GenerateRequestBody {
  int64_t label = 0;  ///< index into limits.words
  int64_t n = 16;
  double temperature = 1.0;
  int64_t top_k = 0;
  uint64_t seed = 1337;
};
/// POST /api/generate: {"label": "7" (a word) or 7 (a class index), "n": 1..max_n, "temperature": (0, 10],
/// "top_k": 0..vocabulary, "seed": a non-negative integer}; all but label optional.
GenerateRequestBody parse_generate_request(const std::string& body, const RequestLimits& limits);

/// POST /api/decode: {"letters": "ABCDEFGH"}. An invalid letter or length is a 400 whose JSON names the positions.
std::string parse_decode_request(const std::string& body, const RequestLimits& limits);

/// The positions of `letters` that are not in `alphabet` (empty when all are).
std::vector<int64_t> invalid_letter_positions(const std::string& letters, const std::string& alphabet);

/// Standard base64 (RFC 4648, with padding); decode throws HttpError 400 on anything else.
std::string base64_encode(const std::string& bytes);
std::string base64_decode(const std::string& text);

}  // namespace vlm
