#!/usr/bin/env bash
# Makes sure a Redis server answers on 127.0.0.1:${FAULTLAB_REDIS_PORT:-6379}; starts one
# (no persistence) when none does. Installs redis-server from Debian's packages if missing.
set -euo pipefail
port=${FAULTLAB_REDIS_PORT:-6379}
ping() { (exec 3<>/dev/tcp/127.0.0.1/"$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
if ping; then exit 0; fi
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is not installed; install it (e.g. apt-get install redis-server)" >&2
    exit 1
  fi
fi
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir /tmp --logfile /tmp/faultlab-redis.log
for _ in $(seq 50); do ping && exit 0; sleep 0.1; done
echo "redis-server did not start on port $port (see /tmp/faultlab-redis.log)" >&2
exit 1
