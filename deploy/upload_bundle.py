"""Upload a verified report bundle to S3: the nightly job's one write, outside the checks.

    python upload_bundle.py REPORT_DIR s3://BUCKET/PREFIX

It verifies REPORT_DIR against its manifest first (a bundle that does not verify is not
uploaded), then puts every file under ``PREFIX/<environment>/<UTC timestamp>/``, manifest.json
last, then ``PREFIX/<environment>/latest`` (JSON: the run id and its prefix).

This is deliberately not pytest-vcci's AWS target, whose clients refuse every write. It uses its
own credentials: VCCI_UPLOAD_AWS_ACCESS_KEY_ID / VCCI_UPLOAD_AWS_SECRET_ACCESS_KEY (and
VCCI_UPLOAD_AWS_SESSION_TOKEN) when set, else boto3's default chain (for example IRSA on the
service account). AWS_ENDPOINT_URL and AWS_DEFAULT_REGION are honoured as boto3 does.
"""

from __future__ import annotations

import json
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any

from pytest_vcci.history import stamp
from pytest_vcci.report.manifest import MANIFEST, SIGNATURE, verify


def parse_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ValueError(f"{uri!r}: expected s3://BUCKET[/PREFIX]")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")


def s3_client() -> Any:
    import boto3

    keys = {
        "aws_access_key_id": os.environ.get("VCCI_UPLOAD_AWS_ACCESS_KEY_ID"),
        "aws_secret_access_key": os.environ.get("VCCI_UPLOAD_AWS_SECRET_ACCESS_KEY"),
        "aws_session_token": os.environ.get("VCCI_UPLOAD_AWS_SESSION_TOKEN"),
    }
    return boto3.client("s3", **{k: v for k, v in keys.items() if v})


def upload(directory: Path, uri: str, client: Any = None) -> list[str]:
    """Upload the bundle; returns the keys written, in order."""
    checked = verify(directory)
    if not checked.ok or checked.manifest is None:
        problems = "; ".join(str(p) for p in checked.problems)
        raise RuntimeError(f"{directory}: does not verify, not uploaded: {problems}")
    run = checked.manifest["run"]
    bucket, prefix = parse_uri(uri)
    base = "/".join(p for p in (prefix, run["environment"], stamp(run["started_at"])) if p)
    names = [f["path"] for f in checked.manifest["files"]]
    if (directory / SIGNATURE).exists():
        names.append(SIGNATURE)
    names.append(MANIFEST)  # last: a reader that finds the manifest finds every file
    client = client or s3_client()
    written = []
    for name in names:
        key = f"{base}/{name}"
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        client.upload_file(str(directory / name), bucket, key, ExtraArgs={"ContentType": media})
        written.append(key)
    latest = "/".join(p for p in (prefix, run["environment"], "latest") if p)
    client.put_object(
        Bucket=bucket,
        Key=latest,
        Body=json.dumps({"run": run["id"], "prefix": base}).encode(),
        ContentType="application/json",
    )
    written.append(latest)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    directory, uri = Path(argv[0]), argv[1]
    try:
        parse_uri(uri)
        written = upload(directory, uri)
    except (ValueError, RuntimeError) as exc:
        print(f"upload_bundle: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # botocore errors: say what failed, not a traceback
        print(f"upload_bundle: upload to {uri} failed: {exc}", file=sys.stderr)
        return 1
    print(f"upload_bundle: {len(written)} objects to {uri}: {written[-2].rsplit('/', 1)[0]}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
