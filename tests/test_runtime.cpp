#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "test_helpers.h"
#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/progress.h"
#include "vlm/core/runtime.h"

TEST_CASE("set_threads sets LibTorch's pool and 0 means all cores", "[runtime]") {
  CHECK(vlm::set_threads(1) == 1);
  CHECK(at::get_num_threads() == 1);
  CHECK(vlm::set_threads(0, vlm::ThreadPool::kTorch) == vlm::hardware_threads());
  CHECK(at::get_num_threads() == vlm::hardware_threads());
  vlm::set_threads(1);
}

TEST_CASE("The BLAS check names the backend LibTorch resolved", "[runtime]") {
  at::mm(at::ones({4, 4}), at::ones({4, 4}));  // make sure BLAS is loaded
  auto info = vlm::blas_info();
  CHECK_FALSE(info.name.empty());
  if (info.name == "OpenBLAS") {
    vlm::set_threads(2);
    CHECK(vlm::blas_info().threads == 2);  // the OpenBLAS pool follows our thread option
    vlm::set_threads(1);
    CHECK(vlm::blas_info().threads == 1);
  }
}

TEST_CASE("at::parallel_for inside the library really runs on several threads (it is built with OpenMP)",
          "[runtime]") {
  vlm::set_threads(2, vlm::ThreadPool::kTorch);
  CHECK(vlm::parallel_for_threads(2) == 2);
  vlm::set_threads(1);
  CHECK(vlm::parallel_for_threads(2) == 1);
}

TEST_CASE("The thread pool option gives the threads to one pool and 1 to the other", "[runtime]") {
  at::mm(at::ones({4, 4}), at::ones({4, 4}));
  const bool openblas = vlm::blas_info().name == "OpenBLAS";
  vlm::set_threads(3, vlm::ThreadPool::kTorch);
  CHECK(vlm::current_threads().torch == 3);
  if (openblas) CHECK(vlm::current_threads().blas == 1);
  vlm::set_threads(3, vlm::ThreadPool::kBlas);
  CHECK(vlm::current_threads().torch == (openblas ? 1 : 3));
  if (openblas) CHECK(vlm::current_threads().blas == 3);
  vlm::set_threads(3, vlm::ThreadPool::kBoth);
  CHECK(vlm::current_threads().torch == 3);
  if (openblas) CHECK(vlm::current_threads().blas == 3);
  auto saved = vlm::current_threads();
  vlm::set_threads(1);
  vlm::apply_threads(saved);  // a stage restores what it found
  CHECK(vlm::current_threads().torch == 3);
  CHECK(vlm::parse_thread_pool("torch") == vlm::ThreadPool::kTorch);
  CHECK_THROWS_WITH(vlm::parse_thread_pool("gpu"), Catch::Contains("--thread_pool='gpu'"));
  vlm::set_threads(1);
}

TEST_CASE("Seeding makes LibTorch's random draws reproducible", "[runtime]") {
  vlm::seed_everything(42);
  auto a = at::randn({16});
  vlm::seed_everything(42);
  auto b = at::randn({16});
  vlm::seed_everything(43);
  auto c = at::randn({16});
  CHECK(at::equal(a, b));
  CHECK_FALSE(at::equal(a, c));
}

TEST_CASE("resolve_device accepts cpu and rejects nonsense naming the flag", "[runtime]") {
  CHECK(vlm::resolve_device("cpu").is_cpu());
  CHECK_THROWS_WITH(vlm::resolve_device("tpu"), Catch::Contains("--device"));
  if (!at::hasCUDA()) CHECK_THROWS_WITH(vlm::resolve_device("cuda"), Catch::Contains("--device=cpu"));
}

TEST_CASE("An atomic write that fails leaves the old file intact and no temporary behind", "[atomic]") {
  vlm::testing::TempDir dir;
  auto path = dir.file("sub/out.txt");
  vlm::write_text_atomically(path, "first");
  CHECK(vlm::read_text_file(path) == "first");
  CHECK_THROWS_WITH(vlm::write_atomically(path,
                                          [](const std::string& tmp) {
                                            std::ofstream(tmp) << "half";
                                            throw vlm::Error("disk full");
                                          }),
                    "disk full");
  CHECK(vlm::read_text_file(path) == "first");
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.file("sub"))) files += e.is_regular_file();
  CHECK(files == 1);
  vlm::write_text_atomically(path, "second");
  CHECK(vlm::read_text_file(path) == "second");
  CHECK_THROWS_WITH(vlm::read_text_file(dir.file("none")), Catch::Contains("none"));
}

TEST_CASE("Progress formats durations for humans", "[progress]") {
  CHECK(vlm::Progress::format_duration(12.34) == "12.3s");
  CHECK(vlm::Progress::format_duration(187) == "3m07s");
  CHECK(vlm::Progress::format_duration(3720) == "1h02m");
  CHECK(vlm::Progress::format_duration(-1) == "?");
}

TEST_CASE("flush_denormals zeroes denormal operands on this thread and in OpenBLAS's pool", "[runtime]") {
  // 1e-39 is below FLT_MIN (1.18e-38): a denormal. A 256-term dot product of such values times 1 is 2.56e-37, a
  // normal float, unless the operands are read as zero (DAZ).
  const float tiny = 1e-39f;
  vlm::set_threads(0);  // OpenBLAS gets every core: a 512 x 256 x 512 product is cut between its worker threads
  auto a = at::full({512, 256}, tiny), b = at::ones({256, 512});
  const bool flushing_already = (at::full({1}, tiny) * 1.0f).item<float>() == 0.0f;
  if (!flushing_already) {
    CHECK(at::mm(a, b).min().item<float>() > 1e-37f);  // the expectation below can fail
  }
  REQUIRE(vlm::flush_denormals());  // the CPUs this project runs on (x86-64 with SSE) can
  vlm::set_threads(0);              // starts OpenBLAS's pool again, from this (flushing) thread
  CHECK((at::full({4}, tiny) * 1.0f).abs().max().item<float>() == 0.0f);
  auto c = at::mm(a, b);  // every worker's block of rows and columns
  CHECK(c.abs().max().item<float>() == 0.0f);
  vlm::set_threads(1);
}
