#!/usr/bin/env bash
# Set-up command 2: install what is missing, build, and run the whole test suite (the unit tests
# and the command-line end-to-end tests) through CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
cd build && ctest --output-on-failure
