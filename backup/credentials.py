"""Which credentials a restored store will accept, and whether the ones in .env are among them.

A restore brings back each store's own idea of who may log in, whatever .env says now:
- InfluxDB 2: a full restore replaces the KV store, so only the set's tokens work afterwards; InfluxDB 2.9 keeps
  only their hashes (--use-hashed-tokens, on by default) and its KV restore answers {"token": ""}
  (http/restore_service.go), so a restore cannot learn the set's operator token from the server.
- InfluxDB 3: the catalog keeps the SHA-512 of each admin token (influxdb3_catalog/src/catalog.rs
  compute_token_hash), and at start the server ignores --admin-token-file when a token of the file's name already
  exists ("Admin token '…' already exists, skipping initialization", influxdb3/src/commands/serve.rs, v3.6.0 and
  v3.10.1). The same rule makes a changed INFLUXDB3_ADMIN_TOKEN do nothing after the first start.
- Grafana: grafana.db holds each user's password hash; GF_SECURITY_ADMIN_PASSWORD only creates the admin user on
  a first start.

So each set records, per store, what lets a restore compare the .env in use with the set, never a secret: for
InfluxDB 2 a salted PBKDF2 fingerprint of the token the backup was taken with (the server accepted it, so it is in
the KV store); for InfluxDB 3 the catalog's admin tokens as `system.tokens` lists them (name and the first 9 hex
digits of the stored SHA-512, influxdb3_system_tables/src/tokens.rs); Grafana is checked against the set's
grafana.db itself, with Grafana's own password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backup.config import BackupConfig
from backup.grafana import DB_NAME
from backup.setfiles import StoreReader
from backup.sets import BackupSet

__all__ = ["FINGERPRINT_ITERATIONS", "Mismatch", "check_restore", "fingerprint", "fingerprint_matches",
           "grafana_encode_password", "grafana_password_opens", "influxdb3_hash_prefix"]

log = logging.getLogger("backup.credentials")

FINGERPRINT_ITERATIONS = 100_000
# influxdb3_system_tables/src/tokens.rs: `hex::encode(&token.hash)[..9]`
INFLUXDB3_HASH_PREFIX = 9


@dataclass(frozen=True)
class Mismatch:
    """A store that will not accept .env's credential after the restore. `overridable`: the restore can go on
    (the user recovers access afterwards); otherwise the restore itself could not finish."""

    store: str
    message: str
    overridable: bool


def fingerprint(secret: str, *, salt: bytes | None = None) -> dict[str, Any]:
    """A salted, slow hash of `secret` for the manifest: comparable with a candidate, useless to log in with."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), salt, FINGERPRINT_ITERATIONS)
    return {"scheme": "pbkdf2-sha256", "iterations": FINGERPRINT_ITERATIONS, "salt": salt.hex(), "hash": digest.hex()}


def fingerprint_matches(secret: str, record: dict[str, Any]) -> bool:
    if record.get("scheme") != "pbkdf2-sha256":
        raise ValueError(f"unknown credential fingerprint scheme {record.get('scheme')!r}")
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode("utf-8"), bytes.fromhex(record["salt"]),
                                 int(record["iterations"]))
    return hmac.compare_digest(digest.hex(), record["hash"])


def influxdb3_hash_prefix(token: str) -> str:
    """What `system.tokens` shows of a token: the start of the SHA-512 the catalog stores."""
    return hashlib.sha512(token.encode("utf-8")).hexdigest()[:INFLUXDB3_HASH_PREFIX]


def grafana_encode_password(password: str, salt: str) -> str:
    """Grafana's util.EncodePassword (pkg/util/encoding.go): PBKDF2-HMAC-SHA256, 10,000 iterations, 50 bytes,
    hex; its own test vector ("iamgod", "pepper") is in tests/backup/test_credentials.py."""
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), 10_000, 50).hex()


def grafana_password_opens(db_path: Path, login: str, password: str) -> bool | None:
    """Whether Grafana would let `login` in with `password` on this database (pkg/services/authn/clients/
    grafana.go AuthenticatePassword: the user by login or email, then EncodePassword with the user's salt).
    None when the database has no such user."""
    connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT password, salt FROM user WHERE lower(login) = lower(?) OR "
                                 "lower(email) = lower(?) ORDER BY lower(login) = lower(?) DESC LIMIT 1",
                                 (login, login, login)).fetchone()
    finally:
        connection.close()
    if row is None:
        return None
    stored, salt = row[0] or "", row[1] or ""
    return hmac.compare_digest(grafana_encode_password(password, salt), stored)


