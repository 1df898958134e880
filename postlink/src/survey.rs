//! One read of a module, before anything is written: what `lower` must know
//! to place its new functions and wrappers (type and function counts, each
//! function's type, global 0, the exports, the memories) and what `check`
//! reports (the bulk-memory and table operators, by kind).

use wasmparser::{
    Encoding, Export, ExternalKind, FuncType, FunctionBody, GlobalType, MemoryType, Operator,
    Parser, Payload, TypeRef, ValType,
};

use crate::error::Error;

/// How often each operator that Traefik's wazero turns into a host memmove
/// call appears in the module's code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub memory_copy: u32,
    pub memory_fill: u32,
    pub memory_init: u32,
    pub data_drop: u32,
    pub table_copy: u32,
    pub table_fill: u32,
    pub table_init: u32,
    pub elem_drop: u32,
}

impl OpCounts {
    /// Every count with the operator's wasm text name, in a fixed order.
    pub fn named(&self) -> [(&'static str, u32); 8] {
        [
            ("memory.copy", self.memory_copy),
            ("memory.fill", self.memory_fill),
            ("memory.init", self.memory_init),
            ("data.drop", self.data_drop),
            ("table.copy", self.table_copy),
            ("table.fill", self.table_fill),
            ("table.init", self.table_init),
            ("elem.drop", self.elem_drop),
        ]
    }

    pub fn total(&self) -> u32 {
        self.named().iter().map(|(_, n)| n).sum()
    }
}

/// Global 0, which rustc's wasm targets make the shadow-stack pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global0 {
    Missing,
    Imported,
    /// `init` is the constant when the initialiser is exactly `i32.const`.
    Defined {
        ty: GlobalType,
        init: Option<i32>,
    },
}

pub struct Survey<'a> {
    /// The function type behind each type index (`None`: a GC type).
    pub types: Vec<Option<FuncType>>,
    /// The type index of every function: imported ones first.
    pub func_types: Vec<u32>,
    pub imported_funcs: u32,
    /// The defined functions' bodies, in index order.
    pub bodies: Vec<FunctionBody<'a>>,
    pub global0: Global0,
    pub exports: Vec<Export<'a>>,
    pub memories: Vec<MemoryType>,
    pub ops: OpCounts,
    /// The first instruction `lower` does not handle, and its function.
    pub first_unsupported: Option<(&'static str, u32)>,
    pub has_type_section: bool,
    pub has_function_section: bool,
}

impl<'a> Survey<'a> {
    pub fn of(wasm: &'a [u8]) -> Result<Self, Error> {
        let mut s = Survey {
            types: Vec::new(),
            func_types: Vec::new(),
            imported_funcs: 0,
            bodies: Vec::new(),
            global0: Global0::Missing,
            exports: Vec::new(),
            memories: Vec::new(),
            ops: OpCounts::default(),
            first_unsupported: None,
            has_type_section: false,
            has_function_section: false,
        };
        let mut globals = 0u32;
        for payload in Parser::new(0).parse_all(wasm) {
            match payload? {
                Payload::Version {
                    encoding: Encoding::Component,
                    ..
                } => return Err(Error::NotCoreModule),
                Payload::TypeSection(reader) => {
                    s.has_type_section = true;
                    for group in reader {
                        for sub in group?.into_types() {
                            s.types.push(match sub.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => Some(f),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        match import?.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                s.func_types.push(t);
                                s.imported_funcs += 1;
                            }
                            TypeRef::Memory(m) => s.memories.push(m),
                            TypeRef::Global(_) => {
                                if globals == 0 {
                                    s.global0 = Global0::Imported;
                                }
                                globals += 1;
                            }
                            TypeRef::Table(_) | TypeRef::Tag(_) => {}
                        }
                    }
                }
                Payload::FunctionSection(reader) => {
                    s.has_function_section = true;
                    for t in reader {
                        s.func_types.push(t?);
                    }
                }
                Payload::MemorySection(reader) => {
                    for m in reader {
                        s.memories.push(m?);
                    }
                }
                Payload::GlobalSection(reader) => {
                    for g in reader {
                        let g = g?;
                        if globals == 0 {
                            s.global0 = Global0::Defined {
                                ty: g.ty,
                                init: single_i32_const(&g.init_expr)?,
                            };
                        }
                        globals += 1;
                    }
                }
                Payload::ExportSection(reader) => {
                    for e in reader {
                        s.exports.push(e?);
                    }
                }
                Payload::CodeSectionEntry(body) => {
                    let func = s.imported_funcs + s.bodies.len() as u32;
                    s.count_ops(&body, func)?;
                    s.bodies.push(body);
                }
                _ => {}
            }
        }
        Ok(s)
    }

