#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "ort/bert_inputs.h"
#include "unit/tiny_models.h"

namespace bertopt::ort {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ModelBuilder;
using testing::TinyBertModel;
using testing::TinyBertOptions;

constexpr int32_t kInt32 = onnx::TensorProto::INT32;
constexpr int32_t kInt64 = onnx::TensorProto::INT64;
constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

StatusOr<BertInputs> Find(const onnx::ModelProto& model, const BertInputs& overrides = {}) {
  return FindBertInputs(model.graph(), overrides);
}

void ExpectInputs(const StatusOr<BertInputs>& found, const std::string& ids,
                  const std::string& segment, const std::string& mask) {
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_EQ(found->input_ids, ids);
  EXPECT_EQ(found->segment_ids, segment);
  EXPECT_EQ(found->input_mask, mask);
}

TEST(FindBertInputsTest, ByName) {
  std::vector<std::string> how;
  auto found = FindBertInputs(TinyBertModel().graph(), {}, &how);
  ExpectInputs(found, "input_ids", "token_type_ids", "attention_mask");
  EXPECT_THAT(how, ElementsAre("input_mask: 'attention_mask' (name)",
                               "segment_ids: 'token_type_ids' (name)",
                               "input_ids: 'input_ids' (the remaining input)"));
}

TEST(FindBertInputsTest, ByGraphUsageWhenNamesSayNothing) {
  for (int32_t type : {kInt64, kInt32}) {  // int32 inputs reach the Gathers through Cast
    TinyBertOptions o;
    o.id_type = type;
    o.ids_name = "y";
    o.segment_name = "z";
    o.mask_name = "x";
    std::vector<std::string> how;
    auto found = FindBertInputs(TinyBertModel(o).graph(), {}, &how);
    ExpectInputs(found, "y", "z", "x");
    EXPECT_THAT(how,
                ::testing::Contains("input_ids: 'y' (graph usage: indexes a 50-row Gather table)"));
  }
}

TEST(FindBertInputsTest, TwoAndOneInputModels) {
  TinyBertOptions two;
  two.with_segment = false;
  ExpectInputs(Find(TinyBertModel(two)), "input_ids", "", "attention_mask");
  two.ids_name = "a";
  two.mask_name = "b";
  ExpectInputs(Find(TinyBertModel(two)), "a", "", "b");

  TinyBertOptions one;
  one.with_segment = false;
  one.with_mask = false;
  one.ids_name = "tokens_in";  // "token" would mean segment, but it is the only input
  ExpectInputs(Find(TinyBertModel(one)), "tokens_in", "", "");
}

// A fused model: the ids reach EmbedLayerNormalization through a Cast to int32.
onnx::ModelProto FusedEmbedModel() {
  ModelBuilder b;
  b.Input("a", kInt64, {int64_t{1}, int64_t{4}})
      .Input("b", kInt32, {int64_t{1}, int64_t{4}})
      .Input("c", kInt32, {int64_t{1}, int64_t{4}})
      .Initializer("word", kFloat, {30, 2}, std::vector<float>(60, 0.1F))
      .Initializer("position", kFloat, {4, 2}, std::vector<float>(8, 0.1F))
      .Initializer("segment", kFloat, {2, 2}, std::vector<float>(4, 0.1F))
      .Initializer("gamma", kFloat, {2}, {1, 1})
      .Initializer("beta", kFloat, {2}, {0, 0})
      .Node("Cast", {"a"}, {"a_int32"}, {{"to", kInt32}})
      .Node("EmbedLayerNormalization",
            {"a_int32", "c", "word", "position", "segment", "gamma", "beta", "b"},
            {"embedded", "mask_index"}, {}, "com.microsoft")
      .Output("embedded", kFloat, {int64_t{1}, int64_t{4}, int64_t{2}});
  return b.model();
}

TEST(FindBertInputsTest, ThroughEmbedLayerNormalization) {
  std::vector<std::string> how;
  auto found = FindBertInputs(FusedEmbedModel().graph(), {}, &how);
  ExpectInputs(found, "a", "c", "b");
  EXPECT_THAT(how, ElementsAre("input_ids: 'a' (EmbedLayerNormalization input 0)",
                               "segment_ids: 'c' (EmbedLayerNormalization input 1)",
                               "input_mask: 'b' (EmbedLayerNormalization input 7)"));
  EXPECT_EQ(FindVocabSize(FusedEmbedModel().graph(), "a"), 30);
}

TEST(FindBertInputsTest, OverridesWin) {
  // Names alone would give the opposite answer for segment and mask.
  BertInputs overrides;
  overrides.segment_ids = "attention_mask";
  overrides.input_mask = "token_type_ids";
  ExpectInputs(Find(TinyBertModel(), overrides), "input_ids", "attention_mask", "token_type_ids");

  TinyBertOptions o;
  o.ids_name = "p";
  o.segment_name = "q";
  o.mask_name = "r";
  overrides = {};
  overrides.input_ids = "p";
  ExpectInputs(Find(TinyBertModel(o), overrides), "p", "q", "r");
}

TEST(FindBertInputsTest, OverrideThatIsNotAnInputIsAnErrorListingInputs) {
  BertInputs overrides;
  overrides.input_mask = "mask";
  auto found = Find(TinyBertModel(), overrides);
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().message(),
            "--input_mask_name 'mask' is not an input of the model (inputs: input_ids, "
            "token_type_ids, attention_mask)");
}

