//! A backlog after downtime, the cost model's case (issue 16): the agent is
//! stopped cleanly, a change set of the plan's largest K is written, and
//! the agent is started again. The time runs from the restart to "replica
//! equal to source"; `status` then says which strategy pushed it (one full
//! rsync of the root, or file lists). The anchor is the full-scan rsync of
//! the same K in the change-set table.

use std::time::{Duration, Instant};

use super::super::results::Backlog;
use super::super::tools::{self, Agent};
use super::{bytes_note, Bench, Destination};

impl Bench {
    /// Stops `agent`, writes a change set of the largest K while it is
    /// down, restarts it and waits for the replica.
    pub(super) fn backlog(
        &mut self,
        tool: &str,
        run: u32,
        destination: Destination,
        agent: &mut Agent,
    ) -> anyhow::Result<()> {
        let Some(k) = self.plan.ks.iter().copied().max() else {
            return Ok(());
        };
        agent.stop();
        let (touched, changed) = self.tree.change_set(k)?;
        let traffic = self.traffic(destination);
        let since = Instant::now();
        agent.restart()?;
        let timeout = Duration::from_secs(600) + Duration::from_millis(5 * k);
        let done = tools::wait_replica(&self.src, &self.dst, &touched, since, timeout)?;
        let traffic = self.traffic_since(traffic);
        agent.wait_pending_zero(timeout)?;
        let strategy = agent.status()?["targets"][0]["last_strategy"]["strategy"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        eprintln!(
            "bench: {tool}: backlog of K={k} ({changed} files) written while stopped: replica equal {:.2} s after the restart ({strategy}){}",
            done.seconds,
            bytes_note(traffic)
        );
        self.note_unconverged(tool, run, &format!("backlog K={k}"), &done);
        self.results.backlog.push(Backlog {
            tool: tool.into(),
            run,
            k,
            changed,
            seconds: done.seconds,
            strategy,
            wire_bytes: traffic.map(|t| t.wire),
            data_bytes: traffic.map(|t| t.data),
        });
        Ok(())
    }
}
