#!/usr/bin/env bash
# The system tools `make test` needs (docs/quick-start.md lists them), installed with
# apt-get when missing and we are root; otherwise the missing ones are named and this fails.
# Also starts the tests' shared Redis on 127.0.0.1:6379 when nothing answers there.
set -euo pipefail

# command:Debian package
tools=(make:make redis-server:redis-server redis-cli:redis-tools curl:curl kubectl:kubectl
       wrk:wrk chromium:chromium promtool:prometheus prometheus:prometheus ip:iproute2
       mosquitto:mosquitto mosquitto_pub:mosquitto-clients)
need=()
for entry in "${tools[@]}"; do
  command -v "${entry%%:*}" >/dev/null 2>&1 || need+=("${entry#*:}")
done

if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing what the tests need: ${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "error: make test needs: ${need[*]}; install them (Debian: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting redis-server on 127.0.0.1:6379 (the tests' shared Redis)" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
