#pragma once
// The labelled image data sets the main job knows by name, as a registry like the codecs'
// (vlm/tokenizer/token_codec.h): where their files are, how to load them, and the label fields their lines are
// written with. MNIST and
// Fashion-MNIST are the four IDX files; Colored MNIST is made from MNIST's (vlm/data/colored_mnist.h). Any other
// MNIST-shaped data set runs with --data_dir and a format file (--format), and a new kind registers itself:
//
//   const ImageDataset& d = image_dataset("fashion");  // label field "item", words "tshirt" ... "boot"
//   static vlm::ImageDatasetRegistration reg({"mine", "my images", "data/mine", "runs/mine", {label field}, 32,
//                                             &load_mine, &files_of_mine});
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "vlm/data/mnist.h"
#include "vlm/text/sequence_format.h"

namespace vlm {

struct ImageDataset {
  /// Reads the training and test files from `data_dir`; `limit_train`/`limit_test` > 0 keep only the first rows.
  /// Labels come with one column per label field (vlm::LabeledImages).
  using Loader = std::function<TrainTest(const std::string& data_dir, int64_t limit_train, int64_t limit_test)>;
  /// The files of `data_dir` it reads, as (name, path): their checksums say whether a run's data changed.
  using Inputs = std::function<std::vector<std::pair<std::string, std::string>>(const std::string& data_dir)>;

  std::string name;
  std::string description;          ///< one line, for --help
  std::string data_dir;             ///< default --data_dir
  std::string run_dir;              ///< default --run_dir
  std::vector<FieldSpec> labels;    ///< the label fields, one per label column ("number": "0" ... "9")
  int64_t block_size = 32;          ///< the lines' length, padding included (the GPT's block)
  Loader load;
  Inputs inputs;

  /// Words per label field.
  std::vector<int64_t> label_sizes() const;
  /// The classes of all label fields together (40 for Colored MNIST's 4 colours x 10 digits).
  int64_t num_classes() const;
  /// The seed's two templates over these label fields: image:{image}, colour:{colour}, number:{number}. / ...
  SequenceFormat format(const std::string& alphabet, int64_t image_length, int64_t block_size) const;
};

/// Registers a data set; a name registered twice is an error.
void register_image_dataset(ImageDataset dataset);
/// "mnist", "fashion", "colored", or one registered elsewhere; else an error listing the known names.
const ImageDataset& image_dataset(const std::string& name);
std::vector<std::string> image_dataset_names();

/// Registers at static-initialisation time.
struct ImageDatasetRegistration {
  explicit ImageDatasetRegistration(ImageDataset dataset) { register_image_dataset(std::move(dataset)); }
};

/// The loader of an MNIST-shaped directory (the four IDX files) whose one label takes `num_classes` values.
ImageDataset::Loader idx_loader(int64_t num_classes);
/// The four IDX files of an MNIST-shaped directory (raw or .gz), named by their stems.
ImageDataset::Inputs idx_inputs();

}  // namespace vlm
