#!/usr/bin/env bash
# rsyslog for the syslog-sink tests, for real: Debian's rsyslog with its OpenSSL network stream driver
# (rsyslog-openssl, for TLS). The tests start their own rsyslogd on unprivileged loopback ports with their own
# config, pid file and work directory; this script only installs it and never starts the system service.
# Idempotent; a no-op when rsyslogd and the ossl driver are present.
set -euo pipefail

say() { echo "rsyslog: $*" >&2; }
fail() {
  if [ "${CI:-}" = "true" ]; then say "$* (CI=true: the syslog-sink tests need it)"; exit 1; fi
  say "$* — the syslog-sink tests against rsyslog will be skipped"; exit 0
}
driver_present() { ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1; }

command -v rsyslogd >/dev/null && driver_present && exit 0
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
  fail "not installed and cannot install it here (needs root on Debian: apt-get install rsyslog rsyslog-openssl)"

say "installing rsyslog and rsyslog-openssl from Debian's packages"
# keep the package scripts from starting the system rsyslog: the tests run their own
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=true
fi
trap '$own_policy && rm -f "$policy"' EXIT
apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends rsyslog rsyslog-openssl >/dev/null
command -v rsyslogd >/dev/null && driver_present || fail "installed, but rsyslogd or its ossl driver is missing"
say "installed $(rsyslogd -v | head -n1)"
