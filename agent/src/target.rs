//! Where a sync pushes to, and how that becomes rsync's destination argument.
//!
//! A target string reaches rsync as an operand (after `--`, see `rsync.rs`),
//! and its host reaches the remote shell or the daemon connection: parsing
//! refuses what rsync or ssh would read as an option (a leading `-`), ports
//! rsync would misread (`rsync://h:99999/m` is truncated by `atoi`,
//! `rsync://h:abc/m` makes rsync fall back to ssh to host `rsync`; rsync's
//! `parse_hostspec` in main.c), and remote-shell paths that would land
//! somewhere the operator did not name.

use std::fmt;
use std::path::PathBuf;

/// A push destination, parsed from a `target = "…"` string.
///
/// Forms (as in rsync(1) "USAGE"): an absolute local directory;
/// `rsync://[user@]host[:port]/module[/path]` or `[user@]host::module[/path]`
/// (rsync daemon); and `[user@]host:/path` or `[user@]host:~/path` (remote
/// shell, ssh by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A directory on this machine.
    Local(PathBuf),
    /// An rsync daemon URL or `host::module` spec, kept verbatim.
    Daemon(String),
    /// A remote-shell destination `[user@]host:path`, kept verbatim.
    Ssh(String),
}

/// The accepted forms, for error messages.
const FORMS: &str = "expected an absolute directory, rsync://[user@]host[:port]/module[/path], [user@]host::module[/path] or [user@]host:/path";

/// rsync's I/O timeout for remote targets when the sync sets none (s):
/// rsync gives up after about 1.5 times this with no byte from the other
/// side (it checks every half timeout), so a target that accepts the
/// connection and never answers fails a push in about 30 s. rsync sends
/// keep-alive messages while a side is busy (protocol ≥ 29), so a long
/// transfer is not cut.
pub const REMOTE_IO_TIMEOUT_S: u64 = 20;
/// rsync's I/O timeout for a local directory when the sync sets none (s):
/// no peer can go silent, only a stalled disk, so a generous bound.
pub const LOCAL_IO_TIMEOUT_S: u64 = 120;
/// Connect timeout for remote targets when the sync sets none (s): rsync
/// `--contimeout` for daemons, ssh `ConnectTimeout` (which also bounds
/// ssh's banner exchange and key exchange) for remote shells.
pub const CONNECT_TIMEOUT_S: u64 = 10;

impl Target {
    /// Parses a target string; the error says what is wrong and which forms
    /// are accepted.
    pub fn parse(spec: &str) -> Result<Target, String> {
        if spec.starts_with('-') {
            return Err(format!(
                "`{spec}` starts with `-`: rsync would read it as an option, not a destination; {FORMS}"
            ));
        }
        if let Some(rest) = spec.strip_prefix("rsync://") {
            let (authority, module) = rest.split_once('/').unwrap_or((rest, ""));
            check_authority(spec, authority, true)?;
            if module.split('/').next().unwrap_or("").is_empty() {
                return Err(format!("`{spec}` names no module; {FORMS}"));
            }
            return Ok(Target::Daemon(spec.to_string()));
        }
        if spec.starts_with('/') {
            return Ok(Target::Local(PathBuf::from(spec)));
        }
        let Some((authority, path)) = split_host(spec) else {
            return Err(format!("`{spec}` is not a target; {FORMS}"));
        };
        check_authority(spec, authority, false)?;
        if let Some(module) = path.strip_prefix(':') {
            if module.split('/').next().unwrap_or("").is_empty() {
                return Err(format!("`{spec}` names no module; {FORMS}"));
            }
            return Ok(Target::Daemon(spec.to_string()));
        }
        check_remote_path(spec, path)?;
        Ok(Target::Ssh(spec.to_string()))
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

    /// The I/O timeout (s) used when the sync sets none: see
    /// [`REMOTE_IO_TIMEOUT_S`] and [`LOCAL_IO_TIMEOUT_S`].
    pub fn default_io_timeout_s(&self) -> u64 {
        match self {
            Target::Local(_) => LOCAL_IO_TIMEOUT_S,
            Target::Daemon(_) | Target::Ssh(_) => REMOTE_IO_TIMEOUT_S,
        }
    }
}

/// The target as written in the configuration (the string [`Target::parse`]
/// read: a local directory's path is kept as given, so this is exact).
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Local(path) => write!(f, "{}", path.display()),
            Target::Daemon(spec) | Target::Ssh(spec) => f.write_str(spec),
        }
    }
}

/// Splits `[user@]host:rest` at the colon that ends the host (after a
/// bracketed IPv6 address `[::1]`); `None` when there is no such colon or
/// the host part holds a `/` (a relative local path such as `./a:b`).
fn split_host(spec: &str) -> Option<(&str, &str)> {
    let host_start = spec.find('@').map_or(0, |at| at + 1);
    let search_from = if spec[host_start..].starts_with('[') {
        host_start + spec[host_start..].find(']')?
    } else {
        host_start
    };
    let colon = search_from + spec[search_from..].find(':')?;
    let (authority, rest) = (&spec[..colon], &spec[colon + 1..]);
    (!authority.contains('/')).then_some((authority, rest))
}

