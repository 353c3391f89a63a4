#pragma once
// The labelled image data sets the main job knows by name: where Debian (or scripts/setup.sh) puts their IDX files,
// and how their labels are written in sequences. Any other MNIST-shaped data set runs with --data_dir and a format
// file (--format).
//
//   const ImageDataset& d = image_dataset("fashion");  // label field "item", words "tshirt" ... "boot"
#include <string>
#include <vector>

namespace vlm {

struct ImageDataset {
  std::string name;
  std::string data_dir;       ///< default --data_dir
  std::string run_dir;        ///< default --run_dir
  std::string label_field;    ///< the label's key in sequences ("number", "item")
  std::vector<std::string> words;  ///< label k is written words[k]
};

/// "mnist" (digits, the seed's "number:7") or "fashion" (Fashion-MNIST, "item:sneaker"); else an error listing both.
const ImageDataset& image_dataset(const std::string& name);
std::vector<std::string> image_dataset_names();

}  // namespace vlm
