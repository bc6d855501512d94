// The error for bad input: a data file, vocabulary, checkpoint or config that is malformed,
// missing or inconsistent. Its message names the file (and line or key where known). The CLI
// maps it to exit code 2; every other failure is exit code 1.
#pragma once

#include <stdexcept>

namespace nlpkit {

class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace nlpkit
