# Sourced by scripts/test: Debian packages the tests use, installed when missing and possible
# (root with apt-get; CI runs as root). Elsewhere the tests that need them skip with the reason.
#   orthanc + orthanc-dicomweb: the real PACS of the tests/test_net_* and test_export_sr_pacs tests;
#   dicom3tools: dciodvfy, the validator test_export_sr checks the SR and GSPS with;
#   postgresql-15: initdb/pg_ctl/postgres for the PostgreSQL store tests (tests/postgres.py).
# The Debian service is kept from starting (policy-rc.d): the tests start their own Orthanc on
# free loopback ports and stop it by PID. RADVIEW_NO_APT=1 skips this step.
radview_system_packages() {
  local missing=()
  [ -x /usr/sbin/Orthanc ] || command -v Orthanc >/dev/null 2>&1 || missing+=(orthanc)
  [ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
  command -v dciodvfy >/dev/null 2>&1 || missing+=(dicom3tools)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
    || [ -n "${PG_BIN:-}" ] || missing+=(postgresql-15)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "${RADVIEW_NO_APT:-}" = 1 ] || [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "radview: ${missing[*]} not installed (needs root + apt-get): the PACS / PostgreSQL tests will skip" >&2
    return 0
  fi
  echo "radview: installing ${missing[*]} (apt-get) for the PACS tests" >&2
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
  fi
  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || echo "radview: apt-get install ${missing[*]} failed: the PACS / PostgreSQL tests will skip" >&2
  [ "$made_policy" = 1 ] && rm -f "$policy"
  return 0
}
radview_system_packages