/// Checks `[user@]host[:port]` (`with_port`: an rsync:// URL, whose port
/// must be 1–65535).
fn check_authority(spec: &str, authority: &str, with_port: bool) -> Result<(), String> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((address, rest)) => (address, rest.strip_prefix(':')),
            None => return Err(format!("`{spec}`: unclosed `[` in the host; {FORMS}")),
        },
        None if with_port => match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
        None => (host_port, None),
    };
    if host.is_empty() {
        return Err(format!("`{spec}` names no host; {FORMS}"));
    }
    if host.starts_with('-') {
        return Err(format!(
            "`{spec}`: the host `{host}` starts with `-`, which ssh or rsync would read as an option"
        ));
    }
    match port {
        Some(port) if !with_port => Err(format!(
            "`{spec}`: a port `{port}` cannot be written here; {FORMS}"
        )),
        Some(port) => match port.parse::<u16>() {
            Ok(1..) if port.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
            _ => Err(format!(
                "`{spec}`: port `{port}` is not a number from 1 to 65535 (rsync would misread it)"
            )),
        },
        None => Ok(()),
    }
}

/// A remote-shell path is absolute, under the remote home (`~`), or
/// relative to the remote home as rsync(1) takes it (`host:backup`). What
/// is refused is what is surely a mistake: a path of digits only
/// (`host:873`, a port mistaken for a path: rsync would create `~/873`), and
/// a port in the `host::module` form.
fn check_remote_path(spec: &str, path: &str) -> Result<(), String> {
    let hint = if path.contains("::") {
        "the `host::module` form takes no port: write rsync://HOST:PORT/MODULE"
    } else if !path.is_empty() && path.bytes().all(|b| b.is_ascii_digit()) {
        "it looks like a port, which this form does not take: use rsync://HOST:PORT/MODULE for a daemon, or ssh_command = \"ssh -p PORT\" for ssh"
    } else {
        return Ok(());
    };
    Err(format!("`{spec}`: the remote path `{path}`: {hint}"))
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn parses_the_forms() {
        assert_eq!(
            Target::parse("/srv/replica"),
            Ok(Target::Local("/srv/replica".into()))
        );
        for daemon in [
            "rsync://backup@10.0.0.2:8730/jenkins/home",
            "rsync://standby/jenkins",
            "rsync://[fd00::2]:873/m",
            "backup@standby::jenkins/home",
            "[fd00::2]::m",
        ] {
            assert_eq!(
                Target::parse(daemon),
                Ok(Target::Daemon(daemon.into())),
                "{daemon}"
            );
        }
        for ssh in [
            "root@standby:/var/lib/jenkins",
            "standby:~/replica",
            "[fd00::2]:/srv",
        ] {
            assert_eq!(Target::parse(ssh), Ok(Target::Ssh(ssh.into())), "{ssh}");
        }
    }

    #[test]
    fn refuses_relative_paths_and_urls_without_module() {
        assert!(Target::parse("replica").is_err());
        assert!(Target::parse("./a:b").is_err());
        assert!(Target::parse("rsync://host").is_err());
        assert!(Target::parse("rsync://user@/m").is_err());
        assert!(Target::parse("host::").is_err());
        assert!(Target::parse("").is_err());
    }

    #[test]
    fn a_target_is_never_an_option() {
        for spec in [
            "--rsh=touch:x",
            "-e",
            "-oProxyCommand=x:/srv",
            "user@-oProxyCommand=x:/srv",
            "rsync://-h/m",
        ] {
            let err = Target::parse(spec).unwrap_err();
            assert!(err.contains("starts with `-`"), "{spec}: {err}");
        }
    }

    #[test]
    fn ports_are_numbers_from_1_to_65535() {
        assert!(Target::parse("rsync://h:65535/m").is_ok());
        for spec in [
            "rsync://h:99999/m",
            "rsync://h:abc/m",
            "rsync://h:0/m",
            "rsync://h:/m",
            "rsync://h:+80/m",
            "rsync://[::1]:70000/m",
        ] {
            let err = Target::parse(spec).unwrap_err();
            assert!(err.contains("1 to 65535"), "{spec}: {err}");
        }
        let err = Target::parse("h:873::m").unwrap_err();
        assert!(err.contains("takes no port"), "{err}");
    }

    #[test]
    fn remote_shell_paths_say_where_they_land() {
        let err = Target::parse("standby:873").unwrap_err();
        assert!(err.contains("looks like a port"), "{err}");
        // Relative to the remote home, as rsync takes it.
        assert!(Target::parse("host:abc").is_ok());
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
