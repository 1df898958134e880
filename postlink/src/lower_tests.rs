use super::*;
use crate::survey::OpCounts;
use crate::test_modules::{
    COPY, FILL, Func, Parts, SP_INIT, global, i32s, memory, on_params, standard,
};
use wasm_encoder::{ConstExpr, ExportKind as Kind, HeapType, Instruction as I, ValType};
use wasmparser::Payload;

fn lowered(parts: &Parts) -> Lowered {
    match lower(&parts.build()) {
        Ok(l) => l,
        Err(e) => unreachable!("lowering failed: {e}"),
    }
}

fn survey(wasm: &[u8]) -> Survey<'_> {
    Survey::of(wasm).expect("the output parses")
}

/// The functions `func` calls, in order.
fn calls(s: &Survey<'_>, func: u32) -> Vec<u32> {
    let body = s.body(func).expect("a defined function");
    let mut ops = body.get_operators_reader().expect("operators");
    let mut called = Vec::new();
    while !ops.eof() {
        if let Operator::Call { function_index } = ops.read().expect("an operator") {
            called.push(function_index);
        }
    }
    called
}

fn customs(wasm: &[u8]) -> Vec<(String, Vec<u8>)> {
    Parser::new(0)
        .parse_all(wasm)
        .filter_map(|p| match p.expect("a payload") {
            Payload::CustomSection(c) => Some((c.name().to_string(), c.data().to_vec())),
            _ => None,
        })
        .collect()
}

fn without_bulk_memory() -> Validator {
    let mut features = WasmFeatures::default();
    features.remove(WasmFeatures::BULK_MEMORY);
    Validator::new_with_features(features)
}

#[test]
fn every_copy_and_fill_becomes_a_call_of_an_appended_function() {
    let out = lowered(&standard());
    assert_eq!((out.copies, out.fills), (2, 2));
    let s = survey(&out.wasm);
    assert_eq!(s.ops, OpCounts::default());
    // Five functions before: $copy = 5, $fill = 6, then the two wrappers.
    assert_eq!(s.func_types.len(), 9);
    assert_eq!(calls(&s, 0), [5]);
    assert_eq!(calls(&s, 1), [6]);
    assert_eq!(calls(&s, 4), [0, 5, 6]);
}

#[test]
fn the_output_validates_without_bulk_memory_and_the_input_does_not() {
    let input = standard().build();
    assert!(without_bulk_memory().validate_all(&input).is_err());
    let out = lowered(&standard());
    assert!(without_bulk_memory().validate_all(&out.wasm).is_ok());
}

#[test]
fn one_type_and_the_functions_are_appended_and_no_index_moves() {
    let input = standard().build();
    let before = survey(&input);
    let out = lowered(&standard());
    let after = survey(&out.wasm);
    assert_eq!(after.types.len(), before.types.len() + 1);
    assert_eq!(after.types[..before.types.len()], before.types[..]);
    let new_type = after
        .types
        .last()
        .cloned()
        .flatten()
        .expect("a function type");
    let i32 = wasmparser::ValType::I32;
    assert_eq!(
        (new_type.params(), new_type.results()),
        (&[i32, i32, i32][..], &[][..])
    );
    assert_eq!(after.func_types[..5], before.func_types[..]);
    let new_type = before.types.len() as u32;
    // $copy, $fill, then each wrapper of its target's own type.
    assert_eq!(
        after.func_types[5..],
        [
            new_type,
            new_type,
            before.func_types[2],
            before.func_types[3]
        ]
    );
    let export = |s: &Survey<'_>, name: &str| s.exported_func(name).expect("a function export");
    assert_eq!(export(&after, "copy"), Some(0));
    assert_eq!(export(&after, "fill"), Some(1));
    assert_eq!(after.memories, before.memories);
}

#[test]
fn the_entry_points_call_the_originals_through_a_stack_pointer_reset() {
    let out = lowered(&standard());
    assert_eq!(out.wrapped, ["handle_request", "handle_response"]);
    let s = survey(&out.wasm);
    assert_eq!(s.exported_func("handle_request").expect("func"), Some(7));
    assert_eq!(s.exported_func("handle_response").expect("func"), Some(8));
    let body = s.body(8).expect("defined");
    let mut ops = body.get_operators_reader().expect("operators");
    let mut seen = Vec::new();
    while !ops.eof() {
        seen.push(format!("{:?}", ops.read().expect("an operator")));
    }
    assert_eq!(
        seen,
        [
            format!("I32Const {{ value: {SP_INIT} }}"),
            "GlobalSet { global_index: 0 }".to_string(),
            "LocalGet { local_index: 0 }".to_string(),
            "LocalGet { local_index: 1 }".to_string(),
            "Call { function_index: 3 }".to_string(),
            "End".to_string(),
        ]
    );
    let request = s.body(7).expect("defined");
    assert_eq!(
        entry::wrapped_target(request, SP_INIT, 0).expect("reads"),
        Some(2)
    );
}

