//! The bodies of `$copy` and `$fill`, the plain-wasm functions that replace
//! `memory.copy 0 0` and `memory.fill 0`. Traefik's wazero v1.8.0 compiles
//! those two instructions into calls of Go's runtime.memmove and assumes a
//! register survives them, which Go ≥ 1.24 breaks for copies ≥ 2 KiB on
//! ERMS+FSRM CPUs: ordinary loads and stores never reach that call.
//!
//! Both functions take the instruction's operands in stack order, so a
//! `call` replaces the instruction in place: `$copy(dst, src, n)` and
//! `$fill(dst, value, n)`, all i32, no results. Their behaviour is the
//! instructions', exactly:
//! - the bounds are checked before anything is written: a trap
//!   (`unreachable`) when `dst + n` or `src + n` exceeds the memory's size in
//!   bytes, so an out-of-bounds copy writes nothing, as the spec requires;
//! - `n = 0` is allowed anywhere up to and including the end of memory;
//! - overlapping ranges are copied as memmove does, in both directions;
//! - `$fill` stores only the low byte of `value`.
//!
//! Speed (most of the guest's copies are a few bytes to a few hundred):
//! - up to 32 bytes, no loop and no direction test: the first and the last
//!   16, 8, 4 or 2 bytes (which together cover `n`, overlapping in the
//!   middle) are all loaded before anything is stored, which is right
//!   whatever the overlap; a copy of up to 32 bytes costs 40 to 60 wasm
//!   operations, bounds check included;
//! - beyond, 32-byte blocks of four unaligned i64 loads/stores per loop turn
//!   in the safe direction, then at most one 16, 8, 4, 2 and 1-byte step
//!   each, chosen by the bits of `n`: about one operation per byte, never a
//!   byte-at-a-time loop.

use wasm_encoder::{BlockType, Function, InstructionSink, MemArg, MemArgTarget, ValType};

/// Both functions' signature: three i32 operands, no result.
pub const PARAMS: [ValType; 3] = [ValType::I32; 3];

// Locals: the three operands; `$copy` then holds up to four loaded i64 and
// an address (i32), `$fill` the byte repeated eight times (i64) and an
// address.
const DST: u32 = 0;
const SRC: u32 = 1;
const VALUE: u32 = 1;
const N: u32 = 2;
const LOADED: [u32; 4] = [3, 4, 5, 6];
const COPY_ADDR: u32 = 7;
const PATTERN: u32 = 3;
const FILL_ADDR: u32 = 4;

/// Above this, the loops; up to it, the loop-free small path.
const SMALL: u32 = 32;

/// The small path's cases, from the largest: bytes at each end, in accesses
/// of this many bytes.
const ENDS: [(u32, u32); 4] = [(16, 8), (8, 8), (4, 4), (2, 2)];

/// Steps after the loops (n mod 32), from the largest down.
const TAIL: [u32; 5] = [16, 8, 4, 2, 1];

/// `memory.copy 0 0`: memmove within memory 0.
pub fn copy() -> Function {
    let mut f = Function::new([(4, ValType::I64), (1, ValType::I32)]);
    let mut i = f.instructions();
    trap_unless_in_bounds(&mut i, Some(SRC));
    i.local_get(N)
        .i32_const(SMALL as i32 + 1)
        .i32_lt_u()
        .if_(BlockType::Empty);
    copy_small(&mut i);
    i.else_();
    // dst <= src: copying upwards never overwrites a source byte before it
    // is read (every store lands below the next load). dst > src: copy
    // downwards from the end, the mirror argument. Equal: either is right.
    i.local_get(DST)
        .local_get(SRC)
        .i32_le_u()
        .if_(BlockType::Empty);
    copy_upwards(&mut i);
    i.else_();
    copy_downwards(&mut i);
    i.end().end().end();
    f
}

