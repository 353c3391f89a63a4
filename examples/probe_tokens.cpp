// The Hamming k-NN label probe and the token statistics on token text files in the seed's format, e.g. the seed's
// own tokens:
//
//   probe_tokens --reference=../shared/seed-tokens/train.txt --queries=../shared/seed-tokens/valid.txt
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "mnist_common.h"
#include "vlm/core/check.h"
#include "vlm/eval/token_probe.h"
#include "vlm/tokenizer/image_token_codec.h"

int main(int argc, char** argv) {
  return vlm::examples::run_main("probe_tokens", [&] {
    vlm::examples::CommonOptions common;
    std::string reference, queries, alphabet = vlm::kDefaultImageAlphabet;
    int64_t k = 10;
    vlm::Flags flags("probe_tokens", "Hamming k-NN label probe of query token strings against reference strings.");
    vlm::examples::add_common_flags(flags, common, /*with_data_dir=*/false);
    flags.add("reference", &reference, "token text file of the reference set (lines with image:LETTERS, number:N)")
        .add("queries", &queries, "token text file of the queries")
        .add("alphabet", &alphabet, "the image letters, one per code")
        .add("k", &k, "neighbours");
    if (!flags.parse(argc, argv)) return 0;
    VLM_CHECK(!reference.empty() && !queries.empty(), "give --reference=FILE and --queries=FILE");
    vlm::examples::start(flags, common);
    auto ref = vlm::read_token_text_file(reference);
    auto qry = vlm::read_token_text_file(queries);
    VLM_CHECK(!ref.images.empty() && !qry.images.empty(), "empty token file(s): ", reference, " ", queries);
    const int64_t length = static_cast<int64_t>(ref.images.front().size());
    auto ref_codes = vlm::texts_to_codes(ref.images, alphabet, length);  // (Nr, L)
    auto qry_codes = vlm::texts_to_codes(qry.images, alphabet, length);  // (Nq, L)
    auto probe = vlm::knn_probe(qry_codes, qry.labels, ref_codes, ref.labels, k);
    auto stats = vlm::token_stats(qry_codes, static_cast<int64_t>(alphabet.size()));
    fmt::print("{} queries against {} references, {} letters each\n", qry_codes.size(0), ref_codes.size(0), length);
    fmt::print("queries: perplexity {:.2f}  codes used {}/{}  distinct strings {:.4f}\n", stats.perplexity,
               stats.codes_used, alphabet.size(), stats.distinct_fraction);
    fmt::print("{}-NN Hamming probe accuracy {:.4f}\n", k, probe.accuracy);
    return 0;
  });
}
