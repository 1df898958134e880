//! The `target_features` custom section: the features the linker built the
//! module with (`+bulk-memory`, `+mutable-globals`, ...). Once lowered, the
//! module uses no bulk-memory operation, so the section must stop saying it
//! may: a tool that reads it (wasm-opt, a relinking wasm-ld) would otherwise
//! take the feature as allowed and could bring the operations back.

use wasm_encoder::Encode;
use wasmparser::BinaryReader;

use crate::error::Error;

pub const NAME: &str = "target_features";

/// The entries dropped, whatever their prefix: `bulk-memory-opt` is LLVM
/// 20's name for the `memory.copy`/`memory.fill` subset.
const DROPPED: [&str; 2] = ["bulk-memory", "bulk-memory-opt"];

/// The section's contents without the bulk-memory entries, every other
/// entry kept in order; `None` when no entry is left (drop the section).
pub fn without_bulk_memory(data: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let malformed = |e: wasmparser::BinaryReaderError| Error::TargetFeatures(e.to_string());
    let mut reader = BinaryReader::new(data, 0);
    let count = reader.read_var_u32().map_err(malformed)?;
    let mut kept = Vec::new();
    for _ in 0..count {
        let prefix = reader.read_u8().map_err(malformed)?;
        let name = reader.read_string().map_err(malformed)?;
        if !DROPPED.contains(&name) {
            kept.push((prefix, name));
        }
    }
    if !reader.eof() {
        return Err(Error::TargetFeatures(format!(
            "{} bytes after the last entry",
            data.len() - reader.current_position()
        )));
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(data.len());
    (kept.len() as u32).encode(&mut out);
    for (prefix, name) in kept {
        out.push(prefix);
        name.encode(&mut out);
    }
    Ok(Some(out))
}

/// Builds a section's contents from `(prefix, name)` entries.
#[cfg(test)]
pub fn encode(entries: &[(u8, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    (entries.len() as u32).encode(&mut out);
    for (prefix, name) in entries {
        out.push(*prefix);
        name.encode(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_only_the_bulk_memory_entries() {
        let data = encode(&[
            (b'+', "bulk-memory"),
            (b'+', "mutable-globals"),
            (b'+', "bulk-memory-opt"),
            (b'+', "sign-ext"),
        ]);
        let kept = without_bulk_memory(&data).expect("well-formed");
        assert_eq!(
            kept,
            Some(encode(&[(b'+', "mutable-globals"), (b'+', "sign-ext")]))
        );
    }

    #[test]
    fn keeps_a_section_without_bulk_memory_byte_for_byte() {
        let data = encode(&[(b'+', "mutable-globals"), (b'-', "atomics")]);
        assert_eq!(without_bulk_memory(&data).expect("well-formed"), Some(data));
    }

    #[test]
    fn nothing_left_means_no_section() {
        let data = encode(&[(b'+', "bulk-memory")]);
        assert_eq!(without_bulk_memory(&data).expect("well-formed"), None);
    }

    #[test]
    fn malformed_sections_are_errors() {
        let mut data = encode(&[(b'+', "sign-ext")]);
        data.push(0);
        assert!(matches!(
            without_bulk_memory(&data),
            Err(Error::TargetFeatures(_))
        ));
        let cut = &encode(&[(b'+', "sign-ext")])[..4];
        assert!(matches!(
            without_bulk_memory(cut),
            Err(Error::TargetFeatures(_))
        ));
    }
}
