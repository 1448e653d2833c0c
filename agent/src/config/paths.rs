//! Path graph validation: the journal, every source and every local target
//! may not contain one another, across all syncs, compared as the kernel
//! resolves them (symlinks, `..`, relative to the current directory).
//!
//! Each overlap destroys something or never ends: a target inside a source
//! is copied into itself at every push (`replica/replica/…`); a source
//! inside a target is deleted by the target's `--delete`; two syncs whose
//! targets are each other's sources feed each other; a journal inside a
//! source ships live RocksDB files; nested sources give a directory to the
//! inner root only, so the outer target misses its changes. The same source
//! shared by several syncs (one tree, several targets) is the one overlap
//! allowed.

use std::ops::Range;
use std::path::{Component, Path, PathBuf};

/// What a path is to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `journal.path`: the RocksDB journal.
    Journal,
    /// A sync's `source`.
    Source,
    /// A sync's local `target` directory.
    Target,
}

impl Role {
    fn noun(self) -> &'static str {
        match self {
            Role::Journal => "the journal",
            Role::Source => "source",
            Role::Target => "target",
        }
    }
}

/// One path of the graph, where it was written.
#[derive(Debug, Clone)]
pub struct Node {
    /// What the path is.
    pub role: Role,
    /// Dotted key, e.g. `sync[1].target`.
    pub key: String,
    /// Span of the value in its file, when known.
    pub span: Option<Range<usize>>,
    /// The path as written.
    pub written: PathBuf,
    /// The path resolved by [`canonical`].
    pub canonical: PathBuf,
}

impl Node {
    /// A node for `written`, resolved against the current directory.
    pub fn new(role: Role, key: String, span: Option<Range<usize>>, written: &Path) -> Node {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        Node {
            role,
            key,
            span,
            written: written.to_path_buf(),
            canonical: canonical(written, &cwd),
        }
    }

    /// `PATH` or `PATH (resolves to CANONICAL)` when they differ.
    fn shown(&self) -> String {
        if self.written == self.canonical {
            self.written.display().to_string()
        } else {
            format!(
                "{} (resolves to {})",
                self.written.display(),
                self.canonical.display()
            )
        }
    }
}

/// Two nodes that overlap, as indices into the node list; [`describe`]
/// says what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct Clash {
    /// The node the problem is reported at (a target when one is involved,
    /// else the inner source, else the source).
    pub at: usize,
    /// The node it overlaps.
    pub other: usize,
}

/// Every pair of `nodes` that may not overlap but does, each pair once.
pub fn clashes(nodes: &[Node]) -> Vec<Clash> {
    let mut found = Vec::new();
    for (a, first) in nodes.iter().enumerate() {
        for (b, second) in nodes.iter().enumerate().skip(a + 1) {
            let (x, y) = (&first.canonical, &second.canonical);
            let overlap = x.starts_with(y) || y.starts_with(x);
            let shared_source = first.role == Role::Source && second.role == Role::Source && x == y;
            if !overlap || shared_source {
                continue;
            }
            let at = match (first.role, second.role) {
                (Role::Target, _) => a,
                (_, Role::Target) => b,
                (Role::Journal, _) => b,
                (_, Role::Journal) => a,
                // Two sources: report at the inner one.
                _ if x.starts_with(y) => a,
                _ => b,
            };
            found.push(Clash {
                at,
                other: a + b - at,
            });
        }
    }
    found
}

/// What is wrong with `clash`, naming both paths; `place` says where the
/// other node was written (`FILE:LINE: key `KEY`` or a command-line option).
pub fn describe(nodes: &[Node], clash: &Clash, place: &dyn Fn(&Node) -> String) -> String {
    let (at, other) = (&nodes[clash.at], &nodes[clash.other]);
    let relation = if at.canonical == other.canonical {
        "is the same directory as"
    } else if at.canonical.starts_with(&other.canonical) {
        "lies inside"
    } else {
        "contains"
    };
    let why = match (at.role, other.role) {
        (Role::Target, Role::Source) if relation == "contains" => "a full sync's --delete would remove the source itself; put the target outside every source",
        (Role::Target, Role::Source) => "every push would copy the replica into itself again, without end; put the target outside every source",
        (Role::Target, Role::Target) => "one sync's --delete would remove the other's replica, or the two would overwrite each other; give each sync its own directory",
        (Role::Target, Role::Journal) => "pushes would write into the journal or delete it; keep the journal outside every target",
        (Role::Source, Role::Journal) => "the journal must live outside every source (its live RocksDB files would be captured and copied to the target)",
        (Role::Source, Role::Source) => "sources must not nest: a directory would belong to the inner root only and the outer target would miss its changes; sync the outer tree once, or make the trees disjoint",
        _ => "the journal, the sources and the local targets must not contain one another",
    };
    format!(
        "{} {} {relation} {} {} ({}): {why}",
        at.role.noun(),
        at.shown(),
        other.role.noun(),
        other.shown(),
        place(other)
    )
}

