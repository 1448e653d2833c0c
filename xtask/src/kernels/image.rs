//! What a guest boots, built once and cached under [`CACHE`]: a Debian
//! kernel package fetched with `apt-get download` and unpacked with
//! `dpkg -x` (the host's /boot is never touched), the uncompressed vmlinux
//! taken out of its vmlinuz, and a small initramfs (static busybox, the
//! virtio/9p/loop/ext4 modules, `init.sh`).
//!
//! Cache layout: `debs/*.deb`, `k/<release>/` (the unpacked package, plus
//! `boot/vmlinux-<release>`), `initrd/<release>.cpio` with a `.stamp` that
//! records what it was built from (a changed `init.sh` or module list
//! rebuilds it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context};

use crate::bench::output;

/// Where kernels, initramfs images and guest run directories are kept.
pub const CACHE: &str = "/var/tmp/fsjournal-kernels";

/// Modules the guest loads at boot (with their dependencies): the virtio
/// PCI transport and 9p for the host root, loop and ext4 for the tests'
/// loop-mounted scratch filesystems, xfs when the kernel has it.
const MODULES: [&str; 6] = ["virtio_pci", "9pnet_virtio", "9p", "loop", "ext4", "xfs"];

/// The guest's /init.
const INIT: &str = include_str!("init.sh");

/// A kernel ready to boot.
pub struct Kernel {
    /// Debian kernel release, e.g. `6.12.111+deb12-amd64` (`uname -r`).
    pub release: String,
    /// The unpacked package (`boot/`, `lib/modules/<release>/`).
    pub tree: PathBuf,
    /// The uncompressed ELF kernel, booted through its PVH entry.
    pub vmlinux: PathBuf,
    /// The initramfs (uncompressed newc cpio).
    pub initrd: PathBuf,
}

/// Fetches (or finds in the cache) the kernel package `release`, then its
/// vmlinux and initramfs. Errors: download, unpack, extraction or cpio
/// failures, each naming the step.
pub fn prepare(release: &str) -> anyhow::Result<Kernel> {
    let tree = unpack(release)?;
    let vmlinux = vmlinux(release, &tree)?;
    let initrd = initramfs(release, &tree)?;
    Ok(Kernel {
        release: release.to_string(),
        tree,
        vmlinux,
        initrd,
    })
}

/// The Debian kernel release for `series` (`6.1`, `6.12`, or a full release
/// such as `6.1.0-50-amd64`, taken as is): the newest `linux-image-<release>`
/// apt lists (`apt-cache pkgnames`, no network), else `pinned`.
pub fn resolve(series: &str, pinned: &str) -> String {
    if series.ends_with("-amd64") {
        return series.to_string();
    }
    let names =
        output(Command::new("apt-cache").args(["pkgnames", "linux-image-6."])).unwrap_or_default();
    names
        .lines()
        .filter_map(|name| name.strip_prefix("linux-image-"))
        .filter_map(|release| release_key(series, release).map(|key| (key, release)))
        .max()
        .map_or_else(|| pinned.to_string(), |(_, release)| release.to_string())
}