TEST(FindBertInputsTest, UnrecognisedInputIsAnErrorNamingIt) {
  onnx::ModelProto model = TinyBertModel();
  auto* extra = model.mutable_graph()->add_input();
  *extra = model.graph().input(0);
  extra->set_name("position_ids");
  auto found = Find(model);
  ASSERT_FALSE(found.ok());
  EXPECT_THAT(found.status().message(),
              HasSubstr("model inputs not recognised as BERT inputs: position_ids"));
}

TEST(FindBertInputsTest, InitializersListedAsInputsAreNotFeeds) {
  onnx::ModelProto model = TinyBertModel();
  auto* weight_input = model.mutable_graph()->add_input();
  *weight_input = model.graph().input(0);
  weight_input->set_name("dense_weight");
  ExpectInputs(Find(model), "input_ids", "token_type_ids", "attention_mask");
}

TEST(FindVocabSizeTest, RowsOfTheWordEmbeddingTable) {
  TinyBertOptions o;
  o.vocab = 77;
  EXPECT_EQ(FindVocabSize(TinyBertModel(o).graph(), "input_ids"), 77);
  o.id_type = kInt32;
  EXPECT_EQ(FindVocabSize(TinyBertModel(o).graph(), "input_ids"), 77);
  EXPECT_EQ(FindVocabSize(TinyBertModel(o).graph(), "token_type_ids"), 2);
  EXPECT_EQ(FindVocabSize(testing::AddModel(kInt64).graph(), "a"), std::nullopt);
}

TEST(FindVocabSizeTest, RowsOfTheTokenTypeTable) {
  EXPECT_EQ(FindSegmentVocabSize(TinyBertModel().graph(), "token_type_ids"), 2);
  EXPECT_EQ(FindSegmentVocabSize(TinyBertModel().graph(), ""), std::nullopt);
}

TEST(BertInputGeneratorTest, OneRowTokenTypeTableGetsOnlyZeros) {
  // RoBERTa's token-type table has one row: a second sentence of 1s would be out of range.
  BertInputGenerator two_rows(3, 9, 50, 5, /*segment_vocab=*/2);
  BertInputGenerator one_row(3, 9, 50, 5, /*segment_vocab=*/1);
  int ones = 0;
  for (int k = 0; k < 6; ++k) {
    const BertSample a = two_rows.Next();
    const BertSample b = one_row.Next();
    ones += std::count(a.segment_ids.begin(), a.segment_ids.end(), 1);
    EXPECT_EQ(std::count(b.segment_ids.begin(), b.segment_ids.end(), 0), 27);
    EXPECT_EQ(a.input_ids, b.input_ids) << "the same draws otherwise";
    EXPECT_EQ(a.input_mask, b.input_mask);
  }
  EXPECT_GT(ones, 0);
}

std::vector<BertSample> Generate(uint64_t seed, int count, int64_t batch = 4, int64_t seq = 12,
                                 int64_t vocab = 50) {
  BertInputGenerator generator(batch, seq, vocab, seed);
  std::vector<BertSample> samples;
  for (int i = 0; i < count; ++i) samples.push_back(generator.Next());
  return samples;
}

TEST(BertInputGeneratorTest, SameSeedSameValuesOtherSeedOtherValues) {
  const auto a = Generate(3, 5);
  const auto b = Generate(3, 5);
  const auto c = Generate(4, 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(a[i].input_ids, b[i].input_ids);
    EXPECT_EQ(a[i].input_mask, b[i].input_mask);
    EXPECT_EQ(a[i].segment_ids, b[i].segment_ids);
  }
  EXPECT_NE(a[0].input_ids, c[0].input_ids);
  EXPECT_NE(a[0].input_ids, a[1].input_ids);
}

TEST(BertInputGeneratorTest, MaskIsARightPaddedPrefixOfAtLeastTwoThirds) {
  const int64_t seq = 12;
  std::set<int64_t> lengths;
  for (const BertSample& s : Generate(11, 50, 4, seq)) {
    ASSERT_EQ(s.input_mask.size(), 4u * seq);
    for (int64_t row = 0; row < 4; ++row) {
      const int64_t* mask = s.input_mask.data() + row * seq;
      int64_t length = 0;
      while (length < seq && mask[length] == 1) ++length;
      for (int64_t p = length; p < seq; ++p) EXPECT_EQ(mask[p], 0) << "not right padding";
      EXPECT_GE(length, 8);  // ceil(2 * 12 / 3)
      lengths.insert(length);
    }
  }
  EXPECT_EQ(lengths, (std::set<int64_t>{8, 9, 10, 11, 12}));
}

