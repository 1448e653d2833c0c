//! Exclude patterns: one list per sync, applied at capture time (nothing
//! excluded is journaled), in the gap scan, and passed to rsync as
//! `--exclude` for every run, so that all paths agree.
//!
//! Patterns follow rsync(1) "PATTERN MATCHING RULES" for the common cases: a
//! pattern starting with `/` is anchored at the root; any other pattern
//! matches the end of a path at a component boundary (`*.tmp`,
//! `workspace/**`, `builds/*/archive`); `*` and `?` stay within one
//! component, `**` crosses `/`. An excluded directory excludes everything
//! below it. rsync's include rules (`+ `) and directory-only patterns (a
//! trailing `/`) are refused rather than approximated.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// A compiled exclude list.
#[derive(Debug, Clone, Default)]
pub struct Excludes {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Excludes {
    /// Compiles rsync-style patterns; the error names the bad pattern.
    pub fn new(patterns: &[String]) -> Result<Excludes, String> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            if pattern.is_empty()
                || pattern.starts_with("+ ")
                || pattern.starts_with("- ")
                || pattern.ends_with('/')
            {
                return Err(format!("`{pattern}`: expected a non-empty rsync exclude pattern without `+ `/`- ` prefix or trailing `/`"));
            }
            let glob = match pattern.strip_prefix('/') {
                Some(anchored) => anchored.to_string(),
                None => format!("**/{pattern}"),
            };
            let compiled = GlobBuilder::new(&glob)
                .literal_separator(true)
                .backslash_escape(true)
                .build();
            builder.add(compiled.map_err(|e| format!("`{pattern}`: {e}"))?);
        }
        let set = builder.build().map_err(|e| e.to_string())?;
        Ok(Excludes {
            patterns: patterns.to_vec(),
            set,
        })
    }

    /// The patterns as written (empty when none), e.g. for rsync's
    /// `--exclude`.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// True when `path` (root-relative) or one of its parent directories is
    /// excluded. The root itself (`""`) never is.
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        if self.patterns.is_empty() || path.is_empty() {
            return false;
        }
        let prefixes = path
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| &path[..i]);
        prefixes.chain(std::iter::once(path)).any(|prefix| {
            self.set
                .is_match(Path::new(std::ffi::OsStr::from_bytes(prefix)))
        })
    }
}

/// The exclude lists of every sync of one root. Capture leaves a path out of
/// the journal only when *every* sync of its root excludes it; each pusher
/// then applies its own list.
#[derive(Debug, Clone, Default)]
pub struct RootExcludes(Vec<Excludes>);

impl RootExcludes {
    /// Adds one sync's list.
    pub fn add(&mut self, excludes: Excludes) {
        self.0.push(excludes);
    }

    /// True when every sync of the root excludes `path`.
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        !self.0.is_empty() && self.0.iter().all(|e| e.is_excluded(path))
    }
}

#[cfg(test)]
mod tests {
    use super::{Excludes, RootExcludes};

    fn excludes(patterns: &[&str]) -> Excludes {
        Excludes::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn unanchored_patterns_match_at_any_depth_and_cover_subtrees() {
        let e = excludes(&["*.tmp", "workspace/**", "builds/*/archive"]);
        assert!(e.is_excluded(b"config.xml.tmp"));
        assert!(e.is_excluded(b"jobs/a/config.xml.tmp"));
        assert!(e.is_excluded(b"jobs/a/workspace/src/main.c"));
        assert!(e.is_excluded(b"jobs/a/builds/7/archive/app.jar"));
        assert!(
            !e.is_excluded(b"jobs/a/workspace"),
            "rsync's `workspace/**` keeps the directory itself"
        );
        assert!(!e.is_excluded(b"jobs/a/config.xml"));
        assert!(!e.is_excluded(b"jobs/a/builds/7/log"));
        assert!(!e.is_excluded(b"jobs/a/tmp"));
    }

    #[test]
    fn anchored_patterns_match_from_the_root_only() {
        let e = excludes(&["/cache"]);
        assert!(e.is_excluded(b"cache"));
        assert!(e.is_excluded(b"cache/x/y"));
        assert!(!e.is_excluded(b"jobs/cache"));
    }

    #[test]
    fn star_stays_within_one_component_and_bytes_need_not_be_utf8() {
        let e = excludes(&["jobs/*.log"]);
        assert!(e.is_excluded(b"jobs/x.log"));
        assert!(!e.is_excluded(b"jobs/a/x.log"));
        assert!(excludes(&["*.tmp"]).is_excluded(b"bad\xff.tmp"));
    }

    #[test]
    fn a_root_excludes_only_what_every_sync_excludes() {
        let mut root = RootExcludes::default();
        root.add(excludes(&["*.tmp", "workspace/**"]));
        root.add(excludes(&["*.tmp"]));
        assert!(root.is_excluded(b"a.tmp"));
        assert!(
            !root.is_excluded(b"jobs/x/workspace/f"),
            "the second sync wants the workspace"
        );
        assert!(!RootExcludes::default().is_excluded(b"a.tmp"));
    }

    #[test]
    fn rsync_rules_that_cannot_be_matched_alike_are_refused() {
        for bad in ["+ keep", "- x", "dir/", ""] {
            assert!(Excludes::new(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
