#!/usr/bin/env bash
# Bytes a repository stores for daily full dumps of a database that changes 2 % a day: plain
# files (what a policy without useKopia stores) against the deduplicating repository (what
# `DATASAFED_KOPIA_REPO_ROOT`, i.e. useKopia, stores). A real MariaDB (Debian's mariadbd) on this
# host, `mariadb-dump` every day, and the same dump pushed by the real `datasafed` binary in
# both modes with the same command line (`push -z zstd-fastest`), each backup under its own
# path as KubeBlocks lays them out (`/<namespace>/<backup>/dump.sql.zst`), into two local
# directories whose sizes are then read with `du`.
#
# Each day after the first: 2 % of the rows updated in place, 0.5 % deleted and 0.5 % new rows
# appended. CHANGE=scattered (default) spreads the updated and deleted rows evenly over the table
# (the worst case for any chunking: a changed row every ~50 rows); CHANGE=clustered updates
# and deletes contiguous id ranges (a different range each day), as hot recent rows do.
#
# Usage: [CHANGE=scattered|clustered] bench/kopia/daily-dumps.sh [ROWS] [DAYS]
#        (defaults: 300000 rows, 10 days)
#   DATASAFED=path/to/datasafed (default: $CARGO_TARGET_DIR/debug/datasafed)
set -euo pipefail
rows=${1:-300000}
days=${2:-10}
change=${CHANGE:-scattered}
: "${CARGO_TARGET_DIR:=target}"
datasafed=${DATASAFED:-$CARGO_TARGET_DIR/debug/datasafed}
[ -x "$datasafed" ] || { echo "no datasafed binary at $datasafed (cargo build -p cairn-cli --bin datasafed)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/cairn-daily-dumps.XXXXXX)
cleanup() {
  if [ -f "$work/run/mariadbd.pid" ]; then
    kill "$(cat "$work/run/mariadbd.pid")" 2>/dev/null || true
    sleep 2
  fi
  rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"  # mariadbd runs as mysql
mkdir -p "$work/data" "$work/run" "$work/plain" "$work/dedup"
chown -R mysql:mysql "$work/data" "$work/run"
mariadb-install-db --no-defaults --user=mysql --datadir="$work/data" --skip-test-db >/dev/null 2>&1
mariadbd --no-defaults --user=mysql --datadir="$work/data" --skip-networking \
  --socket="$work/run/s.sock" --pid-file="$work/run/mariadbd.pid" >"$work/run/log" 2>&1 &
sql() { mariadb --no-defaults -S "$work/run/s.sock" -u root -N -B shop -e "$1"; }
for _ in $(seq 60); do
  mariadb --no-defaults -S "$work/run/s.sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 1
done
mariadb --no-defaults -S "$work/run/s.sock" -u root -e 'CREATE DATABASE shop'
sql "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer VARCHAR(64) NOT NULL,
       amount DECIMAL(12,2) NOT NULL, note TEXT) ENGINE=InnoDB;
     INSERT INTO orders SELECT seq, CONCAT('customer-', seq % 977), (seq * 7919 % 1000003) / 100,
       CONCAT(MD5(seq), ' ', SHA1(seq)) FROM seq_1_to_${rows};"

echo "$rows rows, $days days, changes $change"
printf '%-4s %12s %14s %14s\n' day dump_bytes plain_stored dedup_stored
for day in $(seq 1 "$days"); do
  if [ "$day" -gt 1 ]; then
    next=$(sql "SELECT MAX(id) + 1 FROM orders")
    last=$((next + rows / 200 - 1))
    case "$change" in
      scattered)
        updated="(id * 7919 + $day * 104729) % 1000 < 20"
        deleted="(id * 6007 + $day * 130363) % 1000 < 5" ;;
      clustered)
        from=$(( (day * rows / 7) % rows ))
        updated="id > $from AND id <= $from + $rows / 50"
        deleted="id > $from + $rows / 20 AND id <= $from + $rows / 20 + $rows / 200" ;;
      *) echo "CHANGE must be scattered or clustered, not $change" >&2; exit 1 ;;
    esac
    sql "UPDATE orders SET amount = amount + $day, note = CONCAT('day $day ', SHA1(id + $day))
           WHERE $updated;
         DELETE FROM orders WHERE $deleted;
         INSERT INTO orders SELECT seq, CONCAT('customer-', seq % 977), seq / 100,
           CONCAT(MD5(seq), ' day $day') FROM seq_${next}_to_${last};"
  fi
  mariadb-dump --no-defaults -S "$work/run/s.sock" -u root --single-transaction --skip-dump-date \
    shop >"$work/dump.sql"
  DATASAFED_LOCAL_BACKEND_PATH="$work/plain" DATASAFED_BACKEND_BASE_PATH="/shop/db-day-$day" \
    "$datasafed" push -z zstd-fastest "$work/dump.sql" /dump.sql.zst
  DATASAFED_LOCAL_BACKEND_PATH="$work/dedup" DATASAFED_BACKEND_BASE_PATH="/shop/db-day-$day" \
    DATASAFED_KOPIA_REPO_ROOT=/shop/kopia DATASAFED_KOPIA_PASSWORD=bench-password \
    "$datasafed" push -z zstd-fastest "$work/dump.sql" /dump.sql.zst
  printf '%-4s %12s %14s %14s\n' "$day" "$(stat -c %s "$work/dump.sql")" \
    "$(du -sb "$work/plain" | cut -f1)" "$(du -sb "$work/dedup" | cut -f1)"
done
# Every day's dump comes back byte for byte from both.
DATASAFED_LOCAL_BACKEND_PATH="$work/plain" DATASAFED_BACKEND_BASE_PATH="/shop/db-day-$days" \
  "$datasafed" pull -d zstd-fastest /dump.sql.zst "$work/plain.sql"
DATASAFED_LOCAL_BACKEND_PATH="$work/dedup" DATASAFED_BACKEND_BASE_PATH="/shop/db-day-$days" \
  DATASAFED_KOPIA_REPO_ROOT=/shop/kopia DATASAFED_KOPIA_PASSWORD=bench-password \
  "$datasafed" pull -d zstd-fastest /dump.sql.zst "$work/dedup.sql"
cmp "$work/dump.sql" "$work/plain.sql"
cmp "$work/dump.sql" "$work/dedup.sql"
echo "day $days pulled back byte for byte from both"