/// Removes the cached files of `series`'s releases other than `keep` (the
/// debs, unpacked trees and initramfs of kernels apt no longer offers as
/// newest: about 400 MiB each). Best effort: errors are ignored.
pub fn prune(series: &str, keep: &str) {
    let cache = Path::new(CACHE);
    for sub in ["debs", "k", "initrd"] {
        let Ok(entries) = std::fs::read_dir(cache.join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let name = name.strip_prefix("linux-image-").unwrap_or(&name);
            let release = name.split(['_']).next().unwrap_or_default();
            let release = [".cpio.partial", ".cpio", ".stamp", ".partial", ".staging"]
                .iter()
                .find_map(|ext| release.strip_suffix(ext))
                .unwrap_or(release);
            if release != keep && release_key(series, release).is_some() {
                eprintln!("test-kernels: pruning {}", entry.path().display());
                let _ = std::fs::remove_dir_all(entry.path());
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Sort key of a plain amd64 flavour `release` of `series` (`6.1.0-57-amd64`
/// → [0, 57]; `6.12.117+deb12-amd64` → [117, 12]); None for another series
/// or flavour (cloud, rt, unsigned, dbg).
fn release_key(series: &str, release: &str) -> Option<Vec<u64>> {
    let body = release
        .strip_prefix(series)?
        .strip_prefix('.')?
        .strip_suffix("-amd64")?;
    let body = body
        .split_once("+deb")
        .map_or(body.to_string(), |(a, b)| format!("{a}-{b}"));
    body.split(['.', '-']).map(|n| n.parse().ok()).collect()
}

/// `k/<release>/`: the package downloaded into `debs/` and unpacked, with
/// `modules.dep` (depmod) for module resolution. Cached: a tree with
/// `modules.dep` is reused as is.
fn unpack(release: &str) -> anyhow::Result<PathBuf> {
    let tree = Path::new(CACHE).join("k").join(release);
    let modules = tree.join("lib/modules").join(release);
    if modules.join("modules.dep").exists() {
        return Ok(tree);
    }
    let deb = download(release)?;
    let partial = Path::new(CACHE)
        .join("k")
        .join(format!("{release}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    eprintln!("test-kernels: unpacking {}", deb.display());
    output(Command::new("dpkg").arg("-x").arg(&deb).arg(&partial))?;
    output(Command::new("depmod").arg("-b").arg(&partial).arg(release))?;
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::rename(&partial, &tree)
        .with_context(|| format!("cannot move {} to {}", partial.display(), tree.display()))?;
    Ok(tree)
}

/// `debs/linux-image-<release>_*.deb`, downloaded with `apt-get download`
/// unless already there.
fn download(release: &str) -> anyhow::Result<PathBuf> {
    let debs = Path::new(CACHE).join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("cannot create {}", debs.display()))?;
    let find = || -> anyhow::Result<Option<PathBuf>> {
        let prefix = format!("linux-image-{release}_");
        Ok(std::fs::read_dir(&debs)?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(&prefix) && name.ends_with(".deb")
            }))
    };
    if let Some(deb) = find()? {
        return Ok(deb);
    }
    eprintln!("test-kernels: downloading linux-image-{release}");
    output(
        Command::new("apt-get")
            .args(["download", "-qq"])
            .arg(format!("linux-image-{release}"))
            .current_dir(&debs),
    )?;
    find()?.with_context(|| {
        format!(
            "apt-get download left no linux-image-{release} in {}",
            debs.display()
        )
    })
}

/// `k/<release>/boot/vmlinux-<release>`: the ELF kernel inside the vmlinuz
/// (bzImage). The boot header locates the compressed payload (`setup_sects`
/// at 0x1f1, `payload_offset` and `payload_length` at 0x248 and 0x24c; the
/// payload ends with 4 bytes of decompressed size), which `xz` or `zstd`
/// decompresses.
fn vmlinux(release: &str, tree: &Path) -> anyhow::Result<PathBuf> {
    let out = tree.join("boot").join(format!("vmlinux-{release}"));
    if out.exists() {
        return Ok(out);
    }
    let vmlinuz = tree.join("boot").join(format!("vmlinuz-{release}"));
    let image =
        std::fs::read(&vmlinuz).with_context(|| format!("cannot read {}", vmlinuz.display()))?;
    let payload =
        bzimage_payload(&image).with_context(|| format!("{} is no bzImage", vmlinuz.display()))?;
    let tool = match payload {
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => "xz",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        _ => bail!("{}: payload neither xz nor zstd", vmlinuz.display()),
    };
    let elf = decompress(tool, payload)?;
    ensure!(
        elf.starts_with(b"\x7fELF"),
        "{}: payload is no ELF file",
        vmlinuz.display()
    );
    let partial = tree.join("boot").join(format!("vmlinux-{release}.partial"));
    std::fs::write(&partial, &elf)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

/// The compressed kernel in a bzImage, without its trailing size word.
fn bzimage_payload(image: &[u8]) -> anyhow::Result<&[u8]> {
    let u32_at = |at: usize| -> anyhow::Result<usize> {
        let bytes = image.get(at..at + 4).context("file too short")?;
        Ok(u32::from_le_bytes(bytes.try_into()?) as usize)
    };
    ensure!(
        image.get(0x202..0x206) == Some(b"HdrS"),
        "no HdrS boot header"
    );
    let setup_sects = match *image.get(0x1f1).context("file too short")? {
        0 => 4,
        n => n as usize,
    };
    let start = (setup_sects + 1) * 512 + u32_at(0x248)?;
    let len = u32_at(0x24c)?;
    ensure!(len > 4, "empty payload");
    image
        .get(start..start + len - 4)
        .context("payload past the end of the file")
}

/// `tool -dc` over `input` (fed from a thread); its stdout.
fn decompress(tool: &str, input: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut child = Command::new(tool)
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {tool}"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let out = std::thread::scope(|s| {
        s.spawn(move || stdin.write_all(input));
        child.wait_with_output()
    })?;
    ensure!(out.status.success(), "{tool} -dc failed: {}", out.status);
    Ok(out.stdout)
}

/// `initrd/<release>.cpio`: `/init` (init.sh), `/bin/busybox` (Debian's
/// busybox-static) and `/mods/*.ko` with `/mods.list` in load order. Rebuilt
/// when its stamp (init.sh and the module list) differs.
fn initramfs(release: &str, tree: &Path) -> anyhow::Result<PathBuf> {
    let dir = Path::new(CACHE).join("initrd");
    let cpio = dir.join(format!("{release}.cpio"));
    let stamp_path = dir.join(format!("{release}.stamp"));
    let stamp = format!("modules: {}\n{INIT}", MODULES.join(" "));
    if cpio.exists() && std::fs::read_to_string(&stamp_path).ok().as_deref() == Some(&stamp) {
        return Ok(cpio);
    }
    let staging = dir.join(format!("{release}.staging"));
    let _ = std::fs::remove_file(&stamp_path);
    let _ = std::fs::remove_dir_all(&staging);
    for sub in ["bin", "mods", "proc", "sys", "dev", "newroot"] {
        std::fs::create_dir_all(staging.join(sub))
            .with_context(|| format!("cannot create {}", staging.display()))?;
    }
    std::fs::copy("/bin/busybox", staging.join("bin/busybox"))
        .context("cannot copy /bin/busybox")?;
    write_executable(&staging.join("init"), INIT)?;
    let loaded = copy_modules(release, tree, &staging.join("mods"))?;
    std::fs::write(staging.join("mods.list"), loaded.join("\n") + "\n")?;
    // Renamed into place: another run's QEMU may be reading the old one.
    let partial = dir.join(format!("{release}.cpio.partial"));
    pack_cpio(&staging, &partial)?;
    std::fs::rename(&partial, &cpio).with_context(|| format!("cannot write {}", cpio.display()))?;
    std::fs::write(&stamp_path, stamp)?;
    std::fs::remove_dir_all(&staging)?;
    Ok(cpio)
}

/// Writes `text` to `path`, mode 0755.
fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Decompresses [`MODULES`] and what they depend on (`modprobe -d tree -S
/// release --show-depends`, built-ins skipped) into `mods`; their file names
/// in load order. A module the kernel lacks (xfs) is skipped with a note.
fn copy_modules(release: &str, tree: &Path, mods: &Path) -> anyhow::Result<Vec<String>> {
    let mut loaded: Vec<String> = Vec::new();
    for module in MODULES {
        let deps = output(Command::new("modprobe").arg("-d").arg(tree).args([
            "-S",
            release,
            "--show-depends",
            module,
        ]));
        let deps = match deps {
            Ok(deps) => deps,
            Err(e) if module == "xfs" => {
                eprintln!("test-kernels: {release} has no xfs module: {e:#}");
                continue;
            }
            Err(e) => return Err(e),
        };
        for line in deps.lines() {
            let Some(path) = line
                .strip_prefix("insmod ")
                .and_then(|l| l.split_whitespace().next())
            else {
                continue; // `builtin …`
            };
            let name = Path::new(path)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            let (name, tool) = match (name.strip_suffix(".xz"), name.strip_suffix(".zst")) {
                (Some(n), _) => (n.to_string(), Some("xz")),
                (_, Some(n)) => (n.to_string(), Some("zstd")),
                _ => (name.to_string(), None),
            };
            if loaded.contains(&name) {
                continue;
            }
            let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
            let bytes = match tool {
                Some(tool) => decompress(tool, &bytes)?,
                None => bytes,
            };
            std::fs::write(mods.join(&name), bytes)?;
            loaded.push(name);
        }
    }
    Ok(loaded)
}

/// Packs `dir` into the newc archive `out` with `cpio -o -H newc`.
fn pack_cpio(dir: &Path, out: &Path) -> anyhow::Result<()> {
    let names = output(Command::new("find").arg(".").current_dir(dir))?;
    let file =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("cannot run cpio")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(names.as_bytes())?;
    let status = child.wait()?;
    ensure!(status.success(), "cpio failed: {status}");
    Ok(())
}