/// `memory.fill 0`: sets `n` bytes at `dst` to the low byte of `value`.
pub fn fill() -> Function {
    let mut f = Function::new([(1, ValType::I64), (1, ValType::I32)]);
    let mut i = f.instructions();
    trap_unless_in_bounds(&mut i, None);
    // The low byte times 0x0101010101010101: that byte in each of 8 lanes.
    i.local_get(VALUE)
        .i32_const(0xff)
        .i32_and()
        .i64_extend_i32_u()
        .i64_const(0x0101_0101_0101_0101)
        .i64_mul()
        .local_set(PATTERN);
    i.local_get(N)
        .i32_const(SMALL as i32 + 1)
        .i32_lt_u()
        .if_(BlockType::Empty);
    // Up to 32 bytes: the first and last 16, 8, 4 or 2 bytes, or the one.
    for (end, access) in ENDS {
        i.local_get(N)
            .i32_const(end as i32)
            .i32_ge_u()
            .if_(BlockType::Empty);
        i.local_get(DST).local_get(PATTERN);
        store(&mut i, access, 0);
        if end == 16 {
            i.local_get(DST).local_get(PATTERN);
            store(&mut i, 8, 8);
        }
        end_address(&mut i, DST, end, FILL_ADDR);
        i.local_get(PATTERN);
        store(&mut i, access, 0);
        if end == 16 {
            i.local_get(FILL_ADDR).local_get(PATTERN);
            store(&mut i, 8, 8);
        }
        i.else_();
    }
    i.local_get(N).if_(BlockType::Empty);
    i.local_get(DST).local_get(PATTERN);
    store(&mut i, 1, 0);
    i.end();
    for _ in ENDS {
        i.end();
    }
    i.else_();
    // More: 32-byte blocks, then the last 32 bytes once more if n is not a
    // multiple of 32 (rewriting some bytes with the same value is harmless;
    // n > 32, so they lie inside the range).
    i.block(BlockType::Empty).loop_(BlockType::Empty);
    i.local_get(N).i32_const(SMALL as i32).i32_lt_u().br_if(1);
    for offset in [0, 8, 16, 24] {
        i.local_get(DST).local_get(PATTERN);
        store(&mut i, 8, offset);
    }
    advance(&mut i, DST, SMALL);
    retreat(&mut i, N, SMALL);
    i.br(0).end().end();
    i.local_get(N).if_(BlockType::Empty);
    end_address(&mut i, DST, SMALL, FILL_ADDR);
    for offset in [0, 8, 16, 24] {
        if offset > 0 {
            i.local_get(FILL_ADDR);
        }
        i.local_get(PATTERN);
        store(&mut i, 8, offset);
    }
    i.end();
    i.end().end();
    f
}

/// Traps unless `max(dst, src) + n <= memory.size * 65536`, before
/// anything is written. In i64: with 32-bit operands the sum and the size
/// (at most 2^32) cannot wrap, where an i32 `ptr + n` could and then pass.
fn trap_unless_in_bounds(i: &mut InstructionSink<'_>, src: Option<u32>) {
    i.local_get(DST);
    if let Some(src) = src {
        i.local_get(src)
            .local_get(DST)
            .local_get(src)
            .i32_gt_u()
            .select();
    }
    i.i64_extend_i32_u()
        .local_get(N)
        .i64_extend_i32_u()
        .i64_add()
        .memory_size(0)
        .i64_extend_i32_u()
        .i64_const(16)
        .i64_shl()
        .i64_gt_u()
        .if_(BlockType::Empty)
        .unreachable()
        .end();
}

/// n <= 32, any overlap: every source byte is loaded (the first and the
/// last `end` bytes cover the range when `end <= n <= 2 * end`) before the
/// first store, so stores cannot clobber a byte still to be read.
fn copy_small(i: &mut InstructionSink<'_>) {
    for (end, access) in ENDS {
        i.local_get(N)
            .i32_const(end as i32)
            .i32_ge_u()
            .if_(BlockType::Empty);
        let halves: &[u64] = if end == 16 { &[0, 8] } else { &[0] };
        // Loads: the first bytes from src, the last from src + n - end.
        for (k, &offset) in halves.iter().enumerate() {
            i.local_get(SRC);
            load(i, access, offset);
            i.local_set(LOADED[k]);
        }
        end_address(i, SRC, end, COPY_ADDR);
        for (k, &offset) in halves.iter().enumerate() {
            if k > 0 {
                i.local_get(COPY_ADDR);
            }
            load(i, access, offset);
            i.local_set(LOADED[halves.len() + k]);
        }
        // Stores, in the same places from dst.
        for (k, &offset) in halves.iter().enumerate() {
            i.local_get(DST).local_get(LOADED[k]);
            store(i, access, offset);
        }
        end_address(i, DST, end, COPY_ADDR);
        for (k, &offset) in halves.iter().enumerate() {
            if k > 0 {
                i.local_get(COPY_ADDR);
            }
            i.local_get(LOADED[halves.len() + k]);
            store(i, access, offset);
        }
        i.else_();
    }
    // 0 or 1 byte.
    i.local_get(N).if_(BlockType::Empty);
    i.local_get(DST).local_get(SRC);
    load(i, 1, 0);
    store(i, 1, 0);
    i.end();
    for _ in ENDS {
        i.end();
    }
}

