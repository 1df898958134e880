//! Small modules for the unit tests, built with wasm-encoder: the shape
//! rustc's wasm32 output has (one memory, the shadow-stack pointer as
//! global 0, `handle_request`/`handle_response` exports, a `target_features`
//! section), with the parts each test changes as plain fields.

use wasm_encoder::{
    CodeSection, ConstExpr, CustomSection, DataCountSection, DataSection, ElementSection, Elements,
    EntityType, ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType,
    ImportSection, Instruction, MemorySection, MemoryType, Module, RefType, TableSection,
    TableType, TypeSection, ValType,
};

use crate::target_features;

/// The shadow-stack pointer's initial value in `standard()`.
pub const SP_INIT: i32 = 70_000;

pub struct Func {
    pub params: Vec<ValType>,
    pub results: Vec<ValType>,
    pub locals: Vec<(u32, ValType)>,
    /// Without the final `end`.
    pub body: Vec<Instruction<'static>>,
}

impl Func {
    pub fn new(params: &[ValType], results: &[ValType], body: Vec<Instruction<'static>>) -> Self {
        Func {
            params: params.to_vec(),
            results: results.to_vec(),
            locals: Vec::new(),
            body,
        }
    }
}

pub struct Parts {
    pub imported_funcs: u32,
    pub imported_globals: u32,
    pub memories: Vec<MemoryType>,
    pub globals: Vec<(GlobalType, ConstExpr)>,
    pub funcs: Vec<Func>,
    pub exports: Vec<(&'static str, ExportKind, u32)>,
    /// A funcref table and one passive element segment (for table.* ops).
    pub table: bool,
    /// One passive data segment, with a data count section.
    pub passive_data: bool,
    /// A data count section (with `passive_data`, or alone).
    pub data_count: bool,
    pub customs: Vec<(&'static str, Vec<u8>)>,
}

pub fn i32s(n: usize) -> Vec<ValType> {
    vec![ValType::I32; n]
}

pub fn memory(pages: u64) -> MemoryType {
    MemoryType {
        minimum: pages,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    }
}

pub fn global(ty: ValType, mutable: bool) -> GlobalType {
    GlobalType {
        val_type: ty,
        mutable,
        shared: false,
    }
}

/// `(d, s, n) -> ()` doing one instruction on its three parameters.
pub fn on_params(op: Instruction<'static>) -> Func {
    use Instruction::LocalGet;
    Func::new(
        &i32s(3),
        &[],
        vec![LocalGet(0), LocalGet(1), LocalGet(2), op],
    )
}

pub const COPY: Instruction<'static> = Instruction::MemoryCopy {
    src_mem: 0,
    dst_mem: 0,
};
pub const FILL: Instruction<'static> = Instruction::MemoryFill(0);

/// Functions: 0 `copy`, 1 `fill`, 2 `handle_request` () -> i32, 3
/// `handle_response` (i32, i32) -> (), 4 a function calling 0 then doing a
/// second copy and a fill. Global 0: mutable i32 = SP_INIT.
pub fn standard() -> Parts {
    use Instruction::*;
    Parts {
        imported_funcs: 0,
        imported_globals: 0,
        memories: vec![memory(1)],
        globals: vec![
            (global(ValType::I32, true), ConstExpr::i32_const(SP_INIT)),
            (global(ValType::I32, false), ConstExpr::i32_const(1024)),
        ],
        funcs: vec![
            on_params(COPY),
            on_params(FILL),
            Func::new(&[], &[ValType::I32], vec![GlobalGet(0)]),
            Func::new(&i32s(2), &[], vec![]),
            Func::new(
                &i32s(3),
                &[],
                vec![
                    LocalGet(0),
                    LocalGet(1),
                    LocalGet(2),
                    Call(0),
                    LocalGet(0),
                    LocalGet(1),
                    LocalGet(2),
                    COPY,
                    LocalGet(0),
                    I32Const(0),
                    LocalGet(2),
                    FILL,
                ],
            ),
        ],
        exports: vec![
            ("memory", ExportKind::Memory, 0),
            ("copy", ExportKind::Func, 0),
            ("fill", ExportKind::Func, 1),
            ("handle_request", ExportKind::Func, 2),
            ("handle_response", ExportKind::Func, 3),
        ],
        table: false,
        passive_data: false,
        data_count: false,
        customs: vec![
            (
                target_features::NAME,
                target_features::encode(&[
                    (b'+', "bulk-memory"),
                    (b'+', "mutable-globals"),
                    (b'+', "bulk-memory-opt"),
                ]),
            ),
            ("producers", b"\x01\x08language\x01\x04Rust\x00".to_vec()),
        ],
    }
}

impl Parts {
    pub fn build(&self) -> Vec<u8> {
        let mut types = TypeSection::new();
        let mut imports = ImportSection::new();
        let mut functions = FunctionSection::new();
        let mut code = CodeSection::new();
        // Type 0: () -> (), for imported functions.
        types.ty().function([], []);
        for k in 0..self.imported_funcs {
            imports.import("env", &format!("f{k}"), EntityType::Function(0));
        }
        for k in 0..self.imported_globals {
            let ty = global(ValType::I32, true);
            imports.import("env", &format!("g{k}"), EntityType::Global(ty));
        }
        for (k, f) in self.funcs.iter().enumerate() {
            types
                .ty()
                .function(f.params.iter().copied(), f.results.iter().copied());
            functions.function(k as u32 + 1);
            let mut body = Function::new(f.locals.iter().copied());
            for op in &f.body {
                body.instruction(op);
            }
            body.instruction(&Instruction::End);
            code.function(&body);
        }
        let mut module = Module::new();
        module.section(&types);
        if self.imported_funcs + self.imported_globals > 0 {
            module.section(&imports);
        }
        module.section(&functions);
        if self.table {
            let mut tables = TableSection::new();
            tables.table(TableType {
                element_type: RefType::FUNCREF,
                table64: false,
                minimum: 2,
                maximum: None,
                shared: false,
            });
            module.section(&tables);
        }
        let mut memories = MemorySection::new();
        for m in &self.memories {
            memories.memory(*m);
        }
        module.section(&memories);
        let mut globals = GlobalSection::new();
        for (ty, init) in &self.globals {
            globals.global(*ty, init);
        }
        module.section(&globals);
        let mut exports = ExportSection::new();
        for (name, kind, index) in &self.exports {
            exports.export(name, *kind, *index);
        }
        module.section(&exports);
        if self.table {
            let mut elements = ElementSection::new();
            elements.passive(Elements::Functions([0u32].as_slice().into()));
            module.section(&elements);
        }
        if self.data_count || self.passive_data {
            module.section(&DataCountSection {
                count: u32::from(self.passive_data),
            });
        }
        module.section(&code);
        if self.passive_data {
            let mut data = DataSection::new();
            data.passive([1u8, 2, 3]);
            module.section(&data);
        }
        for (name, data) in &self.customs {
            module.section(&CustomSection {
                name: (*name).into(),
                data: data.as_slice().into(),
            });
        }
        module.finish()
    }
}
