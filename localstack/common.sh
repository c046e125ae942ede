# Shared settings of the emulator scripts. Sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.mktg"
VENV="$STATE/venv"
# The emulator is pinned: a new version is a deliberate change here.
MINISTACK_SPEC="ministack[full]==1.5.33"
EMULATOR="${EMULATOR:-ministack}"
EMULATOR_HOST="127.0.0.1"
EMULATOR_PORT="${EMULATOR_PORT:-4566}"
ENDPOINT="http://$EMULATOR_HOST:$EMULATOR_PORT"
# The emulator's region; it has nothing to do with any real account.
EMULATOR_REGION="${EMULATOR_REGION:-us-east-1}"
PIDFILE="$STATE/emulator.pid"
LOGFILE="$STATE/emulator.log"
ENVFILE="$STATE/emulator.env"
PYTHON="${PYTHON:-python3}"

say() { printf '[localstack] %s\n' "$*"; }
die() { printf '[localstack] error: %s\n' "$*" >&2; exit 1; }

healthy() {
  "$VENV/bin/python" - "$ENDPOINT" <<'PY' 2>/dev/null
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1] + "/_localstack/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}
