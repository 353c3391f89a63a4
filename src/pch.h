// Precompiled header for the library and the in-tree executables: the heavy LibTorch headers, parsed once.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/functional.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/serialize.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
