#pragma once
// Umbrella header: everything in the public API.
#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/flags.h"
#include "vlm/core/progress.h"
#include "vlm/core/runtime.h"
#include "vlm/data/idx.h"
#include "vlm/data/mnist.h"
#include "vlm/io/checkpoint.h"
