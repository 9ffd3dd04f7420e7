// Exception types shared by the native core. The core throws, never aborts: the bindings map
// std::invalid_argument to aim_edge.errors.ConfigError, InvalidInput to AudioInputError and
// any other std::exception to NativeError.
#pragma once

#include <stdexcept>
#include <string>

namespace aim_edge {

/// Audio handed to the core is unusable (a NaN/inf sample, input after the end of a stream).
/// Derives from std::invalid_argument so C++ callers can treat it as a bad argument; bindings
/// must test for it before std::invalid_argument.
class InvalidInput : public std::invalid_argument {
 public:
  explicit InvalidInput(const std::string &what) : std::invalid_argument(what) {}
};

}  // namespace aim_edge
