//! Parallel transfers: one run's list cut into parts that rsync can carry
//! at once, several runs to one target (`parallel_transfers`; GlusterFS
//! geo-replication's `sync-jobs`).
//!
//! Two runs must never touch one directory's entries and the directory
//! itself: rsync sets a directory's mtime after writing its entries, so a
//! run creating `jobs/a/x` beside a run giving `jobs/a` its attributes
//! would leave `jobs/a`'s mtime wrong, and a run deleting `jobs/a` beside
//! one writing below it would race. So paths are grouped by their first
//! components (one to three, the fewest that give enough groups), and a
//! group whose key is a parent of another's takes it in: the root (`.`)
//! takes everything, `jobs` takes every `jobs/…`. Groups are then dealt
//! to the parts, largest first, to the part with the fewest paths.

use super::rsync::Listed;

/// `list` (one run's listed strings with their path indexes) cut into at
/// most `parts` non-empty lists with no directory shared between them as
/// entry and as parent; in list order within each. One part when
/// `parts` ≤ 1 or nothing can be cut.
pub fn disjoint_parts(list: &[Listed], parts: usize) -> Vec<Vec<Listed>> {
    if parts <= 1 || list.len() < 2 {
        return vec![list.to_vec()];
    }
    let mut groups = Vec::new();
    for depth in 1..=3 {
        groups = groups_at(list, depth);
        if groups.len() >= parts {
            break;
        }
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    let mut dealt: Vec<Vec<Listed>> = vec![Vec::new(); parts.min(groups.len())];
    for group in groups {
        let smallest = dealt
            .iter_mut()
            .min_by_key(|part| part.len())
            .expect("at least one part");
        smallest.extend(group);
    }
    for part in &mut dealt {
        part.sort_by_key(|(_, index)| *index);
    }
    dealt
}

/// The components of a listed string: `.` is the root (none), a trailing
/// `/` (a contents listing) is dropped.
fn components(listed: &[u8]) -> Vec<&[u8]> {
    let path = listed.strip_suffix(b"/").unwrap_or(listed);
    if path == b"." || path.is_empty() {
        return Vec::new();
    }
    path.split(|&b| b == b'/').collect()
}

/// `list` grouped by the first `depth` components, a group whose key is a
/// parent (or the same) of later keys taking them in.
fn groups_at(list: &[Listed], depth: usize) -> Vec<Vec<Listed>> {
    let mut keyed: Vec<(Vec<&[u8]>, &Listed)> = list
        .iter()
        .map(|item| {
            let mut key = components(&item.0);
            key.truncate(depth);
            (key, item)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut groups: Vec<Vec<Listed>> = Vec::new();
    let mut head: Option<Vec<&[u8]>> = None;
    for (key, item) in keyed {
        match &head {
            Some(h) if key.starts_with(h) => {}
            _ => {
                head = Some(key);
                groups.push(Vec::new());
            }
        }
        groups.last_mut().expect("a group").push(item.clone());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(paths: &[&str]) -> Vec<Listed> {
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_bytes().to_vec(), i))
            .collect()
    }

    fn texts(parts: &[Vec<Listed>]) -> Vec<Vec<String>> {
        parts
            .iter()
            .map(|p| {
                p.iter()
                    .map(|(s, _)| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn jobs_are_dealt_to_parts_and_a_job_stays_whole() {
        let l = list(&[
            "jobs/a/builds/1/log",
            "jobs/b/config.xml",
            "jobs/a/config.xml",
            "jobs/c/builds/2/log",
            "jobs/b/builds/9/log",
        ]);
        let parts = texts(&disjoint_parts(&l, 2));
        assert_eq!(parts.len(), 2);
        for part in &parts {
            let jobs: std::collections::BTreeSet<_> =
                part.iter().map(|p| p.split('/').nth(1).unwrap()).collect();
            for other in &parts {
                if !std::ptr::eq(part, other) {
                    assert!(other
                        .iter()
                        .all(|p| !jobs.contains(p.split('/').nth(1).unwrap())));
                }
            }
        }
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 5);
    }

    #[test]
    fn a_listed_parent_takes_its_children_and_the_root_takes_everything() {
        let l = list(&["jobs", "jobs/a/x", "jobs/b/y", "other/z"]);
        let parts = texts(&disjoint_parts(&l, 4));
        assert_eq!(
            parts,
            [vec!["jobs", "jobs/a/x", "jobs/b/y"], vec!["other/z"]]
        );
        let l = list(&[".", "a/x", "b/y"]);
        assert_eq!(disjoint_parts(&l, 4).len(), 1);
        let l = list(&["a/", "a/x", "ab/y"]);
        assert_eq!(
            texts(&disjoint_parts(&l, 4)),
            [vec!["a/", "a/x"], vec!["ab/y"]],
            "components, not bytes: `ab` is not below `a`"
        );
    }

    #[test]
    fn one_part_asked_is_the_list_as_it_is() {
        let l = list(&["b", "a"]);
        assert_eq!(disjoint_parts(&l, 1), std::slice::from_ref(&l));
    }
}
