//! Why a pusher owes its target a full sync of the whole root. The journal
//! keeps the reason as its text ([`FullSyncReason`]'s `Display`) in the
//! target's state (`full_sync_needed`, then `last_full_sync_reason`), which
//! `status` and `health` print as is; the capture side's reasons (an
//! untrusted gap, `capture/gap.rs`) arrive as that text too.

use std::fmt;

use crate::journal::Seq;

/// A reason decided by the pusher itself: at start, the stored cursor
/// cannot be trusted ([`super::Pusher`]'s `validated_state`), or the
/// operator asked (`fsjournal resync`, see `operator.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum FullSyncReason {
    /// The journal holds no state for this target.
    FirstSync,
    /// The configured target string differs from the cursor's.
    TargetChanged {
        /// The target the cursor belongs to.
        from: String,
        /// The target configured now.
        to: String,
    },
    /// The sync's source is another journal root than the cursor's.
    SourceChanged,
    /// The exclude patterns differ from those in force when the cursor was
    /// valid: content excluded then was never journaled.
    ExcludesChanged {
        /// The patterns the cursor was valid with.
        from: Vec<String>,
        /// The patterns configured now.
        to: Vec<String>,
    },
    /// The cursor was written against another journal (another id).
    OtherJournal,
    /// The cursor is past the journal's newest record (a journal restored
    /// from an older copy).
    CursorAhead {
        /// The stored cursor (sequence number).
        cursor: Seq,
        /// The journal's newest record (sequence number).
        last_seq: Seq,
    },
    /// `fsjournal resync`, nothing owed before.
    Requested,
    /// `fsjournal resync --force`, nothing owed before.
    RequestedForce,
    /// `fsjournal resync --force` confirming a full sync already owed, whose
    /// reason (text) it keeps.
    Confirmed {
        /// The reason the full sync was owed for.
        owed: String,
    },
}

impl fmt::Display for FullSyncReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FullSyncReason::FirstSync => {
                f.write_str("first sync of this target: no cursor in the journal")
            }
            FullSyncReason::TargetChanged { from, to } => {
                write!(f, "target changed from {from} to {to}")
            }
            FullSyncReason::SourceChanged => f.write_str("source changed"),
            FullSyncReason::ExcludesChanged { from, to } => {
                write!(f, "exclude patterns changed from {from:?} to {to:?}")
            }
            FullSyncReason::OtherJournal => f.write_str("cursor belongs to another journal"),
            FullSyncReason::CursorAhead { cursor, last_seq } => write!(
                f,
                "cursor {cursor} is ahead of the journal's last record {last_seq}"
            ),
            FullSyncReason::Requested => f.write_str("requested by fsjournal resync"),
            FullSyncReason::RequestedForce => f.write_str("requested by fsjournal resync --force"),
            FullSyncReason::Confirmed { owed } => {
                write!(f, "{owed}; confirmed by fsjournal resync --force")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FullSyncReason;

    #[test]
    fn each_reason_reads_as_the_journal_has_always_stored_it() {
        for (reason, text) in [
            (
                FullSyncReason::FirstSync,
                "first sync of this target: no cursor in the journal",
            ),
            (
                FullSyncReason::TargetChanged {
                    from: "/a".into(),
                    to: "host::m".into(),
                },
                "target changed from /a to host::m",
            ),
            (FullSyncReason::SourceChanged, "source changed"),
            (
                FullSyncReason::ExcludesChanged {
                    from: vec![],
                    to: vec!["*.tmp".into()],
                },
                r#"exclude patterns changed from [] to ["*.tmp"]"#,
            ),
            (
                FullSyncReason::OtherJournal,
                "cursor belongs to another journal",
            ),
            (
                FullSyncReason::CursorAhead {
                    cursor: 9,
                    last_seq: 4,
                },
                "cursor 9 is ahead of the journal's last record 4",
            ),
            (FullSyncReason::Requested, "requested by fsjournal resync"),
            (
                FullSyncReason::RequestedForce,
                "requested by fsjournal resync --force",
            ),
            (
                FullSyncReason::Confirmed {
                    owed: "source changed".into(),
                },
                "source changed; confirmed by fsjournal resync --force",
            ),
        ] {
            assert_eq!(reason.to_string(), text);
        }
    }
}
