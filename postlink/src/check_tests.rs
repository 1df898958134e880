use super::*;
use crate::lower::lower;
use crate::test_modules::{Func, i32s, standard};
use wasm_encoder::{ExportKind, Instruction as I};

fn report(wasm: &[u8]) -> Report {
    check(wasm).expect("the module parses")
}

#[test]
fn counts_the_operations_and_sees_unwrapped_entry_points() {
    let r = report(&standard().build());
    assert_eq!(
        (r.ops.memory_copy, r.ops.memory_fill, r.ops.total()),
        (2, 2, 4)
    );
    assert!(r.has_bulk_ops());
    assert_eq!(
        r.entries,
        [
            ("handle_request", Entry::Unwrapped),
            ("handle_response", Entry::Unwrapped)
        ]
    );
}

#[test]
fn a_lowered_module_is_clean_and_wrapped() {
    let lowered = lower(&standard().build()).expect("lowers");
    let r = report(&lowered.wasm);
    assert!(!r.has_bulk_ops());
    assert_eq!(
        r.to_string(),
        "memory.copy=0 memory.fill=0 memory.init=0 data.drop=0 table.copy=0 table.fill=0 \
         table.init=0 elem.drop=0 handle_request=wrapped handle_response=wrapped"
    );
}

#[test]
fn counts_what_lower_refuses() {
    let mut parts = standard();
    parts.table = true;
    parts.funcs.push(Func::new(
        &i32s(3),
        &[],
        vec![
            I::LocalGet(0),
            I::LocalGet(1),
            I::LocalGet(2),
            I::TableCopy {
                src_table: 0,
                dst_table: 0,
            },
            I::ElemDrop(0),
            I::ElemDrop(0),
        ],
    ));
    let r = report(&parts.build());
    assert_eq!(
        (r.ops.table_copy, r.ops.elem_drop, r.ops.total()),
        (1, 2, 7)
    );
}

#[test]
fn absent_entry_points_are_reported_as_such() {
    let mut parts = standard();
    parts.exports.truncate(3);
    parts.exports.push(("handle_response", ExportKind::Func, 0));
    let r = report(&parts.build());
    assert_eq!(
        r.entries,
        [
            ("handle_request", Entry::Absent),
            ("handle_response", Entry::Unwrapped)
        ]
    );
}
