#!/bin/sh
# The nightly readiness run, in the cluster: check, verify the bundle, upload it to S3.
#
# The checks run through pytest-vcci's read-only clients. The upload is the job's one write, done
# afterwards by upload_bundle.py with its own credentials (VCCI_UPLOAD_AWS_*), which the pytest
# process never sees.
#
# Exit status: pytest's (0 ready, 1 blocked, ...), or 12 when the bundle could not be verified or
# uploaded.
set -u

env_file="${VCCI_ENV_FILE:-/etc/vcci/environment.toml}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="${VCCI_REPORT_ROOT:-/reports}/$stamp"

# The readiness suites installed with pytest-vcci; VCCI_SUITES names test paths to run instead.
if [ -n "${VCCI_SUITES:-}" ]; then
  set -- "$VCCI_SUITES"
else
  set -- --vcci-suites
fi
set -- "$@" --vcci-config "$env_file" --vcci-report-dir "$out" -p no:cacheprovider \
  -n "${VCCI_WORKERS:-2}"
[ -n "${VCCI_GATE:-}" ] && set -- "$@" --vcci-gate "$VCCI_GATE"
sign_key="${VCCI_SIGN_KEY:-/etc/vcci-sign/key.pem}"
[ -f "$sign_key" ] && set -- "$@" --vcci-sign-key "$sign_key"

env -u VCCI_UPLOAD_AWS_ACCESS_KEY_ID -u VCCI_UPLOAD_AWS_SECRET_ACCESS_KEY \
  -u VCCI_UPLOAD_AWS_SESSION_TOKEN python -m pytest "$@"
status=$?
echo "nightly: pytest exit status $status, reports in $out"

if [ ! -f "$out/manifest.json" ]; then
  echo "nightly: no manifest in $out: nothing to upload" >&2
  exit 12
fi
if [ -z "${VCCI_S3_URI:-}" ]; then
  echo "nightly: VCCI_S3_URI is not set: bundle kept in $out only"
  exit "$status"
fi
python "$(dirname "$0")/upload_bundle.py" "$out" "$VCCI_S3_URI" || exit 12
exit "$status"
