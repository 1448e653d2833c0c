#!/usr/bin/env python3
"""Capture overhead of the eBPF VFS-hook rung beside fanotify and nothing,
run as root inside a `cargo xtask test-kernels` guest (QEMU software
emulation: absolute figures are distorted, so the report gives ratios).

usage: capture_bench.py FSJOURNAL_BINARY [WRITES] [FILES] [DIRS]

For each capture (none, fanotify, eBPF VFS hooks), on a fresh loop-mounted
ext4 with the agent replicating it into a local directory:
- writer: WRITES 4 KiB pwrite calls to one file, then FILES new files of
  one write each, timed in this process (wall clock, ns); once with the
  agent running (it competes for the guest's 2 vCPUs) and once with it
  stopped (SIGSTOP, `-paused`: only the kernel side's own cost, the
  programs or fanotify marks staying in place);
- drain (eBPF only): the agent is stopped (SIGSTOP) while FILES more files
  are written, so their records queue in the pinned ring buffer; after
  SIGCONT, records/s until `status` shows them all journaled, and the
  agent's CPU time (utime + stime) per record;
- start (eBPF only, mode `ebpf-start`): on a tree of DIRS directories, the
  status's arm times: when capture went live and when the agent was ready
  to judge records (after the directory walk, on the rungs that walk).
Prints one JSON object.
"""
import json, os, signal, subprocess, sys, tempfile, time

BIN = sys.argv[1]
WRITES = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
FILES = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
DIRS = int(sys.argv[4]) if len(sys.argv) > 4 else 20000


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def status(journal):
    out = subprocess.run([BIN, "status", "--json", "--journal", journal],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, clock ticks


def writer(root):
    payload = b"x" * 4096
    start = time.monotonic_ns()
    fd = os.open(os.path.join(root, "log"), os.O_WRONLY | os.O_CREAT, 0o644)
    for i in range(WRITES):
        os.pwrite(fd, payload, (i % 256) * 4096)
    os.close(fd)
    os.makedirs(os.path.join(root, "many"), exist_ok=True)
    for i in range(FILES):
        with open(os.path.join(root, "many", f"f{i}"), "wb") as f:
            f.write(payload)
    return time.monotonic_ns() - start


def wait_for(what, done, timeout=1800):
    start = time.monotonic()
    while not done():
        if time.monotonic() - start > timeout:
            sys.exit(f"timed out waiting for {what}")
        time.sleep(0.2)


def run(mode):
    backend, paused = mode.removesuffix("-paused").removesuffix("-start"), mode.endswith("-paused")
    start_only = mode.endswith("-start")
    scratch = tempfile.mkdtemp(prefix="fsj-bench-", dir="/var/tmp")
    src, replica, journal = (os.path.join(scratch, d) for d in ("src", "replica", "journal"))
    os.makedirs(src), os.makedirs(replica)
    image = os.path.join(scratch, "img")
    sh("truncate", "-s", "512M", image)
    sh("mkfs.ext4", "-q", "-F", image)
    sh("mount", "-o", "loop", image, src)
    agent, result = None, {"capture": mode}
    try:
        if start_only:
            for i in range(DIRS):
                os.makedirs(os.path.join(src, "jobs", f"j{i // 100}", "builds", str(i % 100)))
            sh("sync")
        if backend != "none":
            log = open(os.path.join(scratch, "agent.log"), "w")
            agent = subprocess.Popen([BIN, "run", "--source", src, "--dest", replica,
                                      "--journal", journal, "--backend", backend],
                                     stdout=subprocess.DEVNULL, stderr=log)
            wait_for("capture armed", lambda: "capture armed" in open(log.name).read())
            result["ladder"] = status(journal)["capture_detail"]
            result["arm_times"] = status(journal)["arm_times"]
            if start_only:
                return result
            wait_for("the first sync", lambda: status(journal)["targets"][0]["full_syncs"] >= 1)
        if paused:
            agent.send_signal(signal.SIGSTOP)
        result["writer_ns"] = writer(src)
        if backend == "ebpf" and not paused:
            result.update(drain(agent, journal, src))
    finally:
        if agent:
            agent.send_signal(signal.SIGCONT)
            agent.terminate()
            agent.wait()
        sh("umount", src)
        sh("rm", "-rf", scratch)
    return result


def drain(agent, journal, src):
    wait_for("the writer's records", lambda: status(journal)["targets"][0]["pending"] == 0)
    before = status(journal)["journaled"]
    agent.send_signal(signal.SIGSTOP)
    os.makedirs(os.path.join(src, "backlog"))
    for i in range(FILES):
        with open(os.path.join(src, "backlog", f"b{i}"), "wb") as f:
            f.write(b"queued while the agent was stopped\n")
    ticks = cpu_ticks(agent.pid)
    start = time.monotonic()
    agent.send_signal(signal.SIGCONT)
    wait_for("the backlog", lambda: status(journal)["journaled"] >= before + FILES)
    seconds = time.monotonic() - start
    records = status(journal)["journaled"] - before
    cpu = (cpu_ticks(agent.pid) - ticks) / os.sysconf("SC_CLK_TCK")
    return {"backlog_records": records, "drain_s": round(seconds, 3),
            "records_per_s": round(records / seconds), "agent_cpu_us_per_record": round(cpu * 1e6 / records, 1)}


def main():
    results = [run(m) for m in ("none", "fanotify", "fanotify-paused", "ebpf", "ebpf-paused")]
    base = results[0]["writer_ns"]
    for r in results:
        r["writer_slowdown"] = round(r["writer_ns"] / base - 1, 4)
    results.append(run("ebpf-start"))
    print(json.dumps({"kernel": os.uname().release, "writes": WRITES, "files": FILES, "dirs": DIRS,
                      "runs": results}, indent=1))


main()
