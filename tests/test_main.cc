// The main of every doze GoogleTest binary: points the tests at this build's source, build and tokenizer
// folders (unless the environment already does), then runs them.
#include <cstdlib>

#include "gtest/gtest.h"

int main(int argc, char** argv) {
  setenv("DOZE_SOURCE_DIR", DOZE_TEST_SOURCE_DIR, /*overwrite=*/0);
  setenv("DOZE_BUILD_DIR", DOZE_TEST_BUILD_DIR, /*overwrite=*/0);
  setenv("DOZE_TOKENIZER_DIR", DOZE_TEST_TOKENIZER_DIR, /*overwrite=*/0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