TEST(BertInputGeneratorTest, SegmentTailOfOnesOnOddSamplesOnly) {
  const int64_t seq = 9;
  const auto samples = Generate(5, 20, 3, seq);
  int rows_with_tail = 0;
  for (size_t k = 0; k < samples.size(); ++k) {
    const BertSample& s = samples[k];
    for (int64_t row = 0; row < 3; ++row) {
      const int64_t* segment = s.segment_ids.data() + row * seq;
      const int64_t* mask = s.input_mask.data() + row * seq;
      if (k % 2 == 0) {
        for (int64_t p = 0; p < seq; ++p) EXPECT_EQ(segment[p], 0);
        continue;
      }
      // 0...0 1...1 inside the valid positions, 0 on padding, never starting at 0.
      EXPECT_EQ(segment[0], 0);
      int64_t p = 0;
      while (p < seq && segment[p] == 0 && mask[p] == 1) ++p;
      while (p < seq && segment[p] == 1 && mask[p] == 1) ++p;
      for (; p < seq; ++p) EXPECT_TRUE(segment[p] == 0 && mask[p] == 0) << "k=" << k;
      rows_with_tail += segment[seq - 1] == 1 || mask[seq - 1] == 0 ? 1 : 0;
    }
  }
  EXPECT_GT(rows_with_tail, 0);
}

TEST(BertInputGeneratorTest, IdsCoverTheVocabularyAndStayInside) {
  std::set<int64_t> seen;
  for (const BertSample& s : Generate(1, 20, 2, 16, 7)) {
    seen.insert(s.input_ids.begin(), s.input_ids.end());
  }
  EXPECT_EQ(seen, (std::set<int64_t>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(MakeBertFeedsTest, EachModelGetsItsOwnDtypeWithTheSameValues) {
  const BertSample sample = Generate(3, 1, 2, 5)[0];
  const BertInputs names{"ids", "", "mask"};
  const std::vector<ValueInfo> int64_inputs = {{"mask", kInt64, {-1, -1}, {}},
                                               {"ids", kInt64, {-1, -1}, {}}};
  const std::vector<ValueInfo> int32_inputs = {{"ids", kInt32, {2, 5}, {}},
                                               {"mask", kInt32, {2, 5}, {}}};
  auto wide = MakeBertFeeds(sample, names, int64_inputs);
  auto narrow = MakeBertFeeds(sample, names, int32_inputs);
  ASSERT_TRUE(wide.ok() && narrow.ok());
  ASSERT_EQ(wide->size(), 2u);
  EXPECT_EQ((*wide)[0].first, "mask");  // model input order
  EXPECT_EQ((*wide)[0].second.type(), kInt64);
  EXPECT_EQ((*narrow)[0].first, "ids");
  EXPECT_EQ((*narrow)[0].second.type(), kInt32);
  EXPECT_THAT((*narrow)[0].second.shape(), ElementsAre(2, 5));
  EXPECT_EQ((*narrow)[0].second.ToInt64(), sample.input_ids);
  EXPECT_EQ((*wide)[1].second.ToInt64(), sample.input_ids);
  EXPECT_EQ((*wide)[0].second.ToInt64(), sample.input_mask);

  const std::vector<ValueInfo> extra = {{"ids", kInt64, {-1, -1}, {}},
                                        {"mask", kInt64, {-1, -1}, {}},
                                        {"other", kInt64, {-1, -1}, {}}};
  auto bad = MakeBertFeeds(sample, names, extra);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("'other'"));
}

TEST(CheckBertInputShapesTest, StaticDimsMustMatchTheRequest) {
  const BertInputs names{"ids", "", ""};
  const std::vector<ValueInfo> fixed = {{"ids", kInt64, {1, 128}, {"", ""}}};
  EXPECT_TRUE(CheckBertInputShapes(names, fixed, 1, 128).ok());
  Status s = CheckBertInputShapes(names, fixed, 2, 64);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(),
            "input 'ids' has dims [1,128], which do not fit the requested batch_size 2 and "
            "sequence_length 64");
  const std::vector<ValueInfo> symbolic = {{"ids", kInt64, {-1, -1}, {"batch", "seq"}}};
  EXPECT_TRUE(CheckBertInputShapes(names, symbolic, 2, 64).ok());
  const std::vector<ValueInfo> rank3 = {{"ids", kInt64, {-1, -1, 1}, {}}};
  EXPECT_FALSE(CheckBertInputShapes(names, rank3, 2, 64).ok());
}

}  // namespace
}  // namespace bertopt::ort
