#include <catch2/catch.hpp>

#include <ATen/ATen.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include "test_helpers.h"
#include "vlm/core/check.h"
#include "vlm/io/checkpoint.h"

TEST_CASE("A checkpoint round-trips meta, module weights, optimizer state and tensors", "[checkpoint]") {
  vlm::testing::TempDir dir;
  torch::nn::Linear a(3, 2), b(3, 2);
  torch::optim::Adam opt(a->parameters(), torch::optim::AdamOptions(1e-2));
  auto loss = a(at::ones({4, 3})).pow(2).sum();
  loss.backward();
  opt.step();

  vlm::CheckpointWriter w("toy", 2, {{"in", 3}, {"out", 2}});
  w.meta()["step"] = 17;
  w.add_module("model", *a).add_optimizer("opt", opt).add_tensor("rng", vlm::cpu_rng_state());
  w.save(dir.file("ck.pt"));

  vlm::CheckpointReader r(dir.file("ck.pt"), "toy", 2);
  CHECK(r.meta()["step"] == 17);
  CHECK(r.version() == 2);
  r.load_module("model", *b);
  CHECK(at::equal(a->weight, b->weight));
  torch::optim::Adam opt2(b->parameters(), torch::optim::AdamOptions(1e-2));
  r.load_optimizer("opt", opt2);
  CHECK(r.has("rng"));
  CHECK_FALSE(r.has("nothing"));

  auto before = at::rand({3});
  vlm::set_cpu_rng_state(r.tensor("rng"));
  CHECK(at::equal(at::rand({3}), before));  // the stored state replays the draw made right after saving

  auto head = vlm::peek_checkpoint(dir.file("ck.pt"));
  CHECK(head["kind"] == "toy");
}

TEST_CASE("Loading a checkpoint checks kind, version, shapes and the file itself", "[checkpoint][errors]") {
  vlm::testing::TempDir dir;
  torch::nn::Linear a(3, 2);
  vlm::CheckpointWriter("toy", 3).add_module("model", *a).save(dir.file("ck.pt"));
  CHECK_THROWS_WITH(vlm::CheckpointReader(dir.file("ck.pt"), "gpt", 3), Catch::Contains("expected 'gpt'"));
  CHECK_THROWS_WITH(vlm::CheckpointReader(dir.file("ck.pt"), "toy", 2), Catch::Contains("format version 3"));
  CHECK_THROWS_WITH(vlm::CheckpointReader(dir.file("missing.pt"), "toy", 3), Catch::Contains("does not exist"));
  vlm::testing::write_bytes(dir.file("junk.pt"), {1, 2, 3, 4});
  CHECK_THROWS_WITH(vlm::CheckpointReader(dir.file("junk.pt"), "toy", 3), Catch::Contains("junk.pt"));
  vlm::CheckpointReader r(dir.file("ck.pt"), "toy", 3);
  torch::nn::Linear wrong(4, 2);
  CHECK_THROWS_WITH(r.load_module("model", *wrong), Catch::Contains("shape"));
  CHECK_THROWS_WITH(r.load_module("absent", *wrong), Catch::Contains("no module 'absent'"));
}

TEST_CASE("Nested modules load, and a mis-shaped nested weight is reported by its full name", "[checkpoint][errors]") {
  struct Net : torch::nn::Module {
    explicit Net(int h) {
      a = register_module("a", torch::nn::Linear(2, h));
      b = register_module("b", torch::nn::Linear(h, 1));
    }
    torch::nn::Linear a{nullptr}, b{nullptr};
  };
  vlm::testing::TempDir dir;
  Net n1(3), n2(3), n3(4);
  vlm::CheckpointWriter("toy", 1).add_module("model", n1).save(dir.file("n.pt"));
  vlm::CheckpointReader r(dir.file("n.pt"), "toy", 1);
  r.load_module("model", n2);
  CHECK(at::equal(n1.b->weight, n2.b->weight));
  CHECK_THROWS_WITH(r.load_module("model", n3), Catch::Contains("model.a.weight") && Catch::Contains("shape"));
}
