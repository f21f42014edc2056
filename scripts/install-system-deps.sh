#!/usr/bin/env bash
# System packages the test suite needs beyond Python: Debian's headless Chromium, which the UI
# end-to-end test (payout_assets_tests/test_ui.py) drives to screenshot the Dagster asset pages,
# and a font so the screenshots show readable text; PostgreSQL 15 and redis-server, which the
# several-hosts tests (payout_assets_tests/deploy/) start on free ports in a temp dir and stop
# (the packages' own services are not used). Idempotent: installs only what is missing, and
# prints what it did. Needs root (or sudo) and apt.
set -euo pipefail

packages=()
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
dpkg-query -W -f='${Status}' fonts-dejavu-core 2>/dev/null | grep -q "install ok installed" \
  || packages+=(fonts-dejavu-core)
[ -x /usr/lib/postgresql/15/bin/initdb ] || packages+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)

if [ ${#packages[@]} -eq 0 ]; then
  echo "install-system-deps: nothing to do (chromium, postgresql-15, redis-server installed)"
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
echo "install-system-deps: installed ${packages[*]}"
