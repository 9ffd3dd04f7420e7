// Minimal self-registering test framework for the native core (no dependency, no Python).
// A failed CHECK throws, so one failing test does not stop the others and nothing aborts.
#pragma once

#include <cmath>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace aim_edge_test {

struct TestCase {
  const char *name;
  std::function<void()> fn;
};

inline std::vector<TestCase> &registry() {
  static std::vector<TestCase> tests;
  return tests;
}

struct Registrar {
  Registrar(const char *name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

struct CheckFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace aim_edge_test

#define AE_CONCAT_(a, b) a##b
#define AE_CONCAT(a, b) AE_CONCAT_(a, b)

// TEST(name) { ... } defines and registers a test.
#define TEST(name)                                                                   \
  static void name();                                                                \
  static ::aim_edge_test::Registrar AE_CONCAT(registrar_, name)(#name, &name);       \
  static void name()

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::ostringstream os_;                                                        \
      os_ << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed";             \
      throw ::aim_edge_test::CheckFailure(os_.str());                                \
    }                                                                                \
  } while (0)

#define CHECK_EQ(a, b)                                                               \
  do {                                                                               \
    auto va_ = (a);                                                                  \
    auto vb_ = (b);                                                                  \
    if (!(va_ == vb_)) {                                                             \
      std::ostringstream os_;                                                        \
      os_ << __FILE__ << ":" << __LINE__ << ": CHECK_EQ(" #a ", " #b ") failed: "    \
          << va_ << " != " << vb_;                                                   \
      throw ::aim_edge_test::CheckFailure(os_.str());                                \
    }                                                                                \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                        \
  do {                                                                               \
    double va_ = (a);                                                                \
    double vb_ = (b);                                                                \
    if (!(std::fabs(va_ - vb_) <= (tol))) {                                          \
      std::ostringstream os_;                                                        \
      os_ << __FILE__ << ":" << __LINE__ << ": CHECK_NEAR(" #a ", " #b ") failed: "  \
          << va_ << " vs " << vb_ << " (tol " << (tol) << ")";                       \
      throw ::aim_edge_test::CheckFailure(os_.str());                                \
    }                                                                                \
  } while (0)

// CHECK_THROWS(stmt, ExceptionType): stmt must throw exactly that family.
#define CHECK_THROWS(stmt, Exc)                                                      \
  do {                                                                               \
    bool thrown_ = false;                                                            \
    try {                                                                            \
      stmt;                                                                          \
    } catch (const Exc &) {                                                          \
      thrown_ = true;                                                                \
    }                                                                                \
    if (!thrown_) {                                                                  \
      std::ostringstream os_;                                                        \
      os_ << __FILE__ << ":" << __LINE__ << ": " #stmt " did not throw " #Exc;       \
      throw ::aim_edge_test::CheckFailure(os_.str());                                \
    }                                                                                \
  } while (0)
