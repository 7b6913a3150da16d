#!/usr/bin/env bash
# A heap profile of the command API under the end-to-end benchmark's load:
#   just profile-heap --tenants 10000 --concurrency 100 --seconds 60
# heaptrack (Debian's package) follows malloc, so the command API is built with the system's
# allocator (its feature `system-allocator`) instead of mimalloc; the other services are the
# release build's. Prints the live heap's largest per 20 s of the run and the largest holders
# at its peak; everything stays in .data/heap/ (report.txt, command-api.zst for heaptrack_print
# or heaptrack_gui). The resident memory the benchmark prints is not this build's to judge:
# glibc's malloc and heaptrack's own bookkeeping hold more than mimalloc does.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
OUT="$PWD/.data/heap"
BINS="$OUT/bin"

if ! command -v heaptrack_print >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq heaptrack >/dev/null
fi
# Debian keeps heaptrack's hooks and its interpreter in the package libheaptrack.
PRELOAD=$(dpkg -L libheaptrack | grep '/libheaptrack_preload\.so$' | head -1)
INTERPRET=$(dpkg -L libheaptrack | grep '/heaptrack_interpret$' | head -1)

rm -rf "$OUT"
mkdir -p "$BINS"
cargo build -q --release --bins
for bin in "$TARGET"/release/*; do
  if [ -f "$bin" ] && [ -x "$bin" ]; then cp "$bin" "$BINS"/; fi
done
cargo build -q --release -p command-api --features system-allocator
cp "$TARGET/release/command-api" "$BINS/command-api.real"
# The benchmark starts `command-api`; this one starts the real one under heaptrack's hooks,
# writing the raw record straight to a file (interpreted below, after the run).
cat > "$BINS/command-api" <<EOF
#!/bin/sh
LD_PRELOAD="$PRELOAD" DUMP_HEAPTRACK_OUTPUT="$OUT/command-api.\$\$.raw" exec "$BINS/command-api.real" "\$@"
EOF
chmod +x "$BINS/command-api"

BOOKING_BIN_DIR="$BINS" cargo bench -q -p e2e-tests --bench e2e -- "$@"

# Only the benchmark's own command API wrote a record (one process).
raw=$(ls -S "$OUT"/command-api.*.raw | head -1)
"$INTERPRET" < "$raw" | zstd -q -o "$OUT/command-api.zst"
rm -f "$OUT"/command-api.*.raw
heaptrack_print -f "$OUT/command-api.zst" --print-leaks 0 --print-allocators 0 \
  --print-temporary 0 --print-peaks 1 -n 12 -s 0 \
  -M "$OUT/massif.out" --massif-threshold 100 > "$OUT/report.txt" 2>/dev/null
echo
echo "live heap of the command API, largest per 20 s of the run (s, MiB):"
awk -F= '/^time=/ { t = $2 } /^mem_heap_B=/ { b = int(t / 20); if ($2 > m[b]) m[b] = $2 }
  END { for (k in m) printf "%d %.1f\n", k * 20, m[k] / 1048576 }' "$OUT/massif.out" |
  sort -n | column -c 120
echo
grep -E '^(peak heap memory consumption|total runtime)' "$OUT/report.txt"
echo "largest holders at the peak (their call stacks: heaptrack_print -f $OUT/command-api.zst):"
grep -A1 'peak memory consumed over' "$OUT/report.txt" | grep -v '^--$' | cut -c1-160 | head -24
