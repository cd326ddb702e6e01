#!/bin/sh
# playwright-core (npm, Apache-2.0; no browser of its own) into DIR, once:
# the operator page's browser test drives Debian's /usr/bin/chromium with it
# (tests/serve/browser.js). Prints DIR on success; fails without npm.
set -e
dir=$1
[ -n "$dir" ] || { echo "usage: fetch_playwright.sh DIR" >&2; exit 2; }
if [ ! -f "$dir/node_modules/playwright-core/package.json" ]; then
  command -v npm >/dev/null 2>&1 || { echo "fetch_playwright: npm not found" >&2; exit 1; }
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-audit --no-fund --silent playwright-core@1.64.1 >&2
fi
echo "$dir"
