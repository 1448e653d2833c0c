//! Paths a target pushes later: still being written (settle time), or
//! refused by the target (rsync exit 23, retried with backoff while the rest
//! of the batch is acknowledged, so one bad path never blocks a target).
//! They live in the target's state ([`TargetState::held`]), written with the
//! cursor in one atomic write: acknowledging a batch never loses them.

use std::path::Path;

use crate::journal::{HeldPath, HoldReason, Scope, TargetState};

/// Holds `path` back until `not_before_ms`, merging with an entry already
/// held for it (widest scope, oldest change, latest release time; a newer
/// reason replaces the old one).
pub fn hold(state: &mut TargetState, path: HeldPath) {
    match state.held.iter_mut().find(|h| h.path == path.path) {
        Some(held) => {
            held.scope = held.scope.max(path.scope);
            held.since_ms = held.since_ms.min(path.since_ms);
            held.not_before_ms = held.not_before_ms.max(path.not_before_ms);
            held.reason = path.reason;
        }
        None => state.held.push(path),
    }
}

/// Removes and returns the held paths due at `now_ms`.
pub fn take_due(state: &mut TargetState, now_ms: u64) -> Vec<HeldPath> {
    let (due, kept) = std::mem::take(&mut state.held)
        .into_iter()
        .partition(|h| h.not_before_ms <= now_ms);
    state.held = kept;
    due
}

/// When the next held path is due (ms since the Unix epoch).
pub fn next_due_ms(state: &TargetState) -> Option<u64> {
    state.held.iter().map(|h| h.not_before_ms).min()
}

/// Failures in a row of a held path (0 when it is not failing).
pub fn failures(reason: HoldReason) -> u32 {
    match reason {
        HoldReason::Settling | HoldReason::Drift | HoldReason::Requested => 0,
        HoldReason::Failed(n) => n,
    }
}

/// Whether a path rsync named in an error (see
/// [`super::rsync::named_paths`]) concerns the listed root-relative `entry`
/// (`.` is the root): the same path, one below it, or a parent it implied.
/// A named path is tried as given and with the source or local destination
/// prefix removed.
pub fn concerns(named: &[u8], entry: &[u8], scope: Scope, prefixes: &[&Path]) -> bool {
    let mut forms = vec![named];
    for prefix in prefixes {
        let prefix = prefix.as_os_str().as_encoded_bytes();
        if let Some(rest) = named.strip_prefix(prefix) {
            forms.push(rest.strip_prefix(b"/").unwrap_or(rest));
        }
    }
    forms.iter().any(|form| {
        let form = form.strip_prefix(b"./").unwrap_or(form);
        if entry == b"." || entry.is_empty() {
            return scope != Scope::Entry || !form.contains(&b'/');
        }
        let below =
            |a: &[u8], b: &[u8]| a.len() > b.len() && a.starts_with(b) && a[b.len()] == b'/';
        form == entry || below(form, entry) || below(entry, form)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_paths_are_matched_to_what_was_listed() {
        let src = Path::new("/src/root");
        let dst = Path::new("/dst");
        assert!(concerns(b"d/a", b"d/a", Scope::Entry, &[src, dst]));
        assert!(concerns(
            b"/src/root/d/a",
            b"d/a",
            Scope::Entry,
            &[src, dst]
        ));
        assert!(concerns(b"/dst/d/a", b"d/a", Scope::Entry, &[src, dst]));
        assert!(
            concerns(b"d/a/x", b"d/a", Scope::Subtree, &[src, dst]),
            "inside a pushed subtree"
        );
        assert!(
            concerns(b"d", b"d/a", Scope::Entry, &[src, dst]),
            "an implied parent"
        );
        assert!(!concerns(b"d/ab", b"d/a", Scope::Entry, &[src, dst]));
        assert!(!concerns(
            b"/elsewhere/d/a",
            b"e",
            Scope::Entry,
            &[src, dst]
        ));
        assert!(concerns(b"x/y", b".", Scope::Subtree, &[src, dst]));
    }

    #[test]
    fn holding_a_path_twice_merges_the_entries() {
        let mut state = TargetState::default();
        let held = |scope, since_ms, not_before_ms, reason| HeldPath {
            path: b"log".to_vec(),
            scope,
            since_ms,
            not_before_ms,
            reason,
        };
        hold(
            &mut state,
            held(Scope::Entry, 10, 100, HoldReason::Settling),
        );
        hold(
            &mut state,
            held(Scope::Subtree, 50, 80, HoldReason::Failed(1)),
        );
        assert_eq!(
            state.held,
            vec![held(Scope::Subtree, 10, 100, HoldReason::Failed(1))]
        );
        assert!(take_due(&mut state, 99).is_empty());
        assert_eq!(take_due(&mut state, 100).len(), 1);
        assert!(state.held.is_empty());
    }
}