/// dst <= src, n > 32. Each step loads a block before storing it, and its
/// store ends at or below the next step's load start (dst < src), so no
/// source byte is overwritten before it is read.
fn copy_upwards(i: &mut InstructionSink<'_>) {
    i.block(BlockType::Empty).loop_(BlockType::Empty);
    i.local_get(N).i32_const(SMALL as i32).i32_lt_u().br_if(1);
    for offset in [0, 8, 16, 24] {
        move_at(i, 8, offset);
    }
    advance(i, DST, SMALL);
    advance(i, SRC, SMALL);
    retreat(i, N, SMALL);
    i.br(0).end().end();
    // n < 32 now: one step per set bit, upwards.
    for size in TAIL {
        i.local_get(N)
            .i32_const(size as i32)
            .i32_and()
            .if_(BlockType::Empty);
        if size == 16 {
            move_at(i, 8, 0);
            move_at(i, 8, 8);
        } else {
            move_at(i, size, 0);
        }
        if size > 1 {
            advance(i, DST, size);
            advance(i, SRC, size);
        }
        i.end();
    }
}

/// dst > src, n > 32: the same steps from the end down. dst and src become
/// one past their ranges' ends and move down before each step; the i32 sum
/// may wrap to 0 at a 4 GiB memory's end, which the decrement undoes
/// (modular arithmetic).
fn copy_downwards(i: &mut InstructionSink<'_>) {
    advance_by_n(i, DST);
    advance_by_n(i, SRC);
    // The odd sizes first, from the top: the blocks left are then whole
    // 32-byte ones, below.
    for size in TAIL.iter().rev().copied() {
        i.local_get(N)
            .i32_const(size as i32)
            .i32_and()
            .if_(BlockType::Empty);
        retreat(i, DST, size);
        retreat(i, SRC, size);
        if size == 16 {
            move_at(i, 8, 8);
            move_at(i, 8, 0);
        } else {
            move_at(i, size, 0);
        }
        i.end();
    }
    // floor(n / 32) turns, as upwards; the bits of n below 32 are done.
    i.block(BlockType::Empty).loop_(BlockType::Empty);
    i.local_get(N).i32_const(SMALL as i32).i32_lt_u().br_if(1);
    retreat(i, DST, SMALL);
    retreat(i, SRC, SMALL);
    retreat(i, N, SMALL);
    for offset in [24, 16, 8, 0] {
        move_at(i, 8, offset);
    }
    i.br(0).end().end();
}

/// Copies `size` bytes (8, 4, 2 or 1) from `src + offset` to `dst + offset`.
fn move_at(i: &mut InstructionSink<'_>, size: u32, offset: u64) {
    i.local_get(DST).local_get(SRC);
    match size {
        8 => i.i64_load(mem(offset)).i64_store(mem(offset)),
        4 => i.i32_load(mem(offset)).i32_store(mem(offset)),
        2 => i.i32_load16_u(mem(offset)).i32_store16(mem(offset)),
        _ => i.i32_load8_u(mem(offset)).i32_store8(mem(offset)),
    };
}

/// Loads `size` bytes (8, 4, 2 or 1) into an i64, zero-extended.
fn load(i: &mut InstructionSink<'_>, size: u32, offset: u64) {
    match size {
        8 => i.i64_load(mem(offset)),
        4 => i.i64_load32_u(mem(offset)),
        2 => i.i64_load16_u(mem(offset)),
        _ => i.i64_load8_u(mem(offset)),
    };
}

/// Stores the low `size` bytes (8, 4, 2 or 1) of an i64.
fn store(i: &mut InstructionSink<'_>, size: u32, offset: u64) {
    match size {
        8 => i.i64_store(mem(offset)),
        4 => i.i64_store32(mem(offset)),
        2 => i.i64_store16(mem(offset)),
        _ => i.i64_store8(mem(offset)),
    };
}

/// `local = base + n - back`, also left on the stack for the first access.
/// In bounds: the range was checked and `back <= n`.
fn end_address(i: &mut InstructionSink<'_>, base: u32, back: u32, local: u32) {
    i.local_get(base)
        .local_get(N)
        .i32_add()
        .i32_const(back as i32)
        .i32_sub()
        .local_tee(local);
}

fn advance(i: &mut InstructionSink<'_>, local: u32, by: u32) {
    i.local_get(local)
        .i32_const(by as i32)
        .i32_add()
        .local_set(local);
}

fn retreat(i: &mut InstructionSink<'_>, local: u32, by: u32) {
    i.local_get(local)
        .i32_const(by as i32)
        .i32_sub()
        .local_set(local);
}

fn advance_by_n(i: &mut InstructionSink<'_>, local: u32) {
    i.local_get(local).local_get(N).i32_add().local_set(local);
}

/// Memory 0, a static offset within the block, and alignment 1 (exponent
/// 0): the addresses have any alignment, and the hint must not claim more
/// (engines may take a slower path when it lies; unaligned access itself is
/// cheap on x86-64 and arm64).
fn mem(offset: u64) -> MemArg {
    MemArg {
        offset,
        align: 0,
        target: MemArgTarget::Memory(0),
        ordering: None,
    }
}

#[cfg(test)]
#[path = "runtime_fns_tests.rs"]
mod tests;
