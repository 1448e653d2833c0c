//! The attach ladder's rung 1: fexit programs on the VFS entry points (and
//! one fentry program, on `vfs_rename`, for the old name)
//! (`ebpf/programs/src/vfs.rs`), for kernels that have BPF trampolines but
//! not the `timestamp` tracepoints (before 6.13: Debian 12's 6.1, 6.12,
//! Ubuntu 22.04/24.04, RHEL 9).
//!
//! The programs read kernel structs (`file`, `dentry`, `inode`,
//! `super_block`, `renamedata`) whose layout differs between kernel
//! versions and builds. No offset is compiled in: [`plan`] reads each
//! member's byte offset from the running kernel's BTF
//! (`/sys/kernel/btf/vmlinux`, with btf-rs) and the loader writes them into
//! the object's read-only globals (`EbpfLoader::override_global`) before the
//! kernel sees it, so the verifier checks the programs with the real
//! offsets. A member the BTF lacks, or a required function it does not
//! describe, refuses the rung with that name: nothing is ever read at a
//! guessed offset. The members and functions are listed once, in
//! `fsjournal_common::vfs_hooks`.
//!
//! A kernel whose layout no longer matches the programs' assumptions is
//! refused here (this project's 6.18: its `renamedata` names the parent
//! dentries, `old_parent`, not `old_dir`); a kernel without working trampolines (this project's VM again:
//! `BPF_PROG_LOAD` of a tracing program → EPERM) refuses the first program
//! at attach (`capture/ebpf.rs`). Either way the ladder then tries the
//! tracepoint rung.

use anyhow::{bail, Context};
use btf_rs::{Backend, Btf, Type};
use fsjournal_common::vfs_hooks::{Hook, HOOKS, MEMBERS};

