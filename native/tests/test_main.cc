// Runs every registered native test; prints a ctest-like summary line and returns non-zero on
// any failure. Usage: native_tests [substring-filter]
#include <cstdio>
#include <cstring>
#include <exception>

#include "check.h"

int main(int argc, char **argv) {
  const char *filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0, failed = 0;
  for (const auto &t : aim_edge_test::registry()) {
    if (filter && !std::strstr(t.name, filter)) continue;
    try {
      t.fn();
      ++passed;
      std::printf("PASS %s\n", t.name);
    } catch (const std::exception &e) {
      ++failed;
      std::printf("FAIL %s: %s\n", t.name, e.what());
    }
  }
  std::printf("native: %d passed, %d failed\n", passed, failed);
  return failed == 0 && passed > 0 ? 0 : 1;
}
