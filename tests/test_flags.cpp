#include <catch2/catch.hpp>

#include "vlm/core/check.h"
#include "vlm/core/flags.h"

namespace {
struct Opts {
  int n_layer = 8;
  int64_t max_iters = 5000;
  uint64_t seed = 1;
  double lr = 1e-3;
  float dropout = 0.2f;
  bool bias = false;
  std::string name = "x";
};

vlm::Flags make(Opts& o) {
  vlm::Flags f("prog", "test program");
  f.add("n_layer", &o.n_layer, "layers")
      .add("max_iters", &o.max_iters, "iterations")
      .add("seed", &o.seed, "seed")
      .add("lr", &o.lr, "learning rate")
      .add("dropout", &o.dropout, "dropout")
      .add("bias", &o.bias, "bias")
      .add("name", &o.name, "name");
  f.add_preset("tiny", [&o] {
    o.n_layer = 2;
    o.lr = 5e-3;
  });
  return f;
}
}  // namespace

TEST_CASE("Flags parse every supported type from --key=value", "[flags]") {
  Opts o;
  auto f = make(o);
  REQUIRE(f.parse({"--n_layer=4", "--max_iters=123456789012", "--seed=7", "--lr=3e-4", "--dropout=0.1", "--bias",
                   "--name=hello world"}));
  CHECK(o.n_layer == 4);
  CHECK(o.max_iters == 123456789012LL);
  CHECK(o.seed == 7u);
  CHECK(o.lr == Approx(3e-4));
  CHECK(o.dropout == Approx(0.1f));
  CHECK(o.bias);
  CHECK(o.name == "hello world");
  CHECK(f.given("lr"));
  REQUIRE(f.parse({"--bias=false"}));
  CHECK_FALSE(o.bias);
}

TEST_CASE("Flags reject unknown keys and values of the wrong type, naming the flag", "[flags]") {
  Opts o;
  auto f = make(o);
  CHECK_THROWS_WITH(f.parse({"--n_layers=3"}), Catch::Contains("unknown flag --n_layers"));
  CHECK_THROWS_WITH(f.parse({"--n_layer=3.5"}), Catch::Contains("--n_layer") && Catch::Contains("integer"));
  CHECK_THROWS_WITH(f.parse({"--n_layer=99999999999"}), Catch::Contains("out of range"));
  CHECK_THROWS_WITH(f.parse({"--seed=-1"}), Catch::Contains("--seed"));
  CHECK_THROWS_WITH(f.parse({"--lr=fast"}), Catch::Contains("--lr") && Catch::Contains("number"));
  CHECK_THROWS_WITH(f.parse({"--lr=nan"}), Catch::Contains("--lr"));
  CHECK_THROWS_WITH(f.parse({"--bias=maybe"}), Catch::Contains("--bias"));
  CHECK_THROWS_WITH(f.parse({"--n_layer"}), Catch::Contains("needs a value"));
  CHECK_THROWS_WITH(f.parse({"positional"}), Catch::Contains("unexpected argument"));
  CHECK_THROWS_AS(f.parse({"--preset=huge"}), vlm::Error);
}

TEST_CASE("Flags apply the preset first so explicit flags win whatever their order", "[flags]") {
  Opts o;
  auto f = make(o);
  REQUIRE(f.parse({"--lr=1e-2", "--preset=tiny"}));
  CHECK(o.n_layer == 2);
  CHECK(o.lr == Approx(1e-2));
  CHECK(f.preset() == "tiny");
  CHECK(f.given("lr"));
  CHECK_FALSE(f.given("n_layer"));
  auto j = f.to_json();
  CHECK(j["preset"] == "tiny");
  CHECK(j["n_layer"] == 2);
  CHECK(j["name"] == "x");
  CHECK(f.resolved().find("n_layer") != std::string::npos);
}

TEST_CASE("Flags print usage and report --help", "[flags]") {
  Opts o;
  auto f = make(o);
  CHECK_FALSE(f.parse({"--help"}));
  CHECK(f.usage().find("--max_iters") != std::string::npos);
}
