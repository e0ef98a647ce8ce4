#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh machine it first installs what the tests need:
# - b3sum (Debian package): the CLI tests compare digests with an independent implementation.
# Later backends (PostgreSQL, SeaweedFS S3) are provisioned here too.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v b3sum >/dev/null || need_apt+=(b3sum)
command -v sha256sum >/dev/null || need_apt+=(coreutils)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "scripts/test.sh: installing ${need_apt[*]}" >&2
    apt-get install -y -q "${need_apt[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${need_apt[@]}" >/dev/null; }
  else
    echo "scripts/test.sh: please install ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

cargo test --workspace --locked "$@"
