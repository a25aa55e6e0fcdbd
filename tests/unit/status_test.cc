#include "bertopt/status.h"

#include <gtest/gtest.h>

#include "ort/version.h"

namespace bertopt {
namespace {

StatusOr<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgument("odd: " + std::to_string(x));
  return x / 2;
}

Status Quarter(int x, int* out) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(*out, Half(h));
  return Status::Ok();
}

TEST(StatusTest, OkAndErrorsCarryCodeAndMessage) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = NotFound("a.onnx: no such file");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "not found: a.onnx: no such file");
  EXPECT_EQ(std::move(s).WithContext("loading").message(), "loading: a.onnx: no such file");
}

TEST(StatusTest, AssignOrReturnPropagatesTheFirstError) {
  int out = 0;
  EXPECT_TRUE(Quarter(8, &out).ok());
  EXPECT_EQ(out, 2);
  Status s = Quarter(6, &out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "odd: 3");
}

TEST(OrtVersionTest, LoadedRuntimeIs1_29) {
  EXPECT_EQ(ort::RuntimeVersion().rfind("1.29", 0), 0u) << ort::RuntimeVersion();
}

}  // namespace
}  // namespace bertopt
