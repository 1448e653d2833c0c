//! Where a sync pushes to, and how that becomes rsync's destination argument.

use std::path::PathBuf;

/// A push destination, parsed from a `target = "…"` string.
///
/// Forms (as in rsync(1) "USAGE"): an absolute local directory;
/// `rsync://[user@]host[:port]/module[/path]` (rsync daemon); and
/// `[user@]host:path` (remote shell, ssh by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A directory on this machine.
    Local(PathBuf),
    /// An rsync daemon URL, kept verbatim.
    Daemon(String),
    /// A remote-shell destination `[user@]host:path`, kept verbatim.
    Ssh(String),
}

impl Target {
    /// Parses a target string; the error says which forms are accepted.
    pub fn parse(spec: &str) -> Result<Target, String> {
        const FORMS: &str = "expected an absolute directory, rsync://[user@]host[:port]/module[/path] or [user@]host:path";
        if let Some(rest) = spec.strip_prefix("rsync://") {
            let (host, module) = rest.split_once('/').unwrap_or((rest, ""));
            if host.is_empty()
                || host.ends_with('@')
                || module.split('/').next().unwrap_or("").is_empty()
            {
                return Err(format!("`{spec}` names no host or module; {FORMS}"));
            }
            return Ok(Target::Daemon(spec.to_string()));
        }
        if spec.starts_with('/') {
            return Ok(Target::Local(PathBuf::from(spec)));
        }
        match spec.split_once(':') {
            Some((host, _)) if !host.is_empty() && !host.contains('/') => {
                Ok(Target::Ssh(spec.to_string()))
            }
            _ => Err(format!("`{spec}` is not a target; {FORMS}")),
        }
    }

    /// rsync's destination argument, with the trailing `/` that makes rsync
    /// copy the source's *contents* into it.
    pub fn rsync_destination(&self) -> String {
        let mut dest = match self {
            Target::Local(path) => path.display().to_string(),
            Target::Daemon(spec) | Target::Ssh(spec) => spec.clone(),
        };
        if !dest.ends_with('/') {
            dest.push('/');
        }
        dest
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            Target::parse("/srv/replica"),
            Ok(Target::Local("/srv/replica".into()))
        );
        assert_eq!(
            Target::parse("rsync://backup@10.0.0.2:8730/jenkins/home"),
            Ok(Target::Daemon(
                "rsync://backup@10.0.0.2:8730/jenkins/home".into()
            ))
        );
        assert_eq!(
            Target::parse("root@standby:/var/lib/jenkins"),
            Ok(Target::Ssh("root@standby:/var/lib/jenkins".into()))
        );
    }

    #[test]
    fn refuses_relative_paths_and_urls_without_module() {
        assert!(Target::parse("replica").is_err());
        assert!(Target::parse("./a:b").is_err());
        assert!(Target::parse("rsync://host").is_err());
        assert!(Target::parse("rsync://user@/m").is_err());
    }

    #[test]
    fn destination_ends_with_a_slash() {
        assert_eq!(
            Target::parse("/srv/r").unwrap().rsync_destination(),
            "/srv/r/"
        );
        assert_eq!(
            Target::parse("rsync://h/m/").unwrap().rsync_destination(),
            "rsync://h/m/"
        );
    }
}