/// Symlinks a path may cross while resolving (the kernel's `MAXSYMLINKS`,
/// include/linux/namei.h), beyond which resolution stops.
const MAX_SYMLINKS: usize = 40;

/// `path` resolved as the kernel would: relative to `cwd`, each existing
/// component's symlinks and `..` resolved (`std::fs::canonicalize`), and the
/// components that do not exist yet (a journal or target created later)
/// appended, with `..` among them taken lexically. A dangling symlink is
/// followed to where it points.
pub fn canonical(path: &Path, cwd: &Path) -> PathBuf {
    resolve(&cwd.join(path), 0)
}

fn resolve(absolute: &Path, links: usize) -> PathBuf {
    let mut resolved = PathBuf::from("/");
    for component in absolute.components() {
        match component {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            // `resolved` has no symlink left, so its parent is lexical.
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                let next = resolved.join(name);
                resolved = match (next.canonicalize(), std::fs::read_link(&next)) {
                    (Ok(real), _) => real,
                    (Err(_), Ok(link)) if links < MAX_SYMLINKS => {
                        resolve(&resolved.join(link), links + 1)
                    }
                    _ => next,
                };
            }
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(role: Role, key: &str, path: &Path) -> Node {
        Node::new(role, key.into(), None, path)
    }

    #[test]
    fn canonical_resolves_dotdot_symlinks_and_missing_components() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src/sub")).unwrap();
        std::fs::create_dir(root.join("other")).unwrap();
        std::os::unix::fs::symlink(root.join("src"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("src/gone"), root.join("dangling")).unwrap();
        let cases = [
            ("other/../src/replica", "src/replica"),
            ("link/sub", "src/sub"),
            ("missing/../src/x/y", "src/x/y"),
            ("link/new/../../src", "src"),
            ("dangling/z", "src/gone/z"),
        ];
        for (written, expected) in cases {
            assert_eq!(
                canonical(Path::new(written), &root),
                root.join(expected),
                "{written}"
            );
        }
        assert_eq!(
            canonical(&root.join("./src/./sub/.."), Path::new("/nowhere")),
            root.join("src")
        );
    }

    #[test]
    fn overlaps_are_reported_once_at_the_target_or_the_inner_source() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let nodes = [
            node(Role::Journal, "journal.path", &root.join("j")),
            node(Role::Source, "sync[0].source", &root.join("a")),
            node(Role::Target, "sync[0].target", &root.join("b")),
            node(Role::Source, "sync[1].source", &root.join("b")),
            node(Role::Target, "sync[1].target", &root.join("a")),
            node(Role::Source, "sync[2].source", &root.join("a")),
            node(Role::Source, "sync[3].source", &root.join("a/inner")),
        ];
        let found: Vec<(&str, &str)> = clashes(&nodes)
            .iter()
            .map(|c| (nodes[c.at].key.as_str(), nodes[c.other].key.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("sync[1].target", "sync[0].source"),
                ("sync[3].source", "sync[0].source"),
                ("sync[0].target", "sync[1].source"),
                ("sync[1].target", "sync[2].source"),
                ("sync[1].target", "sync[3].source"),
                ("sync[3].source", "sync[2].source"),
            ]
        );
    }

    #[test]
    fn a_description_names_both_paths_and_the_other_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        let nodes = [
            node(Role::Source, "sync[0].source", &root.join("src")),
            node(
                Role::Target,
                "sync[0].target",
                &root.join("other/../src/replica"),
            ),
        ];
        let found = clashes(&nodes);
        assert_eq!(found, [Clash { at: 1, other: 0 }]);
        let text = describe(&nodes, &found[0], &|n| format!("f.toml:3: key `{}`", n.key));
        let expected = format!(
            "target {}/other/../src/replica (resolves to {}/src/replica) lies inside source {}/src (f.toml:3: key `sync[0].source`)",
            root.display(),
            root.display(),
            root.display()
        );
        assert!(text.starts_with(&expected), "{text}");
        assert!(text.contains("copy the replica into itself"), "{text}");
    }
}
