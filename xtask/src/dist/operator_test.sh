#!/bin/sh
# Runs inside the clean Debian 12 root (chroot) as an operator would: no
# Rust, no compiler, only the .deb in /tmp and Debian's archive. Set up by
# package_test.rs: /proc, /sys, /dev, a private bpffs at /sys/fs/bpf,
# tracefs, an ext4 loop filesystem at /srv/source (eBPF capture cannot name
# tmpfs inodes) and a tmpfs at /srv/replica. Prints `timing: …` lines the
# xtask reports. Any failed step ends it with a message and status 1.
set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "operator test FAILED: $*" >&2; exit 1; }
now() { date +%s.%N; }
since() { echo "$(now) $1" | awk '{ printf "%.1f", $1 - $2 }'; }

apt-get update -qq
start=$(now)
(cd /tmp && apt-get install -y -qq ./fsjournal_*.deb) >/tmp/apt-install.log 2>&1 \
    || { cat /tmp/apt-install.log; fail "apt-get install ./fsjournal_*.deb"; }
echo "timing: install $(since "$start") s"
grep '^fsjournal:' /tmp/apt-install.log || true

echo "== fsjournal --version"
fsjournal --version | tee /tmp/version
grep -Eq '^fsjournal [0-9]+\.[0-9]+\.[0-9]+ \([0-9a-f]{7,}' /tmp/version \
    || fail "--version does not name the commit"

echo "== man fsjournal"
LC_ALL=C man -P cat fsjournal >/tmp/man.txt 2>/tmp/man.err || { cat /tmp/man.err; fail "man fsjournal"; }
grep -q SYNOPSIS /tmp/man.txt || fail "man fsjournal has no SYNOPSIS"
grep -q 'fsjournal-status(1)' /tmp/man.txt || fail "man fsjournal does not list fsjournal-status(1)"
LC_ALL=C man -P cat fsjournal-config-check | grep -q SYNOPSIS || fail "man fsjournal-config-check"
head -n 8 /tmp/man.txt
test -s /usr/share/bash-completion/completions/fsjournal || fail "no bash completion"

echo "== the service is installed, not enabled, not started"
test -f /lib/systemd/system/fsjournal.service || fail "no unit"
grep -qx 'ExecStart=/usr/bin/fsjournal run --config /etc/fsjournal/fsjournal.toml' \
    /lib/systemd/system/fsjournal.service || fail "ExecStart does not run /usr/bin/fsjournal"
test ! -e /etc/systemd/system/multi-user.target.wants/fsjournal.service || fail "the service was enabled"

echo "== fsjournal config check /etc/fsjournal/fsjournal.toml (the commented default)"
if fsjournal config check /etc/fsjournal/fsjournal.toml >/tmp/check.out 2>&1; then
    cat /tmp/check.out; fail "the shipped configuration passed the check: it must describe no sync"
fi
cat /tmp/check.out
grep -q 'at least one \[\[sync\]\] table is required' /tmp/check.out \
    || fail "config check does not say that a [[sync]] is missing"
dpkg-query -W -f='${Conffiles}\n' fsjournal | grep -q '/etc/fsjournal/fsjournal.toml' \
    || fail "/etc/fsjournal/fsjournal.toml is not a conffile"

echo "== a short real run: /srv/source (ext4) → /srv/replica (tmpfs)"
mkdir -p /srv/source/jobs/a/builds/1 /srv/source/jobs/b
echo '<project/>' >/srv/source/jobs/a/config.xml
echo 'Started' >/srv/source/jobs/a/builds/1/log
echo '<project/>' >/srv/source/jobs/b/config.xml
same() { test -z "$(rsync -anc --delete -i --exclude=/lost+found /srv/source/ /srv/replica/)"; }
wait_same() {
    i=0
    until same; do
        i=$((i + 1))
        if [ $i -gt 120 ]; then
            rsync -anc --delete -i --exclude=/lost+found /srv/source/ /srv/replica/
            tail -n 30 /tmp/agent.log
            fail "the replica did not converge ($1)"
        fi
        sleep 0.5
    done
}
# With the unit's capability bounding set and no-new-privileges, as the
# service would run (setpriv: root gets exactly the bounding set).
caps=$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/fsjournal.service \
    | tr 'A-Z ' 'a-z\n' | sed -n 's/^cap_\(.*\)/+\1/p' | paste -sd, -)
test -n "$caps" || fail "the unit sets no CapabilityBoundingSet"
echo "capabilities: $caps"
setpriv --no-new-privs --bounding-set "-all,$caps" \
    fsjournal run --source /srv/source --dest /srv/replica --journal /var/lib/fsjournal \
    >/tmp/agent.log 2>&1 &
agent=$!
wait_same "initial sync"
echo 'Finished: SUCCESS' >>/srv/source/jobs/a/builds/1/log
mkdir /srv/source/jobs/a/builds/2 && echo 'Started' >/srv/source/jobs/a/builds/2/log
mv /srv/source/jobs/b /srv/source/jobs/c
rm /srv/source/jobs/a/config.xml
wait_same "after a modify, a create, a rename and a delete"
fsjournal status --journal /var/lib/fsjournal | tee /tmp/status.txt
fsjournal log --journal /var/lib/fsjournal >/tmp/log.txt
TZ=America/New_York fsjournal log --journal /var/lib/fsjournal | tail -n 1
grep -Eq '^ +[0-9]+ [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}[+-][0-9]{2}:[0-9]{2} ' /tmp/log.txt \
    || fail "fsjournal log does not show local RFC 3339 times: $(head -n 3 /tmp/log.txt)"
fsjournal log --utc --journal /var/lib/fsjournal | tail -n 1 | grep -Eq ' [0-9T:.-]+Z ' \
    || fail "fsjournal log --utc does not show UTC times"
kill -TERM $agent
wait $agent || fail "the agent did not stop cleanly on SIGTERM: $(tail -n 5 /tmp/agent.log)"
pins=$(ls /sys/fs/bpf/fsjournal 2>/dev/null || true)
if [ -n "$pins" ]; then
    echo "pinned after a plain stop (eBPF keeps capturing): /sys/fs/bpf/fsjournal/$pins"
else
    grep -q fanotify /tmp/status.txt || fail "no eBPF pins and no fanotify backend"
    echo "note: the fanotify backend ran (no eBPF on this kernel): no pins to check"
fi

echo "== apt-get purge -y fsjournal"
dpkg-query -L fsjournal >/tmp/files
apt-get purge -y -qq fsjournal >/tmp/apt-purge.log 2>&1 || { cat /tmp/apt-purge.log; fail "apt-get purge"; }
left=""
while read -r path; do
    if [ -e "$path" ] && [ ! -d "$path" ]; then left="$left $path"; fi
done </tmp/files
for dir in /etc/fsjournal /var/lib/fsjournal /usr/share/doc/fsjournal /usr/share/fsjournal; do
    if [ -e "$dir" ]; then left="$left $dir"; fi
done
test -z "$left" || fail "purge left:$left"
test -z "$(ls /sys/fs/bpf/fsjournal 2>/dev/null || true)" \
    || fail "purge left pinned programs: $(ls -R /sys/fs/bpf/fsjournal)"
echo "purged: no file of the package, no journal, no configuration, no pinned program"
echo "operator test passed"
