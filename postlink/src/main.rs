//! tdp-postlink: the post-link step `make build` runs on the linked guest
//! before it ships as plugin.wasm.
//!
//! Why: Traefik 3.3.4 to 3.7.x embed wazero v1.8.0, whose amd64 compiler
//! turns `memory.copy`/`memory.fill` (and `memory.init`, table copy/fill/
//! init) into calls of Go's runtime.memmove while assuming a register
//! survives; Go ≥ 1.24 clobbers it for copies of 2 KiB or more on Intel
//! CPUs with ERMS+FSRM (Ice Lake on) and CPUs without AVX, so one request
//! with a 2 KiB header kills Traefik (SIGSEGV) or traps the guest. Rust ≥
//! 1.87 emits these operations everywhere, the prebuilt std and wasi-libc
//! included, so only a rewrite of the final module removes them. After a trap the host also reuses the
//! instance with its globals as the trap left them, so the entry points are
//! made to reset the shadow-stack pointer. See docs/robustness.md.
//!
//! - `tdp-postlink lower IN.wasm OUT.wasm`: writes the lowered module
//!   (lower.rs), validated without bulk memory, and prints one line.
//! - `tdp-postlink check FILE.wasm...`: prints each file's bulk-memory and
//!   table operator counts and entry-point state (check.rs); exits 1 when
//!   any such operator is present.

mod check;
mod entry;
mod error;
mod lower;
mod runtime_fns;
mod survey;
mod target_features;
#[cfg(test)]
mod test_modules;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use error::Error;

const USAGE: &str = "usage: tdp-postlink lower IN.wasm OUT.wasm
       tdp-postlink check FILE.wasm...

lower  rewrites memory.copy/memory.fill as calls of plain wasm functions and
       makes handle_request/handle_response reset the shadow-stack pointer;
       refuses modules with other bulk-memory or table operations
check  counts the operations Traefik's wazero v1.8.0 hands to Go's memmove;
       exit status 1 when there is any";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let command = args.first().and_then(|a| a.to_str());
    match (command, args.get(1..).unwrap_or(&[])) {
        (Some("lower"), [input, output]) => lower(Path::new(input), Path::new(output)),
        (Some("check"), files) if !files.is_empty() => check(files),
        (Some("-h" | "--help" | "help"), _) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn lower(input: &Path, output: &Path) -> ExitCode {
    let result = read(input).and_then(|wasm| {
        let lowered = lower::lower(&wasm)?;
        std::fs::write(output, &lowered.wasm).map_err(|source| Error::Io {
            path: output.to_path_buf(),
            source,
        })?;
        Ok((wasm.len(), lowered))
    });
    match result {
        Ok((input_len, l)) => {
            let mut wrapped = if l.wrapped.is_empty() {
                "none".to_string()
            } else {
                l.wrapped.join(", ")
            };
            if !l.already_wrapped.is_empty() {
                wrapped.push_str(&format!(" (already: {})", l.already_wrapped.join(", ")));
            }
            println!(
                "tdp-postlink: {} ({input_len} bytes) -> {} ({} bytes): {} memory.copy, {} memory.fill rewritten; wrapped: {wrapped}",
                input.display(),
                output.display(),
                l.wasm.len(),
                l.copies,
                l.fills,
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tdp-postlink: {}: {e}", input.display());
            ExitCode::FAILURE
        }
    }
}

fn check(files: &[OsString]) -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for file in files {
        let path = PathBuf::from(file);
        match read(&path).and_then(|wasm| check::check(&wasm)) {
            Ok(report) => {
                println!("{}: {report}", path.display());
                if report.has_bulk_ops() && status == ExitCode::SUCCESS {
                    status = ExitCode::FAILURE;
                }
            }
            Err(e) => {
                eprintln!("tdp-postlink: {}: {e}", path.display());
                status = ExitCode::from(2);
            }
        }
    }
    status
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}
