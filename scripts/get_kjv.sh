#!/usr/bin/env bash
# Fetches the King James Bible from Debian and writes it as plain text to data/kjv.txt, the
# training text of scripts/train_tiny.py.
#
# Debian's bible-kjv-text holds the text in its own compressed format; bible-kjv's `bible`
# program reads it. Both are downloaded (not installed) and unpacked into a temporary folder;
# the unpacked `bible` prints every verse, one line each, under "Book N" chapter headings.
#
# Licence: the KJV text (1611) is in the public domain. Debian's copyright file for the package
# says: "The copyright for the King James Version text of the Bible is expired since the
# translation was done in 1611 under King James the first of Great Britain." The file is copied
# next to the text as data/kjv.copyright.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
apt-get download bible-kjv-text bible-kjv 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
for deb in bible-kjv-text_*.deb bible-kjv_*.deb; do
  [ -f "$deb" ] || { echo "get_kjv: apt-get download did not fetch $deb (run apt-get update first?)" >&2; exit 1; }
  dpkg-deb -x "$deb" pkg
done

mkdir -p "$out"
# -l100000: no line wrapping, so each verse is one line
pkg/usr/bin/bible -p "$tmp/pkg/usr/lib" -l100000 'Gen1:1-Rev22:21' </dev/null >"$out/kjv.txt"
cp pkg/usr/share/doc/bible-kjv-text/copyright "$out/kjv.copyright"

chapters=$(grep -c '^[^ ].* [0-9]*$' "$out/kjv.txt" || true)
if [ "$chapters" != 1189 ]; then
  echo "get_kjv: expected 1189 chapters in $out/kjv.txt, found $chapters" >&2
  exit 1
fi
echo "get_kjv: wrote $out/kjv.txt ($(wc -c <"$out/kjv.txt") bytes, $chapters chapters)"
