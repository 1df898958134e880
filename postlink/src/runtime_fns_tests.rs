//! The bodies' shape. Their behaviour against the real instructions, under
//! wasmtime, is integration/guest/test_postlink_semantics.py's.

use super::*;
use wasm_encoder::{CodeSection, FunctionSection, MemorySection, Module, TypeSection};
use wasmparser::{Operator, Parser, Payload, Validator, WasmFeatures};

/// A module of one memory and the two functions, as `lower` appends them.
fn module() -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function(PARAMS, []);
    let mut functions = FunctionSection::new();
    functions.function(0).function(0);
    let mut memories = MemorySection::new();
    memories.memory(crate::test_modules::memory(1));
    let mut code = CodeSection::new();
    code.function(&copy()).function(&fill());
    let mut module = Module::new();
    module
        .section(&types)
        .section(&functions)
        .section(&memories)
        .section(&code);
    module.finish()
}

/// Each function's operators, as their Debug names (without immediates).
fn ops(wasm: &[u8]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::CodeSectionEntry(body) = payload.expect("a payload") {
            let mut reader = body.get_operators_reader().expect("operators");
            let mut names = Vec::new();
            while !reader.eof() {
                let op: Operator<'_> = reader.read().expect("an operator");
                let debug = format!("{op:?}");
                names.push(debug.split([' ', '{']).next().unwrap_or("").to_string());
            }
            out.push(names);
        }
    }
    out
}

#[test]
fn both_validate_without_bulk_memory() {
    let mut features = WasmFeatures::default();
    features.remove(WasmFeatures::BULK_MEMORY);
    let result = Validator::new_with_features(features).validate_all(&module());
    assert!(result.is_ok(), "{:?}", result.err());
}

#[test]
fn bounds_are_checked_in_i64_before_anything_is_stored() {
    for body in ops(&module()) {
        let trap = body
            .iter()
            .position(|op| op == "Unreachable")
            .expect("a trap");
        let first_store = body
            .iter()
            .position(|op| op.contains("Store"))
            .expect("a store");
        assert!(trap < first_store);
        let check = &body[..trap];
        for op in ["MemorySize", "I64ExtendI32U", "I64Add", "I64GtU"] {
            assert!(check.iter().any(|o| o == op), "{op} missing");
        }
        // An i32 sum could wrap and pass the check.
        assert!(!check.iter().any(|o| o == "I32Add"));
        assert_eq!(body.iter().filter(|o| *o == "Unreachable").count(), 1);
    }
}

#[test]
fn blocks_move_eight_bytes_at_a_time_and_no_loop_moves_single_bytes() {
    for body in ops(&module()) {
        // Inside a loop: only 8-byte accesses; the byte, 2- and 4-byte ones
        // are the tail's, each at most once per call.
        let mut stack = Vec::new();
        let mut in_loop_sizes = Vec::new();
        for op in &body {
            match op.as_str() {
                "Block" | "If" => stack.push(false),
                "Loop" => stack.push(true),
                "End" => {
                    stack.pop();
                }
                op if (op.contains("Load") || op.contains("Store")) && stack.contains(&true) => {
                    in_loop_sizes.push(op.to_string());
                }
                _ => {}
            }
        }
        assert!(!in_loop_sizes.is_empty());
        assert!(
            in_loop_sizes
                .iter()
                .all(|o| o == "I64Load" || o == "I64Store"),
            "{in_loop_sizes:?}"
        );
    }
}

#[test]
fn copy_has_both_directions_and_fill_uses_the_low_byte() {
    let bodies = ops(&module());
    let copy = &bodies[0];
    // One loop upwards, one downwards; the bounds take max(dst, src).
    assert_eq!(copy.iter().filter(|o| *o == "Loop").count(), 2);
    assert_eq!(copy.iter().filter(|o| *o == "Select").count(), 1);
    assert_eq!(bodies[1].iter().filter(|o| *o == "Loop").count(), 1);
    let mut bytes = Vec::new();
    wasm_encoder::Encode::encode(&fill(), &mut bytes);
    // i32.const 255 (0x41 0xff 0x01), i32.and (0x71), i64.extend_i32_u (0xad),
    // i64.const 0x0101010101010101 (0x42 + its LEB).
    let mask = [0x41, 0xff, 0x01, 0x71, 0xad, 0x42];
    assert!(bytes.windows(mask.len()).any(|w| w == mask));
}
