#!/usr/bin/env bash
# pgvector for Debian's PostgreSQL 15 (the similar-case index on PostgreSQL, engines/similar/pg_index.py).
# Debian bookworm ships no postgresql-15-pgvector (it is in the PGDG repository and in Debian >= trixie for
# PostgreSQL 17), so: use the package when apt has it, else build Debian's pgvector source (checksummed)
# against postgresql-server-dev-15. Needs root. Idempotent.
set -euo pipefail
PG=${PG_MAJOR:-15}
[ -f "/usr/share/postgresql/$PG/extension/vector.control" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
if apt-cache show "postgresql-$PG-pgvector" >/dev/null 2>&1; then
  apt-get install -y -qq --no-install-recommends "postgresql-$PG-pgvector" >/dev/null
  exit 0
fi
apt-get install -y -qq --no-install-recommends "postgresql-server-dev-$PG" make gcc curl ca-certificates >/dev/null
VER=0.8.0
SHA=867a2c328d4928a5a9d6f052cd3bc78c7d60228a9b914ad32aa3db88e9de27b0
TAR="pgvector_$VER.orig.tar.gz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -fsSL -o "$work/$TAR" "http://deb.debian.org/debian/pool/main/p/pgvector/$TAR" \
  || curl -fsSL -o "$work/$TAR" "https://snapshot.debian.org/archive/debian/20241101T000000Z/pool/main/p/pgvector/$TAR"
echo "$SHA  $work/$TAR" | sha256sum -c --quiet -
tar xzf "$work/$TAR" -C "$work"
# OPTFLAGS="" : no -march=native, the build runs on any x86-64 machine of the site
make -s -C "$work/pgvector-$VER" PG_CONFIG="/usr/lib/postgresql/$PG/bin/pg_config" OPTFLAGS="" >/dev/null
make -s -C "$work/pgvector-$VER" PG_CONFIG="/usr/lib/postgresql/$PG/bin/pg_config" install >/dev/null
