#!/usr/bin/env bash
# Set-up command 1: install what is missing, build, fetch the SpamAssassin corpus and train the
# quickstart classifier, ending with the test-set metrics. Extra arguments are config overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
build/nlpkit data prepare spam_assassin
build/nlpkit train configs/quickstart.yaml "$@"
