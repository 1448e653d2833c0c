//! The configuration file as written: the low layer of the two (ripgrep's
//! low-level arguments), deserialized from TOML and not yet checked.
//!
//! A key not written is `None` here and takes its default in the typed
//! configuration (`config.rs`); every value a check may refuse keeps its
//! position (`Spanned`), so that `validate.rs` names the line of each
//! problem. Syntax errors, unknown keys and values of the wrong type stop
//! here, as one error with its position and dotted key.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::BackendChoice;

/// A problem found in a configuration, before it is placed in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Byte range of the offending value in the text; `None` when the key
    /// is not written (its default is used) or there is no text (the
    /// command line).
    pub span: Option<Range<usize>>,
    /// Dotted key, e.g. `sync[0].batch_max_files` (empty for a syntax
    /// error outside any key).
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub journal: RawJournal,
    #[serde(default)]
    pub capture: RawCapture,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub push: RawPush,
    /// The `[[sync]]` tables; absent (the package's commented default) is
    /// not a parse error but the check's "at least one [[sync]] table is
    /// required".
    pub sync: Option<Spanned<Vec<RawSync>>>,
}

/// `[journal]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJournal {
    pub path: Option<Spanned<PathBuf>>,
    pub retention_records: Option<u64>,
    pub retention_hours: Option<u64>,
}

/// `[capture]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    pub backend: Option<BackendChoice>,
    pub read_interval_ms: Option<u64>,
    pub max_queued_events: Option<u64>,
    pub ring_buffer_bytes: Option<Spanned<u32>>,
    pub dirty_inodes: Option<Spanned<u32>>,
}

/// `[metrics]`: the address is checked while deserializing (a bad one is
/// a type error, reported alone).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    #[serde(default, deserialize_with = "socket_address")]
    pub address: Option<SocketAddr>,
}

/// `[push]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPush {
    pub max_parallel: Option<Spanned<usize>>,
}

/// `[[sync]]`: `name`, `source` and `target` are required; the meaning of
/// every key is on the typed `SyncConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub name: Spanned<String>,
    pub source: Spanned<PathBuf>,
    pub target: Spanned<String>,
    pub password_file: Option<Spanned<PathBuf>>,
    pub ssh_command: Option<String>,
    pub batch_max_files: Option<Spanned<usize>>,
    pub batch_max_bytes: Option<u64>,
    pub batch_delay_ms: Option<u64>,
    pub retry_max_ms: Option<u64>,
    /// Also read under its former name `timeout_s`.
    #[serde(alias = "timeout_s")]
    pub io_timeout_s: Option<u64>,
    pub connect_timeout_s: Option<u64>,
    pub bwlimit: Option<Spanned<String>>,
    pub rsync_args: Option<Vec<String>>,
    pub exclude: Option<Spanned<Vec<String>>>,
    pub settle_ms: Option<u64>,
    pub settle_max_ms: Option<u64>,
    pub hard_links: Option<bool>,
    pub xattrs: Option<bool>,
    pub acls: Option<bool>,
    pub verify_interval_s: Option<u64>,
    pub verify_slices: Option<Spanned<u32>>,
    pub before_full_sync: Option<String>,
    pub after_push: Option<String>,
    pub hook_timeout_s: Option<u64>,
    pub history_days: Option<u32>,
    pub max_delete_percent: Option<Spanned<u8>>,
    pub full_push_percent: Option<Spanned<u8>>,
    pub parallel_transfers: Option<Spanned<usize>>,
}

impl RawSync {
    /// A table with only the required keys, written nowhere (`fsjournal run
    /// --source DIR --dest TARGET`).
    pub fn unwritten(name: &str, source: PathBuf, target: String) -> RawSync {
        RawSync {
            name: Spanned::new(0..0, name.to_string()),
            source: Spanned::new(0..0, source),
            target: Spanned::new(0..0, target),
            password_file: None,
            ssh_command: None,
            batch_max_files: None,
            batch_max_bytes: None,
            batch_delay_ms: None,
            retry_max_ms: None,
            io_timeout_s: None,
            connect_timeout_s: None,
            bwlimit: None,
            rsync_args: None,
            exclude: None,
            settle_ms: None,
            settle_max_ms: None,
            hard_links: None,
            xattrs: None,
            acls: None,
            verify_interval_s: None,
            verify_slices: None,
            before_full_sync: None,
            after_push: None,
            hook_timeout_s: None,
            history_days: None,
            max_delete_percent: None,
            full_push_percent: None,
            parallel_transfers: None,
        }
    }
}

/// The map key under which serde_spanned deserializes a `Spanned` value;
/// `serde_path_to_error` records it as a path segment, which a key shown
/// to the operator drops (`sync[0].verify_slices`, not
/// `sync.$__serde_spanned_private_value[0]…`).
const SPANNED_SEGMENT: &str = ".$__serde_spanned_private_value";

impl RawConfig {
    /// Deserializes TOML text. Errors: the first syntax error, unknown key
    /// or mistyped value, with its span and dotted key.
    pub fn parse(text: &str) -> Result<RawConfig, Problem> {
        let deserializer = toml::de::Deserializer::parse(text).map_err(|e| Problem {
            span: e.span(),
            key: String::new(),
            message: e.message().to_string(),
        })?;
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let key = e.path().to_string().replace(SPANNED_SEGMENT, "");
            let inner = e.into_inner();
            Problem {
                span: inner.span(),
                key,
                message: inner.message().to_string(),
            }
        })
    }
}

/// Deserializes `IP:PORT`, saying what was expected on failure.
fn socket_address<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map(Some).map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}`: expected IP:PORT, e.g. 127.0.0.1:9464 (loopback) or [::1]:9464"
        ))
    })
}
