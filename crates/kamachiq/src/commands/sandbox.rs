//! `kamachiq sandbox --write DIR ... -- PROGRAM ARGS`: confines this process with Linux Landlock
//! (it may read everywhere but write only beneath the given directories, and so may every
//! process it starts), then becomes the program. Agents run this way with
//! `agents.sandbox = true`. The sandbox is required, not hoped for: on a kernel that cannot
//! enforce it, nothing runs.

use std::os::unix::process::CommandExt;

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};

use crate::cli::SandboxArgs;
use crate::{exit, output};

/// The Landlock ABI kamachiq asks for; older kernels get what they support, and a kernel
/// without Landlock gets nothing run.
const ABI_WANTED: ABI = ABI::V5;

/// Places every process may write to, whatever the sandbox: the null device and terminals.
const ALWAYS_WRITABLE: [&str; 2] = ["/dev/null", "/dev/tty"];

/// Confines this process and becomes the program; returns only on failure, with the exit code.
pub fn sandbox(args: &SandboxArgs) -> u8 {
    match confine(args) {
        Ok(()) => {}
        Err(message) => {
            output::note(format!("kamachiq sandbox: {message}"));
            return exit::ERROR;
        }
    }
    let Some((program, rest)) = args.command.split_first() else {
        output::note("kamachiq sandbox: no program to run");
        return exit::INVALID;
    };
    // `exec` only returns when it failed.
    let error = std::process::Command::new(program).args(rest).exec();
    output::note(format!(
        "kamachiq sandbox: cannot run {}: {error}",
        program.to_string_lossy()
    ));
    127
}

fn confine(args: &SandboxArgs) -> Result<(), String> {
    for dir in &args.write {
        if !dir.exists() {
            return Err(format!("{} does not exist", dir.display()));
        }
    }
    let writable: Vec<&std::path::Path> = args
        .write
        .iter()
        .map(std::path::PathBuf::as_path)
        .chain(
            ALWAYS_WRITABLE
                .iter()
                .map(std::path::Path::new)
                .filter(|p| p.exists()),
        )
        .collect();
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_WANTED))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(ABI_WANTED))))
        .and_then(|r| r.add_rules(path_beneath_rules(writable, AccessFs::from_all(ABI_WANTED))))
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("cannot set up the Landlock sandbox: {e}"))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(()),
        _ => Err(
            "this kernel does not enforce Landlock, so the sandbox cannot be applied; \
             turn `agents.sandbox` off or run on Linux 5.13 or newer with Landlock enabled"
                .to_owned(),
        ),
    }
}
