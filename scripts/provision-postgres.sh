#!/usr/bin/env bash
# Makes sure the PostgreSQL server binaries the tests use are installed: the tests (and the
# catalogs benchmark) start a throwaway cluster from /usr/lib/postgresql/<version>/bin (see
# crates/artifact-core/src/testing_postgres.rs). Nothing to do when ARTIFACTSTORE_TEST_POSTGRES_URL
# points the tests at an existing server, or ARTIFACTSTORE_TEST_POSTGRES_BIN at other binaries.
# Installs the Debian `postgresql` package as root; asks for it otherwise. Starts nothing.
set -euo pipefail

if [ -n "${ARTIFACTSTORE_TEST_POSTGRES_URL:-}" ]; then
  exit 0
fi
if [ -n "${ARTIFACTSTORE_TEST_POSTGRES_BIN:-}" ]; then
  [ -x "$ARTIFACTSTORE_TEST_POSTGRES_BIN/postgres" ] && exit 0
  echo "provision-postgres.sh: no postgres in ARTIFACTSTORE_TEST_POSTGRES_BIN=$ARTIFACTSTORE_TEST_POSTGRES_BIN" >&2
  exit 1
fi
if compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "provision-postgres.sh: the PostgreSQL tests need the server binaries: sudo apt-get install postgresql" >&2
  exit 1
fi
echo "provision-postgres.sh: installing postgresql" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q postgresql >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
# The package may start a cluster of its own; the tests do not use it.
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null \
  || { echo "provision-postgres.sh: postgresql installed but no /usr/lib/postgresql/*/bin/postgres" >&2; exit 1; }