    fn count_ops(&mut self, body: &FunctionBody<'a>, func: u32) -> Result<(), Error> {
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            let refused = match reader.read()? {
                Operator::MemoryCopy { dst_mem, src_mem } => {
                    self.ops.memory_copy += 1;
                    (dst_mem != 0 || src_mem != 0).then_some("memory.copy on a memory other than 0")
                }
                Operator::MemoryFill { mem } => {
                    self.ops.memory_fill += 1;
                    (mem != 0).then_some("memory.fill on a memory other than 0")
                }
                Operator::MemoryInit { .. } => {
                    self.ops.memory_init += 1;
                    Some("memory.init")
                }
                Operator::DataDrop { .. } => {
                    self.ops.data_drop += 1;
                    Some("data.drop")
                }
                Operator::TableCopy { .. } => {
                    self.ops.table_copy += 1;
                    Some("table.copy")
                }
                Operator::TableFill { .. } => {
                    self.ops.table_fill += 1;
                    Some("table.fill")
                }
                Operator::TableInit { .. } => {
                    self.ops.table_init += 1;
                    Some("table.init")
                }
                Operator::ElemDrop { .. } => {
                    self.ops.elem_drop += 1;
                    Some("elem.drop")
                }
                _ => None,
            };
            if let Some(op) = refused {
                self.first_unsupported.get_or_insert((op, func));
            }
        }
        Ok(())
    }

    /// The function type of function `func`, if it is one.
    pub fn func_type(&self, func: u32) -> Option<&FuncType> {
        let ty = *self.func_types.get(func as usize)?;
        self.types.get(ty as usize)?.as_ref()
    }

    /// The body of function `func` when it is defined here, not imported.
    pub fn body(&self, func: u32) -> Option<&FunctionBody<'a>> {
        self.bodies
            .get(func.checked_sub(self.imported_funcs)? as usize)
    }

    /// The function an export named `name` points to: `Ok(None)` when there is
    /// no such export, an error when it exports something else.
    pub fn exported_func(&self, name: &str) -> Result<Option<u32>, Error> {
        match self.exports.iter().find(|e| e.name == name) {
            None => Ok(None),
            Some(e) if matches!(e.kind, ExternalKind::Func | ExternalKind::FuncExact) => {
                Ok(Some(e.index))
            }
            Some(_) => Err(Error::EntryNotFunction(name.to_string())),
        }
    }

    /// The initial value of the shadow-stack pointer: global 0's `i32.const`.
    pub fn stack_pointer_init(&self) -> Result<i32, Error> {
        match self.global0 {
            Global0::Missing => Err(Error::StackPointer("does not exist")),
            Global0::Imported => Err(Error::StackPointer("is imported, not defined")),
            Global0::Defined { ty, init } => {
                if ty.content_type != ValType::I32 {
                    Err(Error::StackPointer("is not an i32"))
                } else if !ty.mutable {
                    Err(Error::StackPointer("is immutable"))
                } else {
                    init.ok_or(Error::StackPointer("is not initialised by one i32.const"))
                }
            }
        }
    }

    /// Memory 0 exists, is the only one and is 32-bit: what the replacement
    /// functions assume.
    pub fn check_memories(&self) -> Result<(), Error> {
        if self.memories.len() > 1 {
            return Err(Error::MultiMemory {
                count: self.memories.len(),
            });
        }
        if self.memories.iter().any(|m| m.memory64) {
            return Err(Error::Memory64);
        }
        Ok(())
    }
}

/// `Some(c)` when the constant expression is exactly `i32.const c`.
fn single_i32_const(expr: &wasmparser::ConstExpr<'_>) -> Result<Option<i32>, Error> {
    let mut ops = expr.get_operators_reader();
    let Operator::I32Const { value } = ops.read()? else {
        return Ok(None);
    };
    let Operator::End = ops.read()? else {
        return Ok(None);
    };
    Ok(ops.eof().then_some(value))
}
