//! `lower`: the module rewritten so that Traefik's wazero v1.8.0 never calls
//! Go's runtime.memmove on the guest's behalf (see runtime_fns.rs), with
//! entry points that restore the shadow stack (see entry.rs).
//!
//! Every section is copied through wasm-encoder's `reencode`, which calls
//! back for each section and instruction; four hooks change something:
//! - instructions: `memory.copy 0 0` becomes `call $copy`, `memory.fill 0`
//!   `call $fill` (same operands, same stack effect, so nothing around them
//!   changes);
//! - type, function and code sections: one type `(i32 i32 i32) -> ()` and
//!   the new functions appended after the last ones: `$copy`, `$fill` (each
//!   only when used), then one wrapper per entry point. No existing type or
//!   function index moves, so calls, tables and names stay valid untouched;
//! - exports: `handle_request`/`handle_response` point to their wrappers;
//! - custom sections: `target_features` loses its bulk-memory entries.
//!
//! Anything we do not lower (memory.init, data.drop, table.copy/fill/init,
//! elem.drop, several memories, memory64) is refused before writing. The
//! output is validated with bulk memory disabled before it is returned.

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{CodeSection, ExportKind, ExportSection, FunctionSection, Instruction, Module};
use wasmparser::{ExternalKind, Operator, Parser, Validator, WasmFeatures};

use crate::entry;
use crate::error::Error;
use crate::runtime_fns;
use crate::survey::Survey;
use crate::target_features;

/// The lowered module and what was changed.
#[derive(Debug)]
pub struct Lowered {
    pub wasm: Vec<u8>,
    /// `memory.copy` instructions rewritten to `call $copy`.
    pub copies: u32,
    /// `memory.fill` instructions rewritten to `call $fill`.
    pub fills: u32,
    /// Entry points now exported through a stack-resetting wrapper.
    pub wrapped: Vec<&'static str>,
    /// Entry points that already were (a module lowered twice).
    pub already_wrapped: Vec<&'static str>,
}

/// Where the new functions go: after the module's last function, in this
/// order.
#[derive(Debug, Default)]
struct Plan {
    /// The index of the appended `(i32 i32 i32) -> ()` type.
    new_type: u32,
    copy: Option<u32>,
    fill: Option<u32>,
    wrappers: Vec<Wrapper>,
    sp_init: i32,
}

#[derive(Debug)]
struct Wrapper {
    name: &'static str,
    index: u32,
    target: u32,
    type_index: u32,
    params: u32,
}

impl Plan {
    fn appends_functions(&self) -> bool {
        self.copy.is_some() || self.fill.is_some() || !self.wrappers.is_empty()
    }
}

pub fn lower(input: &[u8]) -> Result<Lowered, Error> {
    // The input must be valid as it is: a later validation error is then
    // ours, not the input's.
    Validator::new().validate_all(input)?;
    let survey = Survey::of(input)?;
    if let Some((op, func)) = survey.first_unsupported {
        return Err(Error::Unsupported { op, func });
    }
    survey.check_memories()?;
    let (plan, already_wrapped) = plan(&survey)?;

    let mut rewriter = Rewriter {
        plan,
        copies: 0,
        fills: 0,
        appended: Appended::default(),
    };
    let mut module = Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), input)
        .map_err(from_reencode)?;
    rewriter.appended.check(&rewriter.plan)?;
    let wasm = without_data_count(module.finish())?;

    // The proof: no bulk-memory instruction (nor a data count section, nor
    // a passive segment) is left, or this fails.
    let mut features = WasmFeatures::default();
    features.remove(WasmFeatures::BULK_MEMORY | WasmFeatures::BULK_MEMORY_OPT);
    Validator::new_with_features(features)
        .validate_all(&wasm)
        .map_err(Error::Invalid)?;

    Ok(Lowered {
        wasm,
        copies: rewriter.copies,
        fills: rewriter.fills,
        wrapped: rewriter.plan.wrappers.iter().map(|w| w.name).collect(),
        already_wrapped,
    })
}

fn plan(survey: &Survey<'_>) -> Result<(Plan, Vec<&'static str>), Error> {
    let mut next = survey.func_types.len() as u32;
    let mut take = || {
        next += 1;
        next - 1
    };
    let mut plan = Plan {
        new_type: survey.types.len() as u32,
        copy: (survey.ops.memory_copy > 0).then(&mut take),
        fill: (survey.ops.memory_fill > 0).then(&mut take),
        ..Plan::default()
    };
    let mut already = Vec::new();
    for name in entry::ENTRY_POINTS {
        let Some(target) = survey.exported_func(name)? else {
            continue;
        };
        plan.sp_init = survey.stack_pointer_init()?;
        let type_index = survey.func_types.get(target as usize).copied();
        let ty = survey.func_type(target);
        let (Some(type_index), Some(ty)) = (type_index, ty) else {
            return Err(Error::EntryNotFunction(name.to_string()));
        };
        let params = ty.params().len() as u32;
        if let Some(body) = survey.body(target)
            && entry::wrapped_target(body, plan.sp_init, params)?.is_some()
        {
            already.push(name);
            continue;
        }
        plan.wrappers.push(Wrapper {
            name,
            index: take(),
            target,
            type_index,
            params,
        });
    }
    Ok((plan, already))
}

