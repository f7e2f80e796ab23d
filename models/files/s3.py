"""File bytes in an S3 bucket (AWS, or any S3-compatible server given by its endpoint): LocalStore keeps
them on one host's disk, and a deployment whose API and workers run on many hosts needs one store they
all share. Same interface and content addressing as models/files/store.py: an object is named prefix +
the SHA-256 of its bytes, so a put of bytes already there uploads nothing and no name ever gets other
content. Credentials and region come from boto3's usual chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_DEFAULT_REGION, a profile, an instance role). boto3 is needed only here, when S3 is configured."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.exceptions import ClientError

from appealflow.models.files.store import key_of

_ABSENT = {"404", "NoSuchKey", "NotFound"}


def _absent(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in _ABSENT


def _valid(key: str) -> bool:
    return len(key) == 64 and all(c in "0123456789abcdef" for c in key)


class S3Store:
    def __init__(self, bucket: str, *, endpoint_url: str | None, prefix: str = "files/", client=None):
        self.bucket = bucket
        self.prefix = prefix
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url)

    def _name(self, key: str) -> str:
        if not _valid(key):
            raise KeyError(key)
        return self.prefix + key

    def put(self, data: bytes) -> str:
        # Written even when the key is there: the same bytes under the same name, made young again,
        # so a collection of old unreferenced objects never takes them from a new upload.
        key = key_of(data)
        self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=data)
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._name(key))["Body"].read()
        except ClientError as error:
            if _absent(error):
                raise KeyError(key) from None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._name(key))  # S3 answers 204 when absent too

    def all_keys(self, written_before: datetime | None = None) -> set[str]:
        keys: set[str] = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                key = item["Key"][len(self.prefix):]
                if written_before is not None and item["LastModified"] >= written_before:
                    continue
                if _valid(key):  # anything else under the prefix is not ours
                    keys.add(key)
        return keys


def s3_store_from_url(url: str) -> S3Store:
    """`s3://bucket/prefix?endpoint=http://127.0.0.1:9000`: the prefix defaults to `files/`, the
    endpoint to AWS's own."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    if parts.scheme != "s3" or not parts.netloc or set(query) - {"endpoint"}:
        raise ValueError(f"not an S3 store URL (s3://bucket/prefix?endpoint=URL): {url}")
    path = parts.path.strip("/")
    return S3Store(parts.netloc, endpoint_url=query.get("endpoint", [None])[-1],
                   prefix=path + "/" if path else "files/")