#[test]
fn target_features_no_longer_lists_bulk_memory_and_other_sections_stay() {
    let out = lowered(&standard());
    assert_eq!(
        customs(&out.wasm),
        [
            (
                target_features::NAME.to_string(),
                target_features::encode(&[(b'+', "mutable-globals")])
            ),
            (
                "producers".to_string(),
                b"\x01\x08language\x01\x04Rust\x00".to_vec()
            ),
        ]
    );
}

#[test]
fn a_target_features_section_left_empty_is_dropped() {
    let mut parts = standard();
    parts.customs = vec![(
        target_features::NAME,
        target_features::encode(&[(b'+', "bulk-memory")]),
    )];
    assert_eq!(customs(&lowered(&parts).wasm), []);
}

#[test]
fn the_data_count_section_is_dropped() {
    let mut parts = standard();
    parts.data_count = true;
    let input = parts.build();
    let has_data_count = |wasm: &[u8]| {
        Parser::new(0)
            .parse_all(wasm)
            .any(|p| matches!(p, Ok(Payload::DataCountSection { .. })))
    };
    assert!(has_data_count(&input));
    assert!(!has_data_count(&lowered(&parts).wasm));
}

#[test]
fn lowering_twice_changes_nothing() {
    let once = lowered(&standard());
    let twice = lower(&once.wasm).expect("lowers");
    assert_eq!(twice.wasm, once.wasm);
    assert_eq!((twice.copies, twice.fills), (0, 0));
    assert!(twice.wrapped.is_empty());
    assert_eq!(twice.already_wrapped, ["handle_request", "handle_response"]);
}

#[test]
fn a_module_without_copies_or_fills_gets_only_the_wrappers() {
    let mut parts = standard();
    parts.funcs.drain(..2);
    parts.funcs.truncate(2);
    parts.exports = vec![
        ("handle_request", Kind::Func, 0),
        ("handle_response", Kind::Func, 1),
    ];
    let input = parts.build();
    let out = lowered(&parts);
    let (before, after) = (survey(&input), survey(&out.wasm));
    assert_eq!(after.types.len(), before.types.len());
    assert_eq!(after.func_types.len(), 4);
    assert_eq!(
        after.exported_func("handle_request").expect("func"),
        Some(2)
    );
    assert_eq!(out.wrapped.len(), 2);
}

#[test]
fn without_entry_points_no_stack_pointer_is_needed() {
    let mut parts = standard();
    parts.funcs.truncate(2);
    parts.exports.truncate(3);
    parts.globals.clear();
    let out = lowered(&parts);
    assert_eq!((out.copies, out.fills), (1, 1));
    assert!(out.wrapped.is_empty());
    assert_eq!(survey(&out.wasm).func_types.len(), 4);
}

#[test]
fn imported_functions_count_in_the_new_indices() {
    let mut parts = standard();
    parts.imported_funcs = 2;
    for export in &mut parts.exports[1..] {
        export.2 += 2;
    }
    parts.funcs[4].body[3] = I::Call(2);
    let out = lowered(&parts);
    let s = survey(&out.wasm);
    assert_eq!(calls(&s, 6), [2, 7, 8]);
    assert_eq!(s.exported_func("handle_request").expect("func"), Some(9));
    assert_eq!(
        entry::wrapped_target(s.body(9).expect("defined"), SP_INIT, 0).expect("reads"),
        Some(4)
    );
}

