"""A loopback S3 server for the off-host copy tests: moto's server mode (moto.server.ThreadedMotoServer, pinned in
requirements-dev.txt) on 127.0.0.1, spoken to over real HTTP by the real boto3. `require_auth()` turns on moto's
signature and IAM checks (its /moto-api/reset-auth), so a wrong key is refused the way S3 refuses it."""

from __future__ import annotations

import boto3
import requests
from botocore.config import Config
from moto.server import ThreadedMotoServer

ACCESS_KEY = "AKIAEXAMPLEBACKUP01"  # moto accepts any key while auth is off
SECRET_KEY = "secret-key-for-the-loopback-server"
BUCKET = "stack-backups"


class S3Server:
    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._client = None

    def __enter__(self) -> S3Server:
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.open_auth()
        self.server.stop()

    def reset(self) -> None:
        self.open_auth()
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def client(self):
        """One client for the test's own look at the bucket (a new one loads botocore's models again: 0.2 s)."""
        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY, config=Config(s3={"addressing_style": "path"}))
        return self._client

    def env(self, **overrides: str) -> dict[str, str]:
        """The BACKUP_S3_* settings pointing at this server."""
        return {"BACKUP_S3_ENDPOINT": self.url, "BACKUP_S3_BUCKET": BUCKET, "BACKUP_S3_PREFIX": "site-a/stack",
                "BACKUP_S3_ACCESS_KEY_ID": ACCESS_KEY, "BACKUP_S3_SECRET_ACCESS_KEY": SECRET_KEY, **overrides}

    def keys(self, bucket: str = BUCKET, prefix: str = "") -> dict[str, int]:
        client = self.client()
        found: dict[str, int] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.update({item["Key"]: item["Size"] for item in page.get("Contents") or []})
        return found

    def require_auth(self) -> tuple[str, str]:
        """An IAM user allowed everything on S3, its key pair; from now on every request must be signed by a key
        the server knows (moto checks the signature and the user's policy)."""
        iam = boto3.session.Session().client("iam", endpoint_url=self.url, region_name="us-east-1",
                                             aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        iam.create_user(UserName="backup")
        iam.put_user_policy(UserName="backup", PolicyName="s3", PolicyDocument=(
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}'))
        key = iam.create_access_key(UserName="backup")["AccessKey"]
        requests.post(f"{self.url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
        return key["AccessKeyId"], key["SecretAccessKey"]

    def open_auth(self) -> None:
        requests.post(f"{self.url}/moto-api/reset-auth", data=b"inf", timeout=10).raise_for_status()
