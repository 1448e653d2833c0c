//! A full sync's progress on a terminal: rsync's `--info=progress2` lines
//! (rsync(1), "--info=progress2": one overall line, rewritten after `\r`)
//! shown as the message of the sync's span, whose bar `logs.rs` draws.

use std::io::Read;

use indicatif::{HumanBytes, ProgressStyle};
use tracing::Span;
use tracing_indicatif::span_ext::IndicatifSpanExt;

/// The rsync option that prints the lines [`follow`] reads.
pub const RSYNC_OPTION: &str = "--info=progress2";

/// One progress2 line:
/// `  1,238,099,968  45%  118.08MB/s    0:00:10 (xfr#1234, ir-chk=1000/2345)`.
#[derive(Debug, PartialEq, Eq)]
struct Update {
    /// Bytes sent so far (bytes).
    bytes: u64,
    /// rsync's own rate figure, e.g. `118.08MB/s`.
    rate: String,
    /// Files transferred so far (files).
    copied: u64,
    /// Files compared so far, of `listed` (files).
    checked: u64,
    /// Files in the file list so far (files).
    listed: u64,
    /// The file list is still being built (`ir-chk`, incremental recursion):
    /// `listed` grows.
    listing: bool,
}

fn parse(line: &str) -> Option<Update> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [bytes, _percent, rate, _eta, xfr, chk] = fields.as_slice() else {
        return None;
    };
    let copied = xfr.strip_prefix("(xfr#")?.strip_suffix(',')?.parse().ok()?;
    let (listing, counts) = match chk.strip_prefix("ir-chk=") {
        Some(counts) => (true, counts),
        None => (false, chk.strip_prefix("to-chk=")?),
    };
    let (left, listed) = counts.strip_suffix(')')?.split_once('/')?;
    let (left, listed): (u64, u64) = (left.parse().ok()?, listed.parse().ok()?);
    Some(Update {
        bytes: bytes.replace(',', "").parse().ok()?,
        rate: rate.to_string(),
        copied,
        checked: listed.saturating_sub(left),
        listed,
        listing,
    })
}

impl Update {
    fn message(&self) -> String {
        format!(
            "{} sent ({}), {} files copied, {} of {}{} compared",
            HumanBytes(self.bytes),
            self.rate,
            self.copied,
            self.checked,
            if self.listing { "≥ " } else { "" },
            self.listed
        )
    }
}

/// The span of a full sync to `target`, with its bar's style: enter it for
/// the bar to show (on a terminal; see `logs.rs`).
pub fn full_sync_span(target: &str) -> Span {
    let span = tracing::info_span!(
        "full sync",
        indicatif.pb_show = tracing::field::Empty,
        target
    );
    span.pb_set_style(
        &ProgressStyle::with_template("{spinner} full sync to {span_fields} {elapsed}: {wide_msg}")
            .expect("a valid template"),
    );
    span.pb_set_message("listing the source");
    span
}

/// Reads rsync's stdout to its end, showing every update on `span`'s bar.
pub fn follow(mut stdout: impl Read, span: &Span) {
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stdout.read(&mut chunk) {
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&chunk[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\r' || b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if let Some(update) = parse(&String::from_utf8_lossy(&line)) {
                span.pb_set_message(&update.message());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress2_lines_parse_while_listing_and_at_the_end() {
        assert_eq!(
            parse("  1,238,099,968  45%  118.08MB/s    0:00:10 (xfr#1234, ir-chk=1000/2345)\r"),
            Some(Update {
                bytes: 1_238_099_968,
                rate: "118.08MB/s".into(),
                copied: 1234,
                checked: 1345,
                listed: 2345,
                listing: true,
            })
        );
        let done =
            parse("         32,768 100%   31.25MB/s    0:00:00 (xfr#3, to-chk=0/5)").unwrap();
        assert_eq!((done.checked, done.listed, done.listing), (5, 5, false));
        assert_eq!(
            done.message(),
            "32.00 KiB sent (31.25MB/s), 3 files copied, 5 of 5 compared"
        );
        for noise in [
            "",
            "sending incremental file list",
            "deleting a/b",
            "1 2 3 4 5 6",
        ] {
            assert_eq!(parse(noise), None, "{noise:?}");
        }
    }
}
