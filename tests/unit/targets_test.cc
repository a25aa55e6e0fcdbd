// The per-ORT-version table of fused forms (src/passes/targets.*) and how Optimize applies it.
#include "passes/targets.h"

#include <gtest/gtest.h>

namespace bertopt::passes {
namespace {

TEST(TargetsTest, EachMeasuredVersionHasItsForms) {
  auto v129 = TargetFor("1.29");
  ASSERT_TRUE(v129.ok()) << v129.status().ToString();
  EXPECT_TRUE(v129->skip_layer_norm);
  auto v130 = TargetFor("1.30.0");
  ASSERT_TRUE(v130.ok()) << v130.status().ToString();
  EXPECT_FALSE(v130->skip_layer_norm);
  EXPECT_NE(v130->evidence.find("LayerNormalization"), std::string::npos);
  EXPECT_TRUE(v130->residual_sum) << "1.30 re-fuses a plain residual Add as 1.32 does";
  EXPECT_FALSE(v129->residual_sum);
  auto v132 = TargetFor("1.32.0");
  ASSERT_TRUE(v132.ok()) << v132.status().ToString();
  EXPECT_FALSE(v132->skip_layer_norm);
  EXPECT_TRUE(v132->residual_sum) << "ORT refuses a plain residual Add into SkipLayerNormalization";
  EXPECT_NE(v132->evidence.find("SkipLayerNormalization"), std::string::npos);
}

TEST(TargetsTest, AnUnmeasuredVersionGetsTheNewestMeasuredBeforeIt) {
  std::string note;
  auto v = TargetFor("1.31.2", &note);
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(v->ort_version, "1.30");
  EXPECT_NE(note.find("1.31.2 is not measured; using the forms of 1.30"), std::string::npos)
      << note;
  note = "x";
  ASSERT_TRUE(TargetFor("1.29.0", &note).ok());
  EXPECT_EQ(note, "") << "an exact match needs no note";
  // 1.100 is newer than 1.30, not older (numbers, not strings).
  auto far = TargetFor("1.100");
  ASSERT_TRUE(far.ok());
  EXPECT_EQ(far->ort_version, MeasuredTargets().back().ort_version);
}

TEST(TargetsTest, VersionsThatDoNotParseOrAreTooOldAreErrors) {
  for (const char* bad : {"", "abc", "1", "1.", "1.x", "v1.30"}) {
    auto v = TargetFor(bad);
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(v.status().message().find("--target_ort_version"), std::string::npos);
  }
  auto old = TargetFor("1.20");
  ASSERT_FALSE(old.ok());
  EXPECT_NE(old.status().message().find("older than every measured"), std::string::npos);
}

}  // namespace
}  // namespace bertopt::passes
