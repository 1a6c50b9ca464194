#!/bin/sh
# influxdb3-prepare: runs as root before InfluxDB 3 starts, on every `make up` (idempotent).
# 1. Writes the offline admin token file the server reads with --admin-token-file (JSON, mode 0600).
# 2. Hands the data, plugin-venv and secrets volumes to the server's uid/gid (1500 in the official image).
# Paths and ids can be overridden for tests; the token itself is never printed.
set -eu

SECRETS_DIR="${SECRETS_DIR:-/var/lib/influxdb3/secrets}"
DATA_DIR="${DATA_DIR:-/var/lib/influxdb3/data}"
VENV_DIR="${VENV_DIR:-/var/lib/influxdb3/venv}"
SERVER_UID="${SERVER_UID:-1500}"
SERVER_GID="${SERVER_GID:-1500}"
TOKEN_NAME="${TOKEN_NAME:-_admin}"

log() { echo "[influxdb3-prepare] $*"; }
fail() { echo "[influxdb3-prepare] ERROR: $*" >&2; exit 1; }

token="${INFLUXDB3_ADMIN_TOKEN:-}"
[ -n "$token" ] || fail "INFLUXDB3_ADMIN_TOKEN is empty; run 'make up' to generate .env"
case "$token" in
  apiv3_*) ;;
  *) fail "INFLUXDB3_ADMIN_TOKEN must start with apiv3_ (InfluxDB 3 rejects other admin tokens)" ;;
esac
# base64url only: the value goes into JSON unquoted-safe, and short tokens are guessable.
rest="${token#apiv3_}"
case "$rest" in
  *[!A-Za-z0-9_-]*) fail "INFLUXDB3_ADMIN_TOKEN may contain only A-Z a-z 0-9 _ - after apiv3_" ;;
esac
[ "${#rest}" -ge 22 ] || fail "INFLUXDB3_ADMIN_TOKEN is too short (at least 16 random bytes, base64url)"
# The name goes into the JSON too; the server adds the token only under a name its catalog does not have yet.
case "$TOKEN_NAME" in
  ""|*[!A-Za-z0-9_.-]*) fail "INFLUXDB3_ADMIN_TOKEN_NAME may contain only A-Z a-z 0-9 _ . - (and not be empty)" ;;
esac

mkdir -p "$SECRETS_DIR" "$DATA_DIR" "$VENV_DIR"
umask 077
target="$SECRETS_DIR/admin-token.json"
tmp="$SECRETS_DIR/.admin-token.json.tmp"
printf '{"token": "%s", "name": "%s"}\n' "$token" "$TOKEN_NAME" > "$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$target"

# chown only what is not already the server's: a large venv is not walked on every start.
for dir in "$SECRETS_DIR" "$VENV_DIR" "$DATA_DIR"; do
  if [ "$(stat -c %u:%g "$dir")" != "$SERVER_UID:$SERVER_GID" ]; then
    chown -R "$SERVER_UID:$SERVER_GID" "$dir"
    log "gave $dir to uid $SERVER_UID"
  fi
done
chown "$SERVER_UID:$SERVER_GID" "$target"
chmod 0700 "$SECRETS_DIR"
log "admin token file ready at $target (mode 0600, owner $SERVER_UID)"
