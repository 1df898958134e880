//! `check`: what a shipped module still holds that Traefik's wazero v1.8.0
//! would hand to Go's runtime.memmove (bulk-memory and table operators, by
//! kind), and whether its entry points reset the shadow stack. The guard
//! reads the module itself, so it holds on every CPU, including those where
//! the crash never shows.

use std::fmt;

use crate::entry;
use crate::error::Error;
use crate::survey::{OpCounts, Survey};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    Absent,
    Wrapped,
    Unwrapped,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub ops: OpCounts,
    pub entries: Vec<(&'static str, Entry)>,
}

impl Report {
    /// Any operator that `lower` removes or refuses is still there.
    pub fn has_bulk_ops(&self) -> bool {
        self.ops.total() > 0
    }
}

pub fn check(wasm: &[u8]) -> Result<Report, Error> {
    let survey = Survey::of(wasm)?;
    let mut entries = Vec::new();
    for name in entry::ENTRY_POINTS {
        let state = match survey.exported_func(name)? {
            None => Entry::Absent,
            Some(func) => match (
                survey.stack_pointer_init(),
                survey.func_type(func),
                survey.body(func),
            ) {
                (Ok(sp_init), Some(ty), Some(body)) => {
                    let params = ty.params().len() as u32;
                    match entry::wrapped_target(body, sp_init, params)? {
                        Some(_) => Entry::Wrapped,
                        None => Entry::Unwrapped,
                    }
                }
                _ => Entry::Unwrapped,
            },
        };
        entries.push((name, state));
    }
    Ok(Report {
        ops: survey.ops,
        entries,
    })
}

/// `memory.copy=0 memory.fill=0 ... handle_request=wrapped ...`: one line,
/// `key=value` words, for people and for integration/guest/test_no_bulk_memory.py.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut words = Vec::new();
        for (name, n) in self.ops.named() {
            words.push(format!("{name}={n}"));
        }
        for (name, state) in &self.entries {
            let state = match state {
                Entry::Absent => "absent",
                Entry::Wrapped => "wrapped",
                Entry::Unwrapped => "unwrapped",
            };
            words.push(format!("{name}={state}"));
        }
        f.write_str(&words.join(" "))
    }
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
