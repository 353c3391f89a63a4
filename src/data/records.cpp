#include "vlm/data/records.h"

#include <string>

#include "vlm/core/check.h"

namespace vlm {

std::vector<Record> records_of(const SequenceFormat& format, const TokenCodec& codec, const LabeledImages& data,
                               uint64_t seed, int64_t codec_field) {
  if (codec_field < 0) codec_field = format.first_codec_field();
  const auto labels = format.label_fields();
  VLM_CHECK(codec_field >= 0 && !labels.empty(),
            "records_of: the format needs a codec field and a label field, it has ", format.num_fields(), " fields");
  VLM_CHECK(format.num_fields() == 1 + static_cast<int64_t>(labels.size()), "records_of: the format has ",
            format.num_fields(), " fields; labelled images fill one codec field and the label fields");
  VLM_CHECK(data.label_columns() == static_cast<int64_t>(labels.size()), "records_of: the images have ",
            data.label_columns(), " label columns, the format ", labels.size(), " label fields");
  codec.check_field(format.field(codec_field), "records_of");
  std::vector<std::vector<std::string>> columns(static_cast<size_t>(format.num_fields()));
  columns[codec_field] = codec.encode(data.images);
  for (size_t k = 0; k < labels.size(); ++k)
    columns[labels[k]] = label_words(data, format.field(labels[k]).words, static_cast<int64_t>(k));
  return make_records(format, columns, seed);
}

}  // namespace vlm
