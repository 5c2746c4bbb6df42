#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use answers; start the local cluster if it does not.
# The URL is MEMBEROPS_TEST_POSTGRES_URL (default: postgres@127.0.0.1:5432/test, trust auth).
set -euo pipefail
host=127.0.0.1
port=5432
if [[ "${MEMBEROPS_SKIP_POSTGRES:-0}" == "1" ]]; then
  echo "MEMBEROPS_SKIP_POSTGRES=1: PostgreSQL tests will be skipped" >&2
  exit 0
fi
ready() { pg_isready -q -h "$host" -p "$port" 2>/dev/null; }
if ready; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1; then
  for version in $(ls /etc/postgresql 2>/dev/null); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
fi
for _ in $(seq 1 30); do
  if ready; then exit 0; fi
  sleep 1
done
echo "PostgreSQL is not answering on $host:$port. Start it, or set MEMBEROPS_TEST_POSTGRES_URL," >&2
echo "or run the suite without it knowingly with MEMBEROPS_SKIP_POSTGRES=1." >&2
exit 1
