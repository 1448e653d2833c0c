#!/bin/bash
# The agent's RSS at start-up on a 100k-file tree and after a burst of new
# files (docs/benchmarks.md, "Appendix: agent memory"). Root; fanotify backend.
#
#   docs/bench/agent-memory.sh BINARY LABEL BURST_FILES [SCRATCH]
#
# SCRATCH (default /var/tmp/fsj-mem) gets an 8 GiB sparse ext4 image mounted
# at SCRATCH/src holding a Jenkins-shaped tree (250 jobs x 100 builds x 4
# files, plus each job's config.xml: 100,250 files in 50,502 directories),
# made once and reused. Each call: a fresh journal and an empty replica SCRATCH/dst, drop_caches, start
# the agent, wait for "full sync done" (RSS), create BURST_FILES empty files
# in a new directory (RSS), wait until nothing is pending (RSS), stop the
# agent, delete the burst. Unmount with: umount SCRATCH/src.
set -eu
BIN=$1; LABEL=$2; BURST=$3; M=${4:-/var/tmp/fsj-mem}
mkdir -p "$M"
if ! mountpoint -q "$M/src"; then
  rm -f "$M/src.img"; truncate -s 8G "$M/src.img"; mkfs.ext4 -q -N 1500000 "$M/src.img"
  mkdir -p "$M/src"; mount -o loop "$M/src.img" "$M/src"
  python3 - "$M/src" <<'PY'
import os, sys
for j in range(250):
    job = os.path.join(sys.argv[1], "jobs", f"job-{j:05}")
    os.makedirs(job, exist_ok=True)
    with open(os.path.join(job, "config.xml"), "w") as f:
        f.write("<project/>\n")
    for b in range(100):
        d = os.path.join(job, "builds", str(b))
        os.makedirs(os.path.join(d, "archive"), exist_ok=True)
        for name in ("build.xml", "log", "changelog.xml", "archive/app.jar"):
            with open(os.path.join(d, name), "w") as f:
                f.write("x" * 100)
PY
fi
rm -rf "$M/dst" "$M/journal"; mkdir -p "$M/dst"
cat > "$M/cfg.toml" <<CFG
[journal]
path = "$M/journal"

[capture]
backend = "fanotify"

[[sync]]
name = "mem"
source = "$M/src"
target = "$M/dst"
batch_delay_ms = 200
verify_interval_s = 0
CFG
rss() { awk '/^(VmRSS|VmHWM|RssAnon)/ {printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$PID/status"; echo; }
pending() {
  "$BIN" status --json --journal "$M/journal" | python3 -c \
    'import json,sys; t=json.load(sys.stdin)["targets"][0]; print(t["pending"] if t["full_sync_needed"] is None else -1)'
}
since() { echo "$(date +%s.%N) - $1" | bc; }
sync; echo 3 > /proc/sys/vm/drop_caches
T0=$(date +%s.%N)
"$BIN" run --config "$M/cfg.toml" > "$M/agent-$LABEL.log" 2>&1 &
PID=$!
until grep -q "full sync done" "$M/agent-$LABEL.log"; do sleep 0.1; done
echo "$LABEL ready after $(since "$T0") s: $(rss)"
T1=$(date +%s.%N)
python3 - "$M/src/burst-$LABEL" "$BURST" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    if i % 1000 == 0:
        d = os.path.join(root, f"d{i // 1000:04}")
        os.makedirs(d)
    os.close(os.open(os.path.join(d, f"f{i:07}"), os.O_CREAT | os.O_WRONLY, 0o644))
PY
echo "$LABEL burst of $BURST files written after $(since "$T1") s: $(rss)"
until [ "$(pending)" = 0 ]; do sleep 0.5; done
echo "$LABEL burst replicated after $(since "$T1") s: $(rss)"
echo "$LABEL journal: $(du -sm "$M/journal" | cut -f1) MiB"
kill -TERM "$PID"; wait "$PID" || true
rm -rf "$M/src/burst-$LABEL"
