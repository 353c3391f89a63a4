// How much of the class the image letters hold: the probe ladder (Hamming k-NN, logistic regression and an MLP on
// the one-hot letters, trained on the references and scored on the queries) and, per letter position, its
// perplexity, its information about the class and the accuracy of that letter alone.
//
//   probe_tokens --reference=../shared/seed-tokens/train.txt --queries=../shared/seed-tokens/valid.txt
//   probe_tokens --reference=runs/mnist/tokens/train.txt --queries=runs/mnist/tokens/valid.txt
//   probe_tokens --checkpoint=runs/mnist/vqvae/vqvae.pt --split=validation   # encodes MNIST with that tokenizer
//   probe_tokens --pixel_neighbours=5          # how often a training image's pixel neighbours share its label
//
// With --checkpoint the references are the training split (train[0:50000]) and the queries the validation split
// (choose settings on it) or the test set (--split=test, report on it).
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "vlm/core/check.h"
#include "vlm/data/augment.h"
#include "vlm/data/image_clusters.h"
#include "vlm/data/mnist.h"
#include "vlm/eval/token_probe.h"
#include "vlm/tokenizer/image_token_codec.h"

int main(int argc, char** argv) {
  return vlm::examples::run_main("probe_tokens", [&] {
    vlm::examples::CommonOptions common;
    std::string reference, queries, checkpoint, split = "validation", alphabet = vlm::kDefaultImageAlphabet;
    vlm::ProbeLadderOptions ladder;
    bool knn_only = false;
    int64_t neighbours = 0;
    bool deskew = false;
    int64_t clusters = 0;
    vlm::ImageClusterOptions cluster_options;
    vlm::Flags flags("probe_tokens", "Probe ladder of image token strings: how much of the label the letters hold.");
    vlm::examples::add_common_flags(flags, common);
    flags.add("reference", &reference, "token text file of the reference set (lines with image:LETTERS, number:N)")
        .add("queries", &queries, "token text file of the queries")
        .add("checkpoint", &checkpoint, "a tokenizer checkpoint: encode --data_dir's images instead of reading files")
        .add("split", &split, "with --checkpoint: the queries, validation (choose settings) or test (report)")
        .add("alphabet", &alphabet, "the image letters, one per code (token files)")
        .add("k", &ladder.k, "neighbours of the k-NN rung")
        .add("epochs", &ladder.epochs, "epochs of the logistic-regression and MLP rungs")
        .add("hidden", &ladder.hidden, "hidden width of the MLP rung")
        .add("knn_only", &knn_only, "only the k-NN rung and the statistics (seconds instead of a minute)")
        .add("pixel_neighbours", &neighbours,
             "instead: the share of the K pixel neighbours (vlm::pixel_neighbours, the unsupervised tokenizer's second "
             "views) of each training image that have its label")
        .add("deskew", &deskew, "with --pixel_neighbours: search among deskewed images (--vq.mi_deskew)")
        .add("clusters", &clusters,
             "instead: the purity of K image clusters (vlm::cluster_images, the tokenizer's pseudo-captions): the "
             "share of training images whose cluster's most common label is theirs")
        .add("cluster_neighbours", &cluster_options.neighbours, "with --clusters: the graph's neighbours per image")
        .add("cluster_embedding", &cluster_options.embedding, "with --clusters: eigenvectors clustered")
        .add("cluster_iterations", &cluster_options.iterations, "with --clusters: subspace iterations");
    if (!flags.parse(argc, argv)) return 0;
    if (clusters > 0) {
      vlm::examples::start(flags, common);
      auto train = vlm::split_train_validation(vlm::load_mnist(common.data_dir).train).train;
      cluster_options.clusters = clusters;
      auto ids = vlm::cluster_images(train.images, cluster_options);  // (N)
      const auto labels = train.labels.to(at::kLong);
      const int64_t classes = labels.max().item<int64_t>() + 1;
      auto joint = at::zeros({clusters, classes}, at::kLong);  // (K, classes) images per cluster and label
      joint.view(-1).index_add_(0, ids * classes + labels, at::ones_like(ids));
      auto sizes = joint.sum(1);
      fmt::print("{} clusters of the {} training images (sizes {}-{}): purity {:.4f}\n", clusters, train.size(),
                 sizes.min().item<int64_t>(), sizes.max().item<int64_t>(),
                 std::get<0>(joint.max(1)).sum().item<double>() / train.size());
      return 0;
    }
    if (neighbours > 0) {
      vlm::examples::start(flags, common);
      auto train = vlm::split_train_validation(vlm::load_mnist(common.data_dir).train).train;
      auto nn = vlm::pixel_neighbours(deskew ? vlm::deskew_images(train.images) : train.images, neighbours);  // (N, K)
      auto same = train.labels.index_select(0, nn.flatten()).view_as(nn).eq(train.labels.unsqueeze(1));  // (N, K)
      fmt::print("pixel neighbours of the {} training images: {:.4f} of the {} nearest share the label ({:.4f} of "
                 "the nearest)\n", train.size(), same.to(at::kDouble).mean().item<double>(), neighbours,
                 same.select(1, 0).to(at::kDouble).mean().item<double>());
      return 0;
    }
    VLM_CHECK(checkpoint.empty() != (reference.empty() && queries.empty()),
              "give either --checkpoint=FILE or --reference=FILE and --queries=FILE");
    VLM_CHECK(split == "validation" || split == "test", "--split must be validation or test, got '", split, "'");
    vlm::examples::start(flags, common);
    const c10::Device device = vlm::resolve_device(common.device);
    at::Tensor ref_codes, ref_labels, qry_codes, qry_labels;
    int64_t num_codes = static_cast<int64_t>(alphabet.size());
    if (!checkpoint.empty()) {
      auto codec = vlm::ImageTokenCodec::load(checkpoint, device);
      vlm::TrainTest data = vlm::load_mnist(common.data_dir);
      auto parts = vlm::split_train_validation(data.train);
      const auto& q = split == "test" ? data.test : parts.validation;
      ref_codes = codec.encode_codes(parts.train.images), ref_labels = parts.train.labels;
      qry_codes = codec.encode_codes(q.images), qry_labels = q.labels;
      num_codes = codec.num_codes();
      fmt::print("{}: training split ({}) as references, {} split ({}) as queries\n", checkpoint, ref_codes.size(0),
                 split, qry_codes.size(0));
    } else {
      VLM_CHECK(!reference.empty() && !queries.empty(), "give --reference=FILE and --queries=FILE");
      auto ref = vlm::read_token_text_file(reference);
      auto qry = vlm::read_token_text_file(queries);
      VLM_CHECK(!ref.images.empty() && !qry.images.empty(), "empty token file(s): ", reference, " ", queries);
      const int64_t length = static_cast<int64_t>(ref.images.front().size());
      ref_codes = vlm::texts_to_codes(ref.images, alphabet, length), ref_labels = ref.labels;  // (Nr, L)
      qry_codes = vlm::texts_to_codes(qry.images, alphabet, length), qry_labels = qry.labels;  // (Nq, L)
    }
    auto stats = vlm::token_stats(qry_codes, num_codes);
    fmt::print("{} queries against {} references, {} letters each\n", qry_codes.size(0), ref_codes.size(0),
               qry_codes.size(1));
    fmt::print("queries: perplexity {:.2f}  codes used {}/{}  distinct strings {:.4f}\n", stats.perplexity,
               stats.codes_used, num_codes, stats.distinct_fraction);
    if (knn_only) {
      auto probe = vlm::knn_probe(qry_codes, qry_labels, ref_codes, ref_labels, ladder.k);
      fmt::print("{}-NN Hamming probe accuracy {:.4f}\n", ladder.k, probe.accuracy);
      return 0;
    }
    auto l = vlm::probe_ladder(ref_codes, ref_labels, qry_codes, qry_labels, num_codes, ladder);
    fmt::print("probe ladder: {}-NN Hamming {:.4f}   logistic regression {:.4f}   MLP ({} hidden) {:.4f}\n", ladder.k,
               l.knn, l.linear, ladder.hidden, l.mlp);
    fmt::print("{:<24}", "letter position");
    for (size_t p = 0; p < l.position_accuracy.size(); ++p) fmt::print("{:>7}", p + 1);
    auto row = [&](const char* name, const std::vector<double>& v, const char* f) {
      fmt::print("\n{:<24}", name);
      for (double x : v) fmt::print(fmt::runtime(f), x);
    };
    row("perplexity", l.position_perplexity, "{:>7.2f}");
    row("bits of the class", l.position_information, "{:>7.3f}");
    row("accuracy of it alone", l.position_accuracy, "{:>7.3f}");
    fmt::print("\n");
    return 0;
  });
}
