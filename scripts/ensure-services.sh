#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and NATS with JetStream (127.0.0.1:4222) run, starting them, or
# installing them from Debian's packages first, when they do not. Tests and `pnpm start` need only these.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@"
}

if ! port_open 5432; then
  echo "PostgreSQL is not running; starting it"
  command -v pg_ctlcluster >/dev/null 2>&1 || apt_install postgresql
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  # Trust local TCP connections of the postgres user, as the tests expect (a fresh install asks for a password).
  if ! PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
fi
for _ in $(seq 1 50); do port_open 5432 && break; sleep 0.2; done
port_open 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
echo "PostgreSQL: up"

if ! port_open 4222; then
  echo "NATS is not running; starting it"
  [ -x /usr/sbin/nats-server ] || apt_install nats-server
  as_root mkdir -p /var/lib/nats-server /var/log
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
for _ in $(seq 1 50); do port_open 4222 && break; sleep 0.2; done
port_open 4222 || { echo "NATS did not start" >&2; exit 1; }
echo "NATS: up"
