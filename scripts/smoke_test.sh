#!/usr/bin/env bash
# The smoke gate (SPEC §6): a tiny end-to-end run in a throw-away folder, then checks that
#   - it exits 0,
#   - metrics, report, checkpoints (best, last) and preprocessor exist under artifacts/,
#   - metrics.json holds finite mae/mse/rmse/mape/r2/mase,
#   - its MLflow run finished and holds the same artifacts,
#   - a deliberate run_id mismatch fails with exit 27 and a RUN_ID_MISMATCH payload.
# One line per check (`PASS name` / `FAIL name: why`), then `N passed, M failed`.
# Exits 0 only if every check holds, else 1. PYTHON picks the interpreter (default: python).
# Needs nothing from the environment: MLFLOW_TRACKING_URI is ignored, nothing is left behind.
set -euo pipefail

PYTHON="${PYTHON:-python}"
repo="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
# the checkout's package, also when it is not installed into $PYTHON's environment
export PYTHONPATH="${repo}${PYTHONPATH:+:${PYTHONPATH}}"
unset MLFLOW_TRACKING_URI MLFLOW_RUN_ID MLFLOW_EXPERIMENT_NAME MLFLOW_EXPERIMENT_ID

tmp="$(mktemp -d "${TMPDIR:-/tmp}/splineforecast-smoke.XXXXXX")"
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Hydra's outputs/ and MLflow's artifact folder follow the current directory: keep them in $tmp
cd -- "$tmp"

run_id="smoke-$(date -u +%Y%m%d-%H%M%S)-$$-${RANDOM}"
other_id="${run_id}-other"
art="${tmp}/artifacts"
uri="sqlite:///${tmp}/mlruns/mlflow.db"
store=("paths.artifacts=${art}" "tracking.uri=${uri}")

passed=0
failed=0
pass() {
    printf 'PASS %s\n' "$1"
    passed=$((passed + 1))
}
fail() {
    printf 'FAIL %s: %s\n' "$1" "$2"
    failed=$((failed + 1))
}
# The last line of $1 (what an inline check printed last), or $2 when there is none.
last_line() {
    local text="${1%$'\n'}"
    text="${text##*$'\n'}"
    printf '%s' "${text:-$2}"
}
# PASS/FAIL `name` by an inline Python check (on stdin) that exits 0, or prints why and exits 1.
check_py() {
    local name="$1" out rc
    shift
    if out="$("$PYTHON" - "$@" 2>&1)"; then
        pass "$name"
    else
        rc=$?
        fail "$name" "$(last_line "$out" "the check exited ${rc}")"
    fi
}
# The error payload on the stderr file $1 as `exit_code error.code message`, else nothing.
payload_of() {
    "$PYTHON" - "$1" <<'EOF' 2>/dev/null || true
import json, sys
for line in reversed(open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()):
    try:
        payload = json.loads(line)
    except ValueError:
        continue
    if isinstance(payload, dict) and "error" in payload:
        err = payload["error"]
        print(payload.get("exit_code"), err.get("code"), err.get("message"))
        break
EOF
}

printf 'smoke: run_id %s in %s\n' "$run_id" "$tmp"

# 1. the tiny end-to-end run
if "$PYTHON" -m splineforecast data=tiny trainer=smoke "run_id=${run_id}" "${store[@]}" \
    >"${tmp}/run.out" 2>"${tmp}/run.err"; then
    pass "run exits 0"
else
    rc=$?
    fail "run exits 0" "exit ${rc}: $(last_line "$(payload_of "${tmp}/run.err")" "$(tail -n 1 "${tmp}/run.err")")"
fi

