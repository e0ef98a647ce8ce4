"""A user in another language: a client generated from openapi.json (openapi-python-client,
module `artifactstore_client`) uploads a blob, creates a package from a manifest, and reads
the package, its retention state and its file back. Usage: api-client-check.py BASE TOKEN.
Exits non-zero (with the reason) when any step does not give what the document promised."""

import hashlib
import sys

from artifactstore_client import AuthenticatedClient
from artifactstore_client.api.default import (
    create_package,
    get_file,
    get_package,
    get_retention,
    put_blob,
)
from artifactstore_client.models import (
    BlobResult,
    Manifest,
    ManifestFilesItem,
    PackageCreatedResult,
    PackageViewResult,
    RetentionStatusResult,
)
from artifactstore_client.types import File


def fail(why: str) -> None:
    print(f"api-client-check: {why}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    base, token = sys.argv[1], sys.argv[2]
    client = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)
    content = b"written by a generated Python client\n"
    sha256 = "sha256:" + hashlib.sha256(content).hexdigest()

    stored = put_blob.sync(sha256, client=client, body=File(payload=content))
    if not isinstance(stored, BlobResult):
        fail(f"PUT /blobs/{sha256} answered {stored!r}")
    if stored.sha256 != sha256 or stored.size != len(content):
        fail(f"the stored blob is {stored!r}")

    manifest = Manifest(
        schema="artifactstore.manifest/v1",
        name="python-client",
        version="1.0.0",
        retention_class="ephemeral",
        files=[
            ManifestFilesItem(
                path="notes/hello.txt",
                size=len(content),
                blake3=stored.blake3,
                sha256=sha256,
                media_type="text/plain",
            )
        ],
    )
    created = create_package.sync(client=client, body=manifest)
    if not isinstance(created, PackageCreatedResult):
        fail(f"POST /packages answered {created!r}")

    shown = get_package.sync("python-client@1.0.0", client=client)
    if not isinstance(shown, PackageViewResult) or shown.package_id != created.package_id:
        fail(f"GET /packages/python-client@1.0.0 answered {shown!r}")
    if shown.name != "python-client" or shown.retention_class != "ephemeral":
        fail(f"the package reads back as {shown!r}")

    retention = get_retention.sync(created.package_id, client=client)
    if not isinstance(retention, RetentionStatusResult):
        fail(f"GET /packages/{created.package_id}/retention answered {retention!r}")
    if retention.current_expires_at != created.current_expires_at:
        fail(f"expiry {retention.current_expires_at} != {created.current_expires_at}")

    read = get_file.sync_detailed(created.package_id, "notes/hello.txt", client=client)
    if read.status_code != 200 or read.content != content:
        fail(f"GET …/files/notes/hello.txt answered {read.status_code}: {read.content!r}")
    print(f"api-client-check: ok ({created.package_id})")


if __name__ == "__main__":
    main()
