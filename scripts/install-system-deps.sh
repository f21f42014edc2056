#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's headless Chromium, which the UI
# end-to-end test (payout_assets_tests/test_ui.py) drives to screenshot the Dagster asset pages,
# and a font so the screenshots show readable text. Idempotent: installs only what is missing,
# and prints what it did. Needs root (or sudo) and apt.
set -euo pipefail

packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q "install ok installed" \
  || packages+=(fonts-dejavu-core)

if [ ${#packages[@]} -eq 0 ]; then
  echo "install-system-deps: nothing to do (chromium: $(command -v chromium))"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-system-deps: need root (or sudo) to apt-get install ${packages[*]}" >&2
  exit 1
fi

echo "install-system-deps: installing ${packages[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install-system-deps: installed ${packages[*]} ($(chromium --version 2>/dev/null || echo 'chromium: not found'))"
