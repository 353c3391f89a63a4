#pragma once
// How much of an image survives tokenization, measured on the tokens alone.
//
//   auto probe = vlm::knn_probe(test_codes, test_labels, train_codes, train_labels, 10);   // Hamming 10-NN
//   auto stats = vlm::token_stats(test_codes, 26);  // perplexity, codes used, fraction of distinct strings
//
// The probe: for every query string, the k reference strings at the smallest Hamming distance (number of positions
// that differ; ties in distance go to the lower reference index), and a majority vote of their labels (ties in the
// vote go to the smaller label, like a mode). It runs as a GEMM of one-hot codes, in query chunks.
#include <cstdint>
#include <string>
#include <vector>

#include "vlm/text/sequence_format.h"

#include <ATen/core/Tensor.h>

namespace vlm {

struct ProbeResult {
  double accuracy = 0;
  int64_t k = 0;
  int64_t queries = 0;
  at::Tensor predictions;  ///< (Nq) int64
};

/// query_codes (Nq, L), ref_codes (Nr, L) int64 codes; labels (Nq), (Nr) int64 in [0, num_labels).
ProbeResult knn_probe(const at::Tensor& query_codes, const at::Tensor& query_labels, const at::Tensor& ref_codes,
                      const at::Tensor& ref_labels, int64_t k = 10, int64_t chunk = 256);

/// The probe ladder: how much of the class the letters hold, read by ever stronger classifiers trained on the
/// reference strings (one-hot letters) and scored on the queries, next to each letter alone. If the GPT's accuracy
/// sits near the ladder's top, the tokenizer is the limit; far below it, the language model is.
struct ProbeLadderOptions {
  int64_t k = 10;            ///< neighbours of the Hamming k-NN rung
  int64_t epochs = 30;       ///< of the logistic-regression and MLP rungs (Adam, mini-batches of 256)
  int64_t hidden = 512;      ///< the MLP rung's hidden width (one ReLU layer)
  double lr = 3e-3;
  double weight_decay = 1e-5;
  uint64_t seed = 1337;      ///< the probes' initialisation and batch order (the default generator is restored)
};
struct ProbeLadder {
  double knn = 0;       ///< Hamming k-NN vote
  double linear = 0;    ///< multinomial logistic regression on the one-hot letters
  double mlp = 0;       ///< one hidden layer on the one-hot letters
  std::vector<double> position_accuracy;    ///< per letter position: the best classifier of that letter alone
                                            ///< (the majority class of each letter in the references)
  std::vector<double> position_information; ///< per position: I(letter; class) in bits on the queries (<= log2 C)
  std::vector<double> position_perplexity;  ///< per position: exp(entropy) of its letters on the queries
};
/// ref/query codes (N, L) int64 in [0, num_codes), labels (N) int64.
ProbeLadder probe_ladder(const at::Tensor& ref_codes, const at::Tensor& ref_labels, const at::Tensor& query_codes,
                         const at::Tensor& query_labels, int64_t num_codes, const ProbeLadderOptions& options = {});

/// Hamming distances (Nq, Nr) int64 of two code sets; the building block of the probe, exposed for tests.
at::Tensor hamming_distances(const at::Tensor& a, const at::Tensor& b, int64_t num_codes);

struct TokenStats {
  double perplexity = 0;         ///< exp(entropy) of the code histogram over all positions
  int64_t codes_used = 0;        ///< codes that occur at least once
  double distinct_fraction = 0;  ///< distinct token strings / strings
  at::Tensor histogram;          ///< (K) int64
};
/// codes (N, L) int64 in [0, num_codes)
TokenStats token_stats(const at::Tensor& codes, int64_t num_codes);
/// Fraction of rows of codes (N, L) that are distinct.
double distinct_fraction(const at::Tensor& codes);

/// Token strings and labels read from a file of a sequence format (the seed's by default: one example a line,
/// `number:5, image:RNMIBNTY.######` or `image:OJHFGGTE, number:7.######`): its first codec field and the class of
/// its first label field.
struct TokenTextSet {
  std::vector<std::string> images;
  at::Tensor labels;  ///< (N) int64
};
TokenTextSet read_token_text_file(const std::string& path, const SequenceFormat& format = SequenceFormat::seed());

}  // namespace vlm
