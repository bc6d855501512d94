#!/usr/bin/env bash
# Regenerates the key reference in configs/README.md from the declarations (run after changing a
# config key; the Config.ReadmeDocumentsEveryKey test fails until then).
set -euo pipefail
cd "$(dirname "$0")/.."
nlpkit=${1:-build/nlpkit}
begin='<!-- BEGIN KEY REFERENCE (nlpkit dump-config --reference) -->'
end='<!-- END KEY REFERENCE -->'
ref=$(mktemp)
"$nlpkit" dump-config --reference > "$ref"
awk -v b="$begin" -v e="$end" -v ref="$ref" '
  $0 == b { print; while ((getline line < ref) > 0) print line; skip = 1; next }
  $0 == e { skip = 0 }
  !skip { print }' configs/README.md > configs/README.md.tmp
mv configs/README.md.tmp configs/README.md
rm -f "$ref"