/// Which additions were made, to catch a module lacking a section we append
/// to (then nothing was appended and every index would be wrong).
#[derive(Debug, Default)]
struct Appended {
    types: bool,
    functions: bool,
    code: bool,
}

impl Appended {
    fn check(&self, plan: &Plan) -> Result<(), Error> {
        if (plan.copy.is_some() || plan.fill.is_some()) && !self.types {
            return Err(Error::MissingSection("type"));
        }
        if plan.appends_functions() {
            if !self.functions {
                return Err(Error::MissingSection("function"));
            }
            if !self.code {
                return Err(Error::MissingSection("code"));
            }
        }
        Ok(())
    }
}

struct Rewriter {
    plan: Plan,
    copies: u32,
    fills: u32,
    appended: Appended,
}

type ReResult<T> = Result<T, reencode::Error<Error>>;

impl Reencode for Rewriter {
    type Error = Error;

    fn instruction<'a>(&mut self, op: Operator<'a>) -> ReResult<Instruction<'a>> {
        match op {
            Operator::MemoryCopy {
                dst_mem: 0,
                src_mem: 0,
            } => {
                self.copies += 1;
                Ok(Instruction::Call(planned(self.plan.copy)?))
            }
            Operator::MemoryFill { mem: 0 } => {
                self.fills += 1;
                Ok(Instruction::Call(planned(self.plan.fill)?))
            }
            op => reencode::utils::instruction(self, op),
        }
    }

    fn parse_type_section(
        &mut self,
        types: &mut wasm_encoder::TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> ReResult<()> {
        reencode::utils::parse_type_section(self, types, section)?;
        if self.plan.copy.is_some() || self.plan.fill.is_some() {
            types.ty().function(runtime_fns::PARAMS, []);
            self.appended.types = true;
        }
        Ok(())
    }

    fn parse_function_section(
        &mut self,
        functions: &mut FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> ReResult<()> {
        reencode::utils::parse_function_section(self, functions, section)?;
        for _ in self.plan.copy.iter().chain(&self.plan.fill) {
            functions.function(self.plan.new_type);
        }
        for w in &self.plan.wrappers {
            functions.function(w.type_index);
        }
        self.appended.functions = true;
        Ok(())
    }

    fn parse_code_section(
        &mut self,
        code: &mut CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> ReResult<()> {
        reencode::utils::parse_code_section(self, code, section)?;
        if self.plan.copy.is_some() {
            code.function(&runtime_fns::copy());
        }
        if self.plan.fill.is_some() {
            code.function(&runtime_fns::fill());
        }
        for w in &self.plan.wrappers {
            code.function(&entry::wrapper(self.plan.sp_init, w.params, w.target));
        }
        self.appended.code = true;
        Ok(())
    }

    fn parse_export(
        &mut self,
        exports: &mut ExportSection,
        export: wasmparser::Export<'_>,
    ) -> ReResult<()> {
        let wrapper = self.plan.wrappers.iter().find(|w| w.name == export.name);
        match (wrapper, export.kind) {
            (Some(w), ExternalKind::Func | ExternalKind::FuncExact) => {
                exports.export(export.name, ExportKind::Func, w.index);
                Ok(())
            }
            _ => reencode::utils::parse_export(self, exports, export),
        }
    }

    fn parse_custom_section(
        &mut self,
        module: &mut Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> ReResult<()> {
        if section.name() != target_features::NAME {
            return reencode::utils::parse_custom_section(self, module, section);
        }
        let data = target_features::without_bulk_memory(section.data())
            .map_err(reencode::Error::UserError)?;
        if let Some(data) = data {
            module.section(&wasm_encoder::CustomSection {
                name: target_features::NAME.into(),
                data: data.into(),
            });
        }
        Ok(())
    }
}

/// The planned index of a replacement function; the survey saw every
/// instruction the rewrite sees, so a missing one is an inconsistency.
fn planned(index: Option<u32>) -> ReResult<u32> {
    index.ok_or_else(|| {
        reencode::Error::UserError(Error::Reencode(
            "an instruction the survey did not count".to_string(),
        ))
    })
}

fn from_reencode(e: reencode::Error<Error>) -> Error {
    match e {
        reencode::Error::UserError(e) => e,
        reencode::Error::ParseError(e) => Error::Parse(e),
        other => Error::Reencode(other.to_string()),
    }
}

/// The module without its data count section (id 12). That section exists
/// only for `memory.init` and `data.drop`, which are refused, and a module
/// without bulk memory may not have it.
fn without_data_count(wasm: Vec<u8>) -> Result<Vec<u8>, Error> {
    const DATA_COUNT: u8 = 12;
    const HEADER: usize = 8;
    let mut sections = Vec::new();
    let mut reader = wasmparser::BinaryReader::new(&wasm, 0);
    reader.read_bytes(HEADER)?;
    while !reader.eof() {
        let start = reader.current_position();
        let id = reader.read_u8()?;
        let size = reader.read_var_u32()? as usize;
        reader.read_bytes(size)?;
        sections.push((id, start..reader.current_position()));
    }
    if sections.iter().all(|(id, _)| *id != DATA_COUNT) {
        return Ok(wasm);
    }
    let mut out = wasm[..HEADER].to_vec();
    for (id, range) in sections {
        if id != DATA_COUNT {
            out.extend_from_slice(&wasm[range]);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "lower_tests.rs"]
mod tests;
