#!/bin/sh
# Take one etcd snapshot, check it, keep the newest $KEEP, optionally upload it. Rendered by gpucluster.
#
# Inputs: etcdctl's own ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT, ETCDCTL_KEY (TLS ones optional),
#   BACKUP_DIR  directory for the snapshots (created when missing)
#   KEEP        how many snapshots to keep, newest first (a positive integer)
#   COMPRESS    1 to gzip each snapshot (file ends in .db.gz), 0 for a plain .db (default 1)
#   UPLOAD_URL  optional s3://bucket/prefix: each new snapshot is copied there with the aws CLI
#               (AWS_ENDPOINT_URL selects an S3-compatible store)
# A snapshot is written under a hidden temporary name and renamed only once it is complete and checked, so
# BACKUP_DIR never holds a partial snapshot under a final name. Only files named like this script's
# snapshots are ever pruned. Any failure exits non-zero, so the Job or systemd unit fails visibly.
set -eu

fail() { echo "etcd-snapshot: $*" >&2; exit 1; }

: "${ETCDCTL_ENDPOINTS:?set ETCDCTL_ENDPOINTS}" "${BACKUP_DIR:?set BACKUP_DIR}" "${KEEP:?set KEEP}"
case "$KEEP" in '' | *[!0-9]* | 0*) fail "KEEP must be a positive integer, not '$KEEP'" ;; esac
COMPRESS=${COMPRESS:-1}
export ETCDCTL_API=3

mkdir -p "$BACKUP_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
sequence=0
while :; do
    name=$(printf 'etcd-snapshot-%s-%02d.db' "$stamp" "$sequence")
    [ -e "$BACKUP_DIR/$name" ] || [ -e "$BACKUP_DIR/$name.gz" ] || break
    sequence=$((sequence + 1))
    [ "$sequence" -lt 100 ] || fail "too many snapshots within one second in $BACKUP_DIR"
done
partial="$BACKUP_DIR/.$name.partial"
trap 'rm -f "$partial" "$partial.gz"' EXIT

# etcdctl saves a snapshot from exactly one member: the first endpoint.
ETCDCTL_ENDPOINTS=${ETCDCTL_ENDPOINTS%%,*} etcdctl snapshot save "$partial" >/dev/null || fail "snapshot save failed"
if command -v etcdutl >/dev/null 2>&1; then
    status=$(etcdutl snapshot status "$partial" -w simple) || fail "the snapshot does not read back (etcdutl)"
else
    status=$(etcdctl snapshot status "$partial" -w simple) || fail "the snapshot does not read back (etcdctl)"
fi

final="$BACKUP_DIR/$name"
if [ "$COMPRESS" = 1 ]; then
    gzip -c "$partial" >"$partial.gz" || fail "gzip failed"
    gzip -t "$partial.gz" || fail "the compressed snapshot is corrupt"
    mv "$partial.gz" "$final.gz"
    rm -f "$partial"
    final="$final.gz"
else
    mv "$partial" "$final"
fi
echo "etcd-snapshot: wrote $final (hash, revision, keys, size: $status)"

if [ -n "${UPLOAD_URL:-}" ]; then
    aws s3 cp --only-show-errors "$final" "${UPLOAD_URL%/}/${final##*/}" || fail "upload to $UPLOAD_URL failed"
    echo "etcd-snapshot: uploaded to ${UPLOAD_URL%/}/${final##*/}"
fi

# Keep the newest $KEEP: names sort by time, and nothing else in BACKUP_DIR is touched.
ls -1 "$BACKUP_DIR" | grep -E '^etcd-snapshot-[0-9]{8}T[0-9]{6}Z-[0-9]{2}\.db(\.gz)?$' | sort -r |
    tail -n +"$((KEEP + 1))" | while read -r expired; do
        rm -f "$BACKUP_DIR/$expired"
        echo "etcd-snapshot: removed expired $expired"
    done
