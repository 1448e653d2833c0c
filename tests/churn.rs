//! Fault injection under randomized churn: a seeded generator makes
//! thousands of mixed changes (see `support/churn.rs`) while the agent is
//! SIGKILLed and restarted, or while the target is down. After quiescence
//! the replica must equal the source, with no full resync while the cursor
//! stayed valid.
//!
//! Sizes come from the environment so that `cargo xtask soak` can run the
//! same tests bigger: `FSJ_CHURN_OPS` (default 20,000 operations),
//! `FSJ_CHURN_KILLS` (default 10 SIGKILLs), `FSJ_CHURN_SEED` (replay a seed
//! printed by a failed run).

mod support;

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::churn::Churn;
use support::*;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Churns a fresh ext4 tree with `backend` capturing while the agent is
/// SIGKILLed (and its rsync children with it) `FSJ_CHURN_KILLS` times at
/// random moments, then asserts convergence and a single full sync.
fn converges_under_churn_and_kill9s(backend: &str) {
    let (ops, kills) = (
        env_or("FSJ_CHURN_OPS", 20_000),
        env_or("FSJ_CHURN_KILLS", 10),
    );
    let scratch = Scratch::ext4();
    let daemon = RsyncDaemon::start(&scratch.replica());
    workload::seed(&scratch.src());
    let config = write_config(&scratch, &daemon.url(), Some(&daemon.password_file()), "");
    use_backend(&config, backend);
    let mut agent = start_and_sync(&config, &scratch);

    // About 1.5 s of churn per kill: the agent is killed while it pushes,
    // scans the gap, drains the kernel or waits.
    let churning = Churn::new(&scratch.src()).spawn(ops, Duration::from_millis(1_500 * kills));
    let seed = churning.seed;
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1_500)));
        agent.kill9();
        agent = Agent::start(&config, &scratch);
    }
    let churn = churning.join();

    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    let status = status(&scratch);
    assert_eq!(
        status.target().full_syncs,
        1,
        "seed {seed}: no full resync while the cursor is valid: {status:#?}"
    );
    assert_eq!(
        status.target().full_sync_needed,
        None,
        "seed {seed}: {status:#?}"
    );
    eprintln!(
        "seed {seed}: {} operations, {kills} SIGKILLs, converged",
        churn.done
    );
    agent.stop();
}

#[test]
fn fanotify_replica_converges_after_randomized_churn_and_kill9s() {
    support::root_or_skip!();
    converges_under_churn_and_kill9s("fanotify");
}

#[test]
fn ebpf_replica_converges_after_randomized_churn_and_kill9s() {
    support::root_or_skip!();
    converges_under_churn_and_kill9s("ebpf");
}

#[test]
fn replica_converges_after_a_target_outage_during_churn() {
    support::root_or_skip!();
    let ops = env_or("FSJ_CHURN_OPS", 20_000) / 2;
    let scratch = Scratch::tmpfs();
    let mut daemon = RsyncDaemon::start(&scratch.replica());
    workload::seed(&scratch.src());
    let config = write_config(&scratch, &daemon.url(), Some(&daemon.password_file()), "");
    let agent = start_and_sync(&config, &scratch);

    let churning = Churn::new(&scratch.src()).spawn(ops, Duration::from_secs(12));
    let seed = churning.seed;
    std::thread::sleep(Duration::from_secs(2));
    daemon.pause();
    wait_until(
        Duration::from_secs(30),
        "a push to fail against the stopped daemon",
        || {
            status(&scratch)
                .first_target()
                .is_some_and(|t| t.consecutive_failures >= 1)
        },
    );
    let down = status(&scratch);
    assert!(
        down.target().error().contains("rsync exit"),
        "seed {seed}: {down:#?}"
    );
    std::thread::sleep(Duration::from_secs(4));
    daemon.resume();
    churning.join();

    assert_converges(&scratch.src(), &scratch.replica(), &agent);
    wait_until(Duration::from_secs(10), "the error to clear", || {
        status(&scratch).target().last_error.is_none()
    });
    let status = status(&scratch);
    assert_eq!(
        status.target().full_syncs,
        1,
        "seed {seed}: the outage needs no full resync: {status:#?}"
    );
    agent.stop();
}
