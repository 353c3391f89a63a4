#include "vlm/data/records.h"

#include <string>

#include "vlm/core/check.h"

namespace vlm {

std::vector<Record> records_of(const SequenceFormat& format, const TokenCodec& codec, const LabeledImages& data,
                               uint64_t seed, int64_t codec_field, int64_t label_field) {
  if (codec_field < 0) codec_field = format.first_codec_field();
  if (label_field < 0) label_field = format.first_label_field();
  VLM_CHECK(codec_field >= 0 && label_field >= 0,
            "records_of: the format needs a codec field and a label field, it has ", format.num_fields(), " fields");
  VLM_CHECK(format.num_fields() == 2, "records_of: the format has ", format.num_fields(),
            " fields; labelled images fill two (the codec's letters and the label)");
  codec.check_field(format.field(codec_field), "records_of");
  std::vector<std::vector<std::string>> columns(2);
  columns[codec_field] = codec.encode(data.images);
  columns[label_field] = label_words(data, format.field(label_field).words);
  return make_records(format, columns, seed);
}

}  // namespace vlm
