//! Entry points that put the shadow stack back before the guest runs.
//!
//! rustc's wasm targets keep the shadow-stack pointer (`__stack_pointer`) in
//! global 0. A trap unwinds no frame, so it leaves that global wherever the
//! trapping call had moved it, and http-wasm-host-go puts the trapped
//! instance back into its pool with its globals as they were: every later
//! request then runs on a stack that starts lower, until a trap at the
//! bottom repeats forever. http-wasm hosts never nest calls into the guest,
//! so when `handle_request` or `handle_response` is entered no guest frame
//! is live and the global's initial value is the only correct one: each
//! wrapper sets it, then calls the original with every parameter and
//! returns its results.

use wasm_encoder::Function;
use wasmparser::{FunctionBody, Operator};

use crate::error::Error;

/// The exports the host calls per request.
pub const ENTRY_POINTS: [&str; 2] = ["handle_request", "handle_response"];

/// `global.set 0 (i32.const sp_init)`, then `call target` with the
/// wrapper's `params` parameters, of the target's own type.
pub fn wrapper(sp_init: i32, params: u32, target: u32) -> Function {
    let mut f = Function::new(std::iter::empty());
    let mut i = f.instructions();
    i.i32_const(sp_init).global_set(0);
    for local in 0..params {
        i.local_get(local);
    }
    i.call(target).end();
    f
}

/// The function `body` calls when it is exactly what [`wrapper`] emits for
/// `sp_init` and `params`; `None` for any other body.
pub fn wrapped_target(
    body: &FunctionBody<'_>,
    sp_init: i32,
    params: u32,
) -> Result<Option<u32>, Error> {
    if body.get_locals_reader()?.get_count() != 0 {
        return Ok(None);
    }
    let mut ops = body.get_operators_reader()?;
    if !matches!(ops.read()?, Operator::I32Const { value } if value == sp_init)
        || !matches!(ops.read()?, Operator::GlobalSet { global_index: 0 })
    {
        return Ok(None);
    }
    for local in 0..params {
        if !matches!(ops.read()?, Operator::LocalGet { local_index } if local_index == local) {
            return Ok(None);
        }
    }
    let Operator::Call { function_index } = ops.read()? else {
        return Ok(None);
    };
    if !matches!(ops.read()?, Operator::End) || !ops.eof() {
        return Ok(None);
    }
    Ok(Some(function_index))
}
