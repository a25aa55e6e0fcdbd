#pragma once
// Which graph inputs of a BERT model are the token ids, segment ids and attention mask, how large
// the vocabulary is, and deterministic random values for them. compare and perf feed the original
// and the optimized model the same values, each in its own input dtype (int32 or int64).

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"
#include "ort/session.h"

namespace bertopt::ort {

/// Graph input names per role; "" where the model has no such input (segment ids and mask are
/// optional, the ids are not). Also used for the --*_name overrides, where "" means "detect".
struct BertInputs {
  std::string input_ids;
  std::string segment_ids;
  std::string input_mask;
};

/// Assigns the model's graph inputs (initializers excluded) to roles, first rule that decides wins:
///   1. overrides (each must name a graph input);
///   2. a com.microsoft EmbedLayerNormalization node: input 0 (through Cast nodes) is the ids,
///      input 1 the segment ids, input 7 the mask;
///   3. names: containing "mask" → mask; "token", "segment" or "type" → segment ids; a single
///      remaining input → ids (case-insensitive; a rule matching two inputs decides nothing, and
///      the last free input is never taken from the ids);
///   4. graph usage: the input indexing (through Cast) the largest Gather table is the ids, one
///      indexing a table of at most 2 rows is the segment ids, one whose consumers (through Cast)
///      are Unsqueeze, Sub, Equal, Mul, ReduceSum or an Attention mask input is the mask.
/// Inputs left without a role, a role given twice, or no ids are errors naming the inputs.
/// `how`, when given, receives one line per decision for --verbose.
StatusOr<BertInputs> FindBertInputs(const onnx::GraphProto& graph, const BertInputs& overrides,
                                    std::vector<std::string>* how = nullptr);

/// Rows of the word-embedding table: EmbedLayerNormalization input 2, or the Gather table indexed
/// by `input_ids` (directly or through Cast). nullopt when there is none with a known shape.
std::optional<int64_t> FindVocabSize(const onnx::GraphProto& graph, const std::string& input_ids);

/// Rows of the token-type table the segment ids index (EmbedLayerNormalization input 4, or the
/// Gather table): RoBERTa's has one row, so a "1" there is out of range. nullopt when unknown.
std::optional<int64_t> FindSegmentVocabSize(const onnx::GraphProto& graph,
                                            const std::string& segment_ids);

/// Used when FindVocabSize finds nothing; small enough to be a valid row of any real vocabulary.
inline constexpr int64_t kDefaultVocabSize = 1000;

/// One batch of input values, row-major (batch_size, sequence_length), independent of dtype.
struct BertSample {
  int64_t batch_size = 0;
  int64_t sequence_length = 0;
  std::vector<int64_t> input_ids;
  std::vector<int64_t> segment_ids;
  std::vector<int64_t> input_mask;
};

/// Deterministic BERT inputs: the k-th sample depends only on the seed, the shape, the vocabulary
/// size and k. Uses std::mt19937_64 (whose output the C++ standard fixes) and its own
/// integer mapping, because std distributions differ between standard libraries.
///
/// Per sample k, per row, in this draw order:
///   - ids: S draws, each uniform in [0, vocab);
///   - mask: valid length L uniform in [ceil(2S/3), S]; mask = 1 for positions < L, 0 after
///     (right padding);
///   - segment ids: 0 everywhere for even k; for odd k and L >= 2, a split t uniform in [1, L-1]
///     is drawn and positions t..L-1 are 1 (a second "sentence"), padding stays 0; with a
///     one-row token-type table (`segment_vocab` < 2) the tail is 0 too, the draw still made.
class BertInputGenerator {
 public:
  BertInputGenerator(int64_t batch_size, int64_t sequence_length, int64_t vocab_size, uint64_t seed,
                     int64_t segment_vocab = 2);
  BertSample Next();

 private:
  /// Uniform in [lo, hi], by rejection so every value is equally likely.
  int64_t UniformInt(int64_t lo, int64_t hi);

  int64_t batch_size_;
  int64_t sequence_length_;
  int64_t vocab_size_;
  int64_t second_segment_;  ///< the value of the second sentence's segment ids: 1, or 0
  int64_t next_index_ = 0;
  std::mt19937_64 rng_;
};

/// Checks that each BERT input of the model has rank 2 and that its static dims match
/// (batch_size, sequence_length); the error names the input, its dims and the request.
Status CheckBertInputShapes(const BertInputs& inputs, const std::vector<ValueInfo>& model_inputs,
                            int64_t batch_size, int64_t sequence_length);

/// The sample as session feeds, in model input order, each tensor in the dtype the model declares
/// for that input (int32, int64, float, ...).
StatusOr<std::vector<std::pair<std::string, Tensor>>> MakeBertFeeds(
    const BertSample& sample, const BertInputs& inputs, const std::vector<ValueInfo>& model_inputs);

}  // namespace bertopt::ort
