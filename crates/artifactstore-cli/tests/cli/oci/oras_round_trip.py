"""oras-py against artifactstore's /v2/: push files with annotations, push a referrer with a
subject, pull back, list referrers. Prints one JSON object for the Rust test to check.

Usage: oras_round_trip.py HOST:PORT TOKEN REPOSITORY WORKDIR
"""
import json
import os
import sys

import oras.client
import oras.oci
import requests

host, token, repo, work = sys.argv[1:5]
os.chdir(work)
client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
client.auth.set_basic_auth("ci-pipeline", token)

with open("report.txt", "w") as f:
    f.write("release evidence for guide board\n")
with open("data.bin", "wb") as f:
    f.write(bytes((i * 31 + 7) % 251 for i in range(3 * 1024 * 1024 + 5)))
with open("sig.txt", "w") as f:
    f.write("signature over the release\n")

pushed = client.push(
    target=f"{host}/{repo}:v1",
    files=["report.txt", "data.bin"],
    manifest_annotations={
        "org.artifactstore.retention-class": "release-evidence",
        "git.commit": "3f2a9c1",
    },
    disable_path_validation=True,
    quiet=True,
)
digest = pushed.headers["Docker-Content-Digest"]
head = requests.head(f"http://{host}/v2/{repo}/manifests/v1", auth=("ci-pipeline", token))
head.raise_for_status()
subject = oras.oci.Subject(
    mediaType=head.headers["Content-Type"],
    digest=digest,
    size=int(head.headers["Content-Length"]),
)
signed = client.push(
    target=f"{host}/{repo}:v1-signature",
    files=["sig.txt"],
    subject=subject,
    disable_path_validation=True,
    quiet=True,
)
sig_digest = signed.headers["Docker-Content-Digest"]

pulled = client.pull(target=f"{host}/{repo}:v1", outdir="out")
referrers = requests.get(
    f"http://{host}/v2/{repo}/referrers/{digest}", auth=("ci-pipeline", token)
)
referrers.raise_for_status()
tags = requests.get(f"http://{host}/v2/{repo}/tags/list", auth=("ci-pipeline", token))
tags.raise_for_status()
print(
    json.dumps(
        {
            "digest": digest,
            "signature_digest": sig_digest,
            "pulled": sorted(os.path.relpath(p, "out") for p in pulled),
            "referrers": referrers.json(),
            "tags": tags.json(),
            "signature_subject": signed.headers.get("OCI-Subject"),
        }
    )
)
