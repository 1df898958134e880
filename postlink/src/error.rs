//! Everything that makes `lower` or `check` give up, as values: the command
//! prints one line and exits non-zero. A module we cannot lower exactly is
//! refused rather than shipped half-lowered.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// Reading the input or writing the output failed.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The input is not a well-formed core wasm module.
    Parse(wasmparser::BinaryReaderError),
    /// The input is a component, not a core module.
    NotCoreModule,
    /// An instruction we do not lower (`memory.init`, `data.drop`,
    /// `table.copy`/`fill`/`init`, `elem.drop`, or `memory.copy`/`fill` on a
    /// memory other than 0) in function `func`.
    Unsupported { op: &'static str, func: u32 },
    /// More than one memory (imported or defined).
    MultiMemory { count: usize },
    /// A 64-bit memory: the replacement functions take i32 addresses.
    Memory64,
    /// An entry point is to be wrapped but global 0 is not what the wrapper
    /// resets: a defined, mutable i32 initialised by one `i32.const`.
    StackPointer(&'static str),
    /// `handle_request` or `handle_response` is exported as something other
    /// than a function.
    EntryNotFunction(String),
    /// The module has a memory, exports or functions but lacks a section we
    /// must append to (type, function or code section): not a linker's output.
    MissingSection(&'static str),
    /// The `target_features` custom section is malformed.
    TargetFeatures(String),
    /// wasm-encoder could not re-encode a construct of the input.
    Reencode(String),
    /// The output does not validate with bulk memory disabled.
    Invalid(wasmparser::BinaryReaderError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::Parse(e) => write!(f, "not a valid wasm module: {e}"),
            Error::NotCoreModule => write!(f, "a component, not a core wasm module"),
            Error::Unsupported { op, func } => write!(
                f,
                "function {func} uses {op}, which this tool does not lower; \
                 shipping it would keep a host memmove call (see postlink/src/main.rs)"
            ),
            Error::MultiMemory { count } => {
                write!(f, "the module has {count} memories; only one is supported")
            }
            Error::Memory64 => write!(
                f,
                "the module's memory is 64-bit; only memory32 is supported"
            ),
            Error::StackPointer(why) => {
                write!(f, "cannot wrap the entry points: global 0 {why}")
            }
            Error::EntryNotFunction(name) => write!(f, "export {name:?} is not a function"),
            Error::MissingSection(name) => write!(f, "the module has no {name} section"),
            Error::TargetFeatures(e) => write!(f, "malformed target_features section: {e}"),
            Error::Reencode(e) => write!(f, "cannot re-encode the module: {e}"),
            Error::Invalid(e) => write!(
                f,
                "the lowered module does not validate without bulk memory: {e}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Parse(e) | Error::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl From<wasmparser::BinaryReaderError> for Error {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        Error::Parse(e)
    }
}