# 2. its local artifacts
for item in \
    "metrics:metrics/${run_id}/metrics.json" \
    "report:reports/${run_id}/report.md" \
    "checkpoint best:checkpoints/${run_id}/best.ckpt" \
    "checkpoint last:checkpoints/${run_id}/last.ckpt" \
    "preprocessor:preprocessor/${run_id}/preprocessor.json"; do
    name="${item%%:*}"
    path="artifacts/${item#*:}"
    if [[ -s "${tmp}/${path}" ]]; then
        pass "${name} ${path}"
    else
        fail "${name} ${path}" "missing or empty"
    fi
done

# 3. the metrics
check_py "metrics.json holds finite mae/mse/rmse/mape/r2/mase" \
    "${art}/metrics/${run_id}/metrics.json" "$run_id" <<'EOF'
import json, math, sys
path, run_id = sys.argv[1], sys.argv[2]
try:
    with open(path, encoding="utf-8") as fh:
        doc = json.load(fh)
except (OSError, ValueError) as exc:
    sys.exit(f"cannot read {path}: {exc}")
metrics = doc.get("metrics") if isinstance(doc, dict) else None
if not isinstance(metrics, dict):
    sys.exit('no "metrics" object')
bad = [
    f"{key}={metrics.get(key)!r}"
    for key in ("mae", "mse", "rmse", "mape", "r2", "mase")
    if isinstance(metrics.get(key), bool)
    or not isinstance(metrics.get(key), int | float)
    or not math.isfinite(metrics[key])
]
if bad:
    sys.exit("missing or not finite: " + ", ".join(bad))
if doc.get("run_id") != run_id:
    sys.exit(f"run_id is {doc.get('run_id')!r}, not {run_id!r}")
EOF

# 4. the MLflow run
check_py "MLflow run finished and holds metrics/report/checkpoints/preprocessor" \
    "$uri" "$run_id" <<'EOF'
import logging, sys, warnings
warnings.simplefilter("ignore")
logging.disable(logging.WARNING)
import mlflow

uri, run_id = sys.argv[1], sys.argv[2]
client = mlflow.MlflowClient(uri)
experiment = client.get_experiment_by_name("splineforecast")
if experiment is None:
    sys.exit(f'no experiment "splineforecast" in {uri}')
runs = client.search_runs(
    [experiment.experiment_id], filter_string=f"tags.`splineforecast.run_id` = '{run_id}'"
)
if len(runs) != 1:
    sys.exit(f"{len(runs)} MLflow runs tagged splineforecast.run_id={run_id}, expected 1")
run = runs[0]


def listed(path=None):
    for item in client.list_artifacts(run.info.run_id, path):
        yield from listed(item.path) if item.is_dir else [item.path]


have = set(listed())
want = ["metrics.json", "report.md", "checkpoints/best.ckpt", "checkpoints/last.ckpt",
        "preprocessor/preprocessor.json"]
missing = [p for p in want if p not in have]
if missing:
    sys.exit(f"run {run.info.run_id} lacks {missing}; it holds {sorted(have)}")
if run.info.status != "FINISHED":
    sys.exit(f"run {run.info.run_id} is {run.info.status}, not FINISHED")
EOF

# 5. a deliberate run_id mismatch: train another run_id on this run's processed artifacts
if "$PYTHON" -m splineforecast data=tiny trainer=smoke stage=train "run_id=${other_id}" \
    "data.processed=${art}/processed/${run_id}/processed.npz" "${store[@]}" \
    >"${tmp}/mismatch.out" 2>"${tmp}/mismatch.err"; then
    rc=0
else
    rc=$?
fi
payload="$(payload_of "${tmp}/mismatch.err")"
if [[ "$rc" -eq 27 && "$payload" == "27 RUN_ID_MISMATCH "* ]]; then
    pass "run_id mismatch exits 27 with RUN_ID_MISMATCH"
else
    fail "run_id mismatch exits 27 with RUN_ID_MISMATCH" \
        "exit ${rc}, payload: ${payload:-none on stderr}"
fi

printf '%d passed, %d failed\n' "$passed" "$failed"
[[ "$failed" -eq 0 ]]
