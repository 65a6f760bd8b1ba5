#!/usr/bin/env bash
# Measure the image's budgets: size, and container start -> first 200 on /health/ready.
#   deploy/docker/measure-budgets.sh [IMAGE] [RUNS]      (ENGINE=podman to use podman)
# Start time is measured from just before `run` to the first successful readiness call,
# with the production flags (read-only root, tmpfs /tmp), on a free loopback port.
set -euo pipefail
image=${1:-anomaly-api:latest}
runs=${2:-5}
engine=${ENGINE:-docker}
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

size=$("$engine" image inspect --format '{{.Size}}' "$image")
echo "image $image: $((size / 1000000)) MB (budget 450 MB)"

for run in $(seq 1 "$runs"); do
  name="anomaly-budget-$$-$run"
  start=$(date +%s.%N)
  "$engine" run -d --name "$name" --read-only --tmpfs /tmp -p "127.0.0.1:$port:8000" "$image" >/dev/null
  ready=no
  for _ in $(seq 1 600); do  # at most ~60 s
    if python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/health/ready', timeout=1)" 2>/dev/null; then
      ready=yes
      break
    fi
    sleep 0.1
  done
  end=$(date +%s.%N)
  "$engine" rm -f "$name" >/dev/null 2>&1
  [ "$ready" = yes ] || { echo "run $run: not ready within 60 s" >&2; exit 1; }
  echo "run $run: start -> ready $(python3 -c "print(f'{$end - $start:.2f}')") s (budget 5 s)"
done
