"""The blob stores, each held to the same tests: LocalStore on a folder, S3Store on a real S3 server
speaking HTTP on 127.0.0.1 (moto's standalone server, started once for this file). They need none of
the run's services (Redis, PostgreSQL, Prefect): only tmp_path."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
from moto.server import ThreadedMotoServer

from appealflow.models.files.s3 import S3Store, s3_store_from_url
from appealflow.models.files.store import BlobStore, LocalStore, key_of


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("AWS_")]:  # none of this machine's AWS settings
            env.delenv(name)
        env.setenv("AWS_ACCESS_KEY_ID", "test")
        env.setenv("AWS_SECRET_ACCESS_KEY", "test")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        env.setenv("NO_PROXY", "127.0.0.1")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: a free one
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


def _new_bucket(endpoint: str) -> str:
    bucket = f"appealflow-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> BlobStore:
    if request.param == "local":
        return LocalStore(tmp_path / "files")
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Store(_new_bucket(endpoint), endpoint_url=endpoint)  # a bucket of its own for each test


def test_put_returns_the_sha256_and_stores_once(store):
    data = b"a photo of the pothole"
    key = store.put(data)
    assert key == key_of(data) and len(key) == 64
    assert store.put(data) == key
    assert store.all_keys() == {key}


def test_get_returns_what_was_put(store):
    key = store.put(b"\x00\xffbytes, not text\n")
    assert store.get(key) == b"\x00\xffbytes, not text\n"
    assert store.get(store.put(b"")) == b""


def test_get_of_an_absent_key_is_a_key_error(store):
    store.put(b"something else")
    with pytest.raises(KeyError):
        store.get(key_of(b"never stored"))


@pytest.mark.parametrize("key", ["", "abc", key_of(b"x").upper(), key_of(b"x") + "0", "g" * 64,
                                 "../" + key_of(b"x")[3:], key_of(b"x")[:63] + "/"])
def test_a_malformed_key_is_a_key_error(store, key):
    with pytest.raises(KeyError):
        store.get(key)
    with pytest.raises(KeyError):
        store.delete(key)


def test_delete(store):
    key = store.put(b"to be forgotten")
    kept = store.put(b"to be kept")
    store.delete(key)
    with pytest.raises(KeyError):
        store.get(key)
    store.delete(key)  # again, and a key never stored: nothing happens
    store.delete(key_of(b"never stored"))
    assert store.get(kept) == b"to be kept"


def test_all_keys_lists_exactly_what_was_put(store):
    assert store.all_keys() == set()
    keys = {store.put(f"file {n}".encode()) for n in range(5)}
    assert store.all_keys() == keys
    store.delete(min(keys))
    assert store.all_keys() == keys - {min(keys)}


def test_two_megabytes_round_trip(store):
    data = os.urandom(2 * 1024 * 1024)
    key = store.put(data)
    assert key == key_of(data)
    assert store.get(key) == data


def test_only_keys_written_before_a_moment_are_listed_and_a_put_again_makes_one_young(store):
    old = store.put(b"old bytes")
    time.sleep(1.1)  # S3 keeps LastModified to the second
    cutoff = datetime.now(UTC)
    time.sleep(1.1)
    store.put(b"young bytes")
    assert store.all_keys(written_before=cutoff) == {old}
    store.put(b"old bytes")  # the same bytes again, from a new upload on its way to its commit
    assert store.all_keys(written_before=cutoff) == set()


def test_s3_keys_outside_the_prefix_are_not_listed(s3_endpoint):
    bucket = _new_bucket(s3_endpoint)
    ours = S3Store(bucket, endpoint_url=s3_endpoint)
    other = S3Store(bucket, endpoint_url=s3_endpoint, prefix="elsewhere/")
    key = ours.put(b"ours")
    other.put(b"theirs")
    ours.client.put_object(Bucket=bucket, Key="files/not-a-key", Body=b"")
    assert ours.all_keys() == {key}


def test_s3_store_from_url(s3_endpoint):  # its environment: dummy credentials, a region
    store = s3_store_from_url("s3://appeal-files/appealflow/files?endpoint=http://127.0.0.1:9000")
    assert (store.bucket, store.prefix) == ("appeal-files", "appealflow/files/")
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9000"
    assert s3_store_from_url("s3://appeal-files").prefix == "files/"
    for bad in ["https://appeal-files/files", "s3:///files", "s3://appeal-files/?endpoint_url=http://x"]:
        with pytest.raises(ValueError):
            s3_store_from_url(bad)