def check_restore(config: BackupConfig, backup_set: BackupSet, stores: list[str], *, replaces_influxdb2: bool,
                  scratch: Path) -> list[Mismatch]:
    """Every store of `stores` that would not accept .env's credential once the set is restored."""
    found = []
    for store in stores:
        result = backup_set.manifest.stores[store]
        if store == "influxdb2" and replaces_influxdb2:
            found += _influxdb2(config, result.details)
        elif store == "influxdb3":
            found += _influxdb3(config, result.details)
        elif store == "grafana":
            reader = StoreReader(backup_set.path, store, backup_set.manifest.files_of(store), config.encryption_key)
            found += _grafana(config, reader, scratch)
    return found


def _unrecorded(store: str, variable: str, why: str) -> list[Mismatch]:
    log.warning("the set does not record which %s credentials it holds (%s): make sure %s in .env is the one it "
                "was taken with", store, why, variable)
    return []


def _influxdb2(config: BackupConfig, details: dict[str, Any]) -> list[Mismatch]:
    record = details.get("credential")
    if record is None:
        return _unrecorded("InfluxDB 2", "INFLUXDB2_ADMIN_TOKEN", "taken by an older version")
    if fingerprint_matches(config.influxdb2_token or "", record):
        return []
    return [Mismatch("influxdb2", (
        "InfluxDB 2: INFLUXDB2_ADMIN_TOKEN is not the token this set was taken with. A full restore replaces every "
        "InfluxDB 2 user and token with the set's, and InfluxDB 2.9 keeps only their hashes, so the restore could "
        "not go on after that first step and would leave the stack locked out with no data. Put back the "
        "INFLUXDB2_ADMIN_TOKEN of the .env kept with this set (on a new host: before the first `make up`), or "
        "restore single buckets (BUCKET=...), which keep this install's tokens"), overridable=False)]


def _influxdb3(config: BackupConfig, details: dict[str, Any]) -> list[Mismatch]:
    tokens = details.get("admin_tokens")
    if tokens is None:
        return _unrecorded("InfluxDB 3", "INFLUXDB3_ADMIN_TOKEN",
                           details.get("admin_tokens_error") or "taken by an older version")
    if any(token["hash"] == influxdb3_hash_prefix(config.influxdb3_token or "") for token in tokens):
        return []
    names = sorted(token["name"] for token in tokens)
    if config.influxdb3_token_name not in names:
        log.info("INFLUXDB3_ADMIN_TOKEN is not in the set's catalog, but its name %r is new to it: InfluxDB 3 adds it "
                 "as an admin token at its next start", config.influxdb3_token_name)
        return []
    return [Mismatch("influxdb3", (
        f"InfluxDB 3: INFLUXDB3_ADMIN_TOKEN is none of the admin tokens in this set's catalog ({', '.join(names)}), "
        f"and its name {config.influxdb3_token_name!r} (INFLUXDB3_ADMIN_TOKEN_NAME) is taken there: after the restore "
        f"the server keeps the set's token and ignores .env's (\"Admin token '{config.influxdb3_token_name}' "
        "already exists, skipping initialization\"), so every service gets 401. Put back the INFLUXDB3_ADMIN_TOKEN "
        "of the .env kept with this set, or give .env's token a name the set does not have "
        "(INFLUXDB3_ADMIN_TOKEN_NAME=_admin-2): the server then adds it as an admin token at its next start"),
        overridable=True)]


def _grafana(config: BackupConfig, reader: StoreReader, scratch: Path) -> list[Mismatch]:
    login = config.grafana_user or ""
    with reader.as_local_file(DB_NAME, scratch) as path:
        try:
            opens = grafana_password_opens(path, login, config.grafana_password or "")
        except sqlite3.Error as exc:
            return _unrecorded("Grafana", "GRAFANA_ADMIN_PASSWORD", f"its grafana.db has no user table: {exc}")
    if opens:
        return []
    problem = (f"the set's grafana.db has no user {login!r}" if opens is None
               else f"GRAFANA_ADMIN_PASSWORD does not open the set's grafana.db for user {login!r}")
    return [Mismatch("grafana", (
        f"Grafana: {problem}. After the restore Grafana keeps the set's users and passwords "
        "(GF_SECURITY_ADMIN_PASSWORD only creates the admin on a first start): nobody could log in with .env's "
        "password and the backup service's exports would fail. Put back the GRAFANA_ADMIN_USER and "
        "GRAFANA_ADMIN_PASSWORD of the .env kept with this set, or restore anyway and then give the admin .env's "
        "password with `grafana cli admin reset-admin-password --password-from-stdin` (README, 'Rotating "
        "credentials')"), overridable=True)]
