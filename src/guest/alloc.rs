//! The guest's allocator: blocks of power-of-two sizes kept on one free list
//! per size and reused, in front of wasi-libc's malloc.
//!
//! Why hand-written: a request allocates and frees a few dozen small values
//! (texts, header values, the frame), and wasi-libc's dlmalloc charged the
//! guest hundreds of wasm operations for each (splitting, coalescing, bins);
//! popping and pushing a free list costs a few. The guest is one thread
//! (wasm32-wasip1 has none), and serves one request at a time, so its
//! working set is small and steady: a freed block waits for the next request
//! of the same size instead of going back to malloc. Sizes above the largest
//! class, and alignments above 16, go to malloc as before. Measured with
//! `scripts/guest_fuel.py`: 3,500 wasm operations less per request.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::ptr::{self, NonNull};

/// 8, 16, ... 1024 bytes: the request path's values. The host read buffer
/// and anything larger go to malloc, which coalesces them: the heap has
/// ~17 KiB inside the instance's first 3 pages (build.rs).
const CLASSES: usize = 8;
const SMALLEST: usize = 8;
const LARGEST: usize = SMALLEST << (CLASSES - 1);
const MAX_ALIGN: usize = 16;

pub struct Pool {
    free: UnsafeCell<[Option<NonNull<Block>>; CLASSES]>,
}

struct Block {
    next: Option<NonNull<Block>>,
}

// SAFETY: wasm32-wasip1 runs the guest on one thread, without shared memory.
unsafe impl Sync for Pool {}

impl Pool {
    pub const fn new() -> Self {
        Self {
            free: UnsafeCell::new([None; CLASSES]),
        }
    }
}

/// The class of a layout, or `None` for malloc's own.
fn class(layout: Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(SMALLEST);
    if size > LARGEST || layout.align() > MAX_ALIGN {
        return None;
    }
    Some((size.next_power_of_two().trailing_zeros() - SMALLEST.trailing_zeros()) as usize)
}

fn block_layout(class: usize) -> Layout {
    let size = SMALLEST << class;
    // Sizes and alignments are powers of two no larger than LARGEST.
    unsafe { Layout::from_size_align_unchecked(size, size.min(MAX_ALIGN)) }
}

// Not inlined: LTO would copy them into every allocation site, 32 KB more
// of module for no measurable gain.
unsafe impl GlobalAlloc for Pool {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(c) = class(layout) else {
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: one thread, and no allocation happens while `free` is borrowed.
        let free = unsafe { &mut *self.free.get() };
        match free[c] {
            Some(block) => {
                free[c] = unsafe { block.as_ref().next };
                block.as_ptr().cast()
            }
            None => unsafe { System.alloc(block_layout(c)) },
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(c) = class(layout) else {
            return unsafe { System.dealloc(ptr, layout) };
        };
        let free = unsafe { &mut *self.free.get() };
        let block = ptr.cast::<Block>();
        unsafe { block.write(Block { next: free[c] }) };
        free[c] = NonNull::new(block);
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid size for this alignment.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class(layout), class(new)) {
            (Some(a), Some(b)) if a == b => ptr,
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                let out = unsafe { self.alloc(new) };
                if !out.is_null() {
                    unsafe {
                        ptr::copy_nonoverlapping(ptr, out, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                out
            }
        }
    }
}
