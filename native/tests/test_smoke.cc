// Guards the test framework itself: a CHECK that fails must be reported as a failure.
#include "check.h"

TEST(framework_reports_failures) {
  bool caught = false;
  try {
    CHECK_EQ(1, 2);
  } catch (const aim_edge_test::CheckFailure &) {
    caught = true;
  }
  CHECK(caught);
}
