#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "perf/progress.h"

namespace bertopt::perf {
namespace {

std::string Contents(std::FILE* file) {
  std::fflush(file);
  std::rewind(file);
  std::string text;
  char buffer[512];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  return text;
}

TEST(PerfProgressTest, DisabledWritesNothing) {
  std::FILE* file = std::tmpfile();
  {
    PerfProgress progress(file, /*enabled=*/false);
    progress.ShowRuns(1, 2, "B1 S128 T1", 0, 100);
    progress.ShowRuns(1, 2, "B1 S128 T1", 100, 100);
    progress.Show("loading", /*force=*/true);
  }
  EXPECT_EQ(Contents(file), "");
  std::fclose(file);
}

TEST(PerfProgressTest, FirstAndLastRunsAreDrawnInPlaceAndClearedAtTheEnd) {
  std::FILE* file = std::tmpfile();
  {
    PerfProgress progress(file, /*enabled=*/true);
    progress.ShowRuns(3, 8, "B1 S128 T2", 0, 100);
    progress.ShowRuns(3, 8, "B1 S128 T2", 100, 100);
  }
  // Both forced updates start with '\r'; the destructor blanks the line (29 characters) and
  // returns the cursor, so whatever comes next starts on a clean line.
  EXPECT_EQ(Contents(file),
            "\r[3/8] B1 S128 T2: run 0/100"
            "\r[3/8] B1 S128 T2: run 100/100"
            "\r" +
                std::string(29, ' ') + "\r");
  std::fclose(file);
}

TEST(PerfProgressTest, AShorterTextCoversTheLongerOne) {
  std::FILE* file = std::tmpfile();
  PerfProgress progress(file, /*enabled=*/true);
  progress.Show("loading a_long_model_name.onnx", /*force=*/true);
  progress.Show("[1/1] B1", /*force=*/true);
  EXPECT_EQ(Contents(file), "\rloading a_long_model_name.onnx\r[1/1] B1" + std::string(22, ' '));
  progress.Clear();
  std::fclose(file);
}

}  // namespace
}  // namespace bertopt::perf
