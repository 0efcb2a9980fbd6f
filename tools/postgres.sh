#!/usr/bin/env bash
# PostgreSQL for the audit-store tests, for real, on 127.0.0.1:5432: installed from Debian's packages when root
# on Debian, configured to trust the local `postgres` user on loopback (a test machine's throw-away cluster),
# started, and given the `test` database the suite uses. Idempotent; a no-op when it already answers.
set -euo pipefail

dsn_ok() { psql -h 127.0.0.1 -p 5432 -U postgres -d test -Atqc 'select 1' >/dev/null 2>&1; }
say() { echo "postgres: $*" >&2; }
fail() {
  if [ "${CI:-}" = "true" ]; then say "$* (CI=true: the audit-store tests need it)"; exit 1; fi
  say "$* — the PostgreSQL half of the audit-store tests will be skipped"; exit 0
}

command -v psql >/dev/null && dsn_ok && exit 0
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || fail "not running and cannot install it here (needs root on Debian: apt-get install postgresql)"

if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  say "installing postgresql from Debian's packages"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n1)
hba=/etc/postgresql/$version/main/pg_hba.conf
rule="host all postgres 127.0.0.1/32 trust"
grep -qxF "$rule" "$hba" || sed -i "1i $rule" "$hba"
if pg_ctlcluster --skip-systemctl-redirect "$version" main status >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$version" main reload
else
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
pg_isready -q -h 127.0.0.1 -p 5432 || fail "did not start within 30 s"
psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select 1 from pg_database where datname = 'test'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -d postgres -qc "create database test"
dsn_ok || fail "started, but postgresql://postgres@127.0.0.1:5432/test does not answer"
say "ready on 127.0.0.1:5432 (database test)"
