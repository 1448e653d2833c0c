//! Capture throughput at saturation: the agent is stopped (SIGSTOP) while
//! one writer queues a burst of creates in the kernel (fanotify's queue,
//! eBPF's ring buffer), then continued; the time to journal the backlog and
//! the agent's CPU time for it measure capture + journal alone, with no
//! writer competing for the 2 cores (the burst of `burst` cannot: its
//! records/s are bounded by the writer).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::super::results::Drain;
use super::super::tools::Agent;
use super::Bench;

/// The journal has stopped growing once `last_seq` held still this long
/// after reaching one record per create…
const QUIET: Duration = Duration::from_millis(500);
/// …or this long short of it: an agent still resolving the backlog
/// (`open_by_handle_at` per inode) may write nothing for seconds.
const QUIET_SHORT_OF_BACKLOG: Duration = Duration::from_secs(15);

impl Bench {
    /// Queues `plan.burst_files` creates while `agent` is stopped, then
    /// times how fast it journals them.
    pub(super) fn drain(&mut self, tool: &str, run: u32, agent: &Agent) -> anyhow::Result<()> {
        let n = self.plan.burst_files;
        std::thread::sleep(Duration::from_millis(1200)); // agent counters are saved each second
        let before = agent.status()?;
        let count = |s: &serde_json::Value, key: &str| s[key].as_u64().unwrap_or(0);
        let dir = self.src.join(format!("drain-{tool}-{run}"));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        agent.proc.signal(libc::SIGSTOP)?;
        let written: anyhow::Result<()> = (0..n).try_for_each(|i| {
            let path = dir.join(format!("f{i}"));
            std::fs::File::create(&path)
                .and_then(|mut f| f.write_all(b"x"))
                .with_context(|| format!("cannot write {}", path.display()))
        });
        let cpu_before = agent.proc.cpu_s()?;
        let start = Instant::now();
        agent.proc.signal(libc::SIGCONT)?;
        written?;
        let first_seq = count(&before, "last_seq");
        let (mut seq, mut last_growth) = (first_seq, Duration::ZERO);
        loop {
            super::sys::check_interrupted()?;
            let now_seq = count(&agent.status()?, "last_seq");
            let quiet = if seq - first_seq >= n {
                QUIET
            } else {
                QUIET_SHORT_OF_BACKLOG
            };
            if now_seq != seq {
                seq = now_seq;
                last_growth = start.elapsed();
            } else if start.elapsed() > last_growth + quiet {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let cpu = agent.proc.cpu_s()? - cpu_before;
        std::thread::sleep(Duration::from_millis(1200));
        let after = agent.status()?;
        let kernel =
            |s: &serde_json::Value, name: &str| s["kernel_events"][name].as_u64().unwrap_or(0);
        let d = Drain {
            tool: tool.into(),
            run,
            files: n,
            records: seq - count(&before, "last_seq"),
            drain_s: last_growth.as_secs_f64(),
            agent_cpu_s: cpu,
            dropped: kernel(&after, "dropped") - kernel(&before, "dropped"),
            rescans: count(&after, "rescans") - count(&before, "rescans"),
        };
        eprintln!(
            "bench: {tool}: backlog of {n} creates: {} records journaled in {:.2} s ({:.0}/s), agent CPU {:.2} s ({:.1} µs a record), dropped {}, rescans {}",
            d.records,
            d.drain_s,
            d.records as f64 / d.drain_s,
            d.agent_cpu_s,
            d.agent_cpu_s * 1e6 / d.records.max(1) as f64,
            d.dropped,
            d.rescans
        );
        self.results.drain.push(d);
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
        agent.wait_pending_zero(Duration::from_secs(1800))?;
        Ok(())
    }
}
