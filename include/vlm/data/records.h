#pragma once
// Labelled images -> text records of a sequence format, through a token codec: the one path from a data set to the
// language model's lines (the pipeline's token stage, the tools, the Engine and custom modalities all take it).
//
//   auto records = vlm::records_of(format, codec, mnist.test);  // image:ABCDEFGH, number:7. (template drawn)
#include <cstdint>
#include <vector>

#include "vlm/data/mnist.h"
#include "vlm/text/sequence_format.h"
#include "vlm/tokenizer/token_codec.h"

namespace vlm {

/// One record per image: the codec's letters in `codec_field` (-1: the format's first codec field), label column k's
/// word in the format's k-th label field, each record's template drawn by make_records with `seed`. The format must
/// have no other field, and the codec must write what the codec field holds (checked, naming both).
std::vector<Record> records_of(const SequenceFormat& format, const TokenCodec& codec, const LabeledImages& data,
                               uint64_t seed = 1337, int64_t codec_field = -1);

}  // namespace vlm