#[test]
fn other_bulk_and_table_operations_are_refused() {
    let no_params = |op| Func::new(&[], &[], vec![op]);
    let cases: [(&str, Func, bool); 6] = [
        (
            "memory.init",
            on_params(I::MemoryInit {
                mem: 0,
                data_index: 0,
            }),
            false,
        ),
        ("data.drop", no_params(I::DataDrop(0)), false),
        (
            "table.copy",
            on_params(I::TableCopy {
                src_table: 0,
                dst_table: 0,
            }),
            true,
        ),
        (
            "table.fill",
            Func::new(
                &i32s(3),
                &[],
                vec![
                    I::LocalGet(0),
                    I::RefNull(HeapType::FUNC),
                    I::LocalGet(2),
                    I::TableFill(0),
                ],
            ),
            true,
        ),
        (
            "table.init",
            on_params(I::TableInit {
                elem_index: 0,
                table: 0,
            }),
            true,
        ),
        ("elem.drop", no_params(I::ElemDrop(0)), true),
    ];
    for (name, func, table) in cases {
        let mut parts = standard();
        parts.funcs.push(func);
        parts.table = table;
        parts.passive_data = !table;
        match lower(&parts.build()) {
            Err(Error::Unsupported { op, func: 5 }) if op == name => {}
            other => unreachable!("{name}: {other:?}"),
        }
    }
}

#[test]
fn several_memories_and_memory64_are_refused() {
    let mut parts = standard();
    parts.memories.push(memory(1));
    assert!(matches!(
        lower(&parts.build()),
        Err(Error::MultiMemory { count: 2 })
    ));

    parts.funcs.push(on_params(I::MemoryCopy {
        src_mem: 1,
        dst_mem: 0,
    }));
    match lower(&parts.build()) {
        Err(Error::Unsupported { op, func: 5 }) => {
            assert_eq!(op, "memory.copy on a memory other than 0");
        }
        other => unreachable!("{other:?}"),
    }

    // No copy or fill: memory64 would not even validate with them.
    let mut parts = standard();
    parts.funcs.drain(..2);
    parts.funcs.truncate(2);
    parts.exports = vec![("handle_request", Kind::Func, 0)];
    parts.memories[0].memory64 = true;
    assert!(matches!(lower(&parts.build()), Err(Error::Memory64)));
}

#[test]
fn the_stack_pointer_must_be_a_defined_mutable_i32_set_by_one_const() {
    let with_global0 = |ty, init: ConstExpr| {
        let mut parts = standard();
        parts.globals[0] = (ty, init);
        parts.funcs[2].body = vec![I::I32Const(7)];
        parts
    };
    let cases = [
        (
            with_global0(global(ValType::I32, false), ConstExpr::i32_const(1)),
            "is immutable",
        ),
        (
            with_global0(global(ValType::I64, true), ConstExpr::i64_const(1)),
            "is not an i32",
        ),
        (
            with_global0(
                global(ValType::I32, true),
                ConstExpr::extended([I::I32Const(1), I::I32Const(2), I::I32Add]),
            ),
            "is not initialised by one i32.const",
        ),
        (
            {
                let mut parts = standard();
                parts.imported_globals = 1;
                parts
            },
            "is imported, not defined",
        ),
        (
            {
                let mut parts = with_global0(global(ValType::I32, true), ConstExpr::i32_const(1));
                parts.globals.clear();
                parts
            },
            "does not exist",
        ),
    ];
    for (parts, why) in cases {
        match lower(&parts.build()) {
            Err(Error::StackPointer(w)) if w == why => {}
            other => unreachable!("{why}: {other:?}"),
        }
    }
}

#[test]
fn an_entry_point_that_is_not_a_function_is_refused() {
    let mut parts = standard();
    parts.exports[3] = ("handle_request", Kind::Global, 1);
    match lower(&parts.build()) {
        Err(Error::EntryNotFunction(name)) => assert_eq!(name, "handle_request"),
        other => unreachable!("{other:?}"),
    }
}

#[test]
fn an_invalid_input_is_a_parse_error() {
    assert!(matches!(
        lower(b"\0asm\x01\0\0\0\x01\xff"),
        Err(Error::Parse(_))
    ));
    // Well-formed but invalid (copy on a missing memory): refused as input.
    let mut parts = standard();
    parts.memories.clear();
    parts.exports.remove(0);
    assert!(matches!(lower(&parts.build()), Err(Error::Parse(_))));
}

#[test]
fn fills_and_copies_only_where_used() {
    let mut parts = standard();
    parts.funcs = vec![on_params(FILL)];
    parts.exports = vec![("fill", Kind::Func, 0)];
    let out = lowered(&parts);
    let s = survey(&out.wasm);
    assert_eq!((out.copies, out.fills), (0, 1));
    // Only $fill appended, at index 1.
    assert_eq!(s.func_types.len(), 2);
    assert_eq!(calls(&s, 0), [1]);

    parts.funcs = vec![on_params(COPY)];
    let out = lowered(&parts);
    assert_eq!((out.copies, out.fills), (1, 0));
    assert_eq!(calls(&survey(&out.wasm), 0), [1]);
}
