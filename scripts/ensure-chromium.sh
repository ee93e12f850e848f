#!/usr/bin/env bash
# Report PNG export (kaleido) and the page-rendering tests need a Chromium.
# Installs Debian's package when we may; otherwise says what to do and fails.
set -euo pipefail
for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then
        exit 0
    fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium with apt (about 400 MB, under a minute): the report's PNG export" >&2
    echo "and the tests that render report pages need a browser; nothing else is installed system-wide ..." >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    exit 0
fi
echo "no Chromium found: install your distribution's chromium package for PNG export and page tests" >&2
exit 1