/// Where the running kernel describes its types.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// What this kernel's BTF allows: the offsets to set, and the hooks whose
/// functions it has.
pub struct Plan {
    /// `(global, byte offset)` for every member of `MEMBERS`.
    pub globals: Vec<(&'static str, u32)>,
    /// The hooks to attach, in `HOOKS` order.
    pub hooks: Vec<Hook>,
    /// Optional functions this kernel does not have (inlined or absent).
    pub absent: Vec<&'static str>,
}

/// Opens the kernel's BTF. Mmap first: only what is asked for is parsed (a
/// start pays for ~50 lookups, not for the kernel's ~100k types). sysfs lets
/// `/sys/kernel/btf/vmlinux` be mmapped only from 6.16 on (6.1 and 6.12 say
/// ENODEV), so older kernels get the whole file parsed (~150 ms, debug build).
fn read_vmlinux_btf() -> anyhow::Result<Btf> {
    Btf::from_file_with_backend(VMLINUX_BTF, Backend::Mmap)
        .or_else(|_| Btf::from_file_with_backend(VMLINUX_BTF, Backend::Cache))
        .with_context(|| format!("cannot read the kernel's BTF ({VMLINUX_BTF})"))
}

/// Reads the running kernel's BTF: every member's offset, and which hooked
/// functions exist. Errors (the refusal, for the ladder string): no BTF, a
/// member or a required function missing.
pub fn plan() -> anyhow::Result<Plan> {
    let btf = read_vmlinux_btf()?;
    let globals = MEMBERS
        .iter()
        .map(|m| Ok((m.global, member_offset(&btf, m.strukt, m.member)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (mut hooks, mut absent) = (Vec::new(), Vec::new());
    for hook in HOOKS {
        let problem = match prototype(&btf, hook.function) {
            Some(found) if found == (hook.args, hook.returns) => {
                hooks.push(hook);
                continue;
            }
            Some((args, returns)) => format!(
                "the kernel's {} takes {args} arguments and returns {returns} bytes, \
                 the program expects {} and {}",
                hook.function, hook.args, hook.returns
            ),
            None => format!("the kernel's BTF has no function {}", hook.function),
        };
        if hook.required {
            bail!("{problem}");
        }
        absent.push(hook.function);
    }
    Ok(Plan {
        globals,
        hooks,
        absent,
    })
}

/// Function `name`'s prototype in the BTF (fexit needs its BTF id): the
/// number of arguments and the return value's width in bytes.
fn prototype(btf: &Btf, name: &str) -> Option<(usize, usize)> {
    let types = btf.resolve_types_by_name(name).ok()?;
    let Some(Type::Func(func)) = types.into_iter().find(|t| matches!(t, Type::Func(_))) else {
        return None;
    };
    let Type::FuncProto(proto) = btf.resolve_chained_type(&func).ok()? else {
        return None;
    };
    let returned = resolve(btf, btf.resolve_type_by_id(proto.return_type_id()).ok()?).ok()?;
    let width = match returned {
        Type::Int(int) => int.size(),
        Type::Ptr(_) => 8,
        Type::Enum(_) => 4,
        _ => 0,
    };
    Some((proto.parameters.len(), width))
}

/// The byte offset of `path` (`member` or `member.member`) in `struct strukt`.
fn member_offset(btf: &Btf, strukt: &str, path: &str) -> anyhow::Result<u32> {
    let types = btf
        .resolve_types_by_name(strukt)
        .with_context(|| format!("the kernel's BTF has no struct {strukt}"))?;
    let mut current = types
        .into_iter()
        .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
        .with_context(|| format!("the kernel's BTF has no struct {strukt}"))?;
    let mut bits = 0;
    for name in path.split('.') {
        let (offset, ty) = find_member(btf, &current, name)?
            .with_context(|| format!("struct {strukt} has no member {path} in the kernel's BTF"))?;
        bits += offset;
        current = ty;
    }
    if bits % 8 != 0 {
        bail!("{strukt}.{path} is a bit field in the kernel's BTF");
    }
    Ok(bits / 8)
}

/// Member `name` of a struct or union type: its bit offset and its type
/// (typedefs and qualifiers resolved); members of anonymous structs and
/// unions are searched too, their offsets added.
fn find_member(btf: &Btf, ty: &Type, name: &str) -> anyhow::Result<Option<(u32, Type)>> {
    let (Type::Struct(s) | Type::Union(s)) = ty else {
        return Ok(None);
    };
    for member in &s.members {
        let member_name = btf.resolve_name(member).unwrap_or_default();
        let member_type = resolve(btf, btf.resolve_chained_type(member)?)?;
        if member_name == name {
            return Ok(Some((member.bit_offset(), member_type)));
        }
        if member_name.is_empty() {
            if let Some((offset, found)) = find_member(btf, &member_type, name)? {
                return Ok(Some((member.bit_offset() + offset, found)));
            }
        }
    }
    Ok(None)
}

/// `ty` with typedefs, `const` and `volatile` peeled off.
fn resolve(btf: &Btf, mut ty: Type) -> anyhow::Result<Type> {
    for _ in 0..16 {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t)?,
            Type::Const(t) => btf.resolve_chained_type(t)?,
            Type::Volatile(t) => btf.resolve_chained_type(t)?,
            _ => return Ok(ty),
        };
    }
    Ok(ty)
}

impl Plan {
    /// The pin names of the rung's links: its programs' names.
    pub fn links(&self) -> Vec<&'static str> {
        self.hooks.iter().map(|h| h.program).collect()
    }

    /// One phrase for the ladder string: the functions hooked, and the
    /// optional ones this kernel lacks.
    pub fn describe(&self) -> String {
        let functions: std::collections::BTreeSet<&str> =
            self.hooks.iter().map(|h| h.function).collect();
        let mut text = format!("fentry/fexit on {} VFS functions", functions.len());
        if !self.absent.is_empty() {
            text += &format!(" (absent here: {})", self.absent.join(", "));
        }
        text
    }
}
