//! `hl`: the Rust guest API of hl-worker, a `no_std` binding over the SDK's
//! C runtime (guests/sdk/c), which owns the entry point, the call protocol,
//! the heap and the host calls. A guest crate lists its functions once:
//!
//! ```ignore
//! #![no_std]
//! extern crate alloc;
//! use alloc::vec::Vec;
//!
//! fn echo(input: &[u8]) -> hl::Result { Ok(input.to_vec()) }
//! hl::functions! { "echo" => echo }
//! ```
//!
//! Each function gets the call's input bytes and returns the result bytes
//! or an `hl::Error` (retried like any failure, or, made with
//! `Error::final_error`, discarding the job at once). A panic ends the call
//! as a guest_error naming the panic's message and location. `hl::init!`
//! declares a function run once per VM, before any call.
#![no_std]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::fmt::{self, Write};

// The C runtime's services (guests/sdk/include/hl_runtime.h, hl_guest.h).
// Status and level values are those of hl_abi.h's enum hl_status and enum
// hl_log_level; abi_check.c, compiled by build.sh, fails the build if the
// header ever disagrees.
mod ffi {
    extern "C" {
        pub fn hl_call_name(len: *mut usize) -> *const u8;
        pub fn hl_call_input(len: *mut usize) -> *const u8;
        pub fn hl_set_result(status: u32, bytes: *const u8, len: usize);
        pub fn hl_report_unknown_function();
        pub fn hl_call_is_listing() -> i32;
        pub fn hl_list_function(name: *const u8, len: usize);
        pub fn hl_end_call(status: u32, message: *const u8, len: usize) -> !;
        pub fn hl_log(level: u32, message: *const u8, len: usize);
        pub fn hl_wall_clock_ns() -> u64;
        pub fn hl_enqueue_bytes(
            guest: *const u8,
            guest_len: usize,
            function: *const u8,
            function_len: usize,
            args: *const u8,
            args_len: usize,
            options: *const u8,
            options_len: usize,
            reason: *mut u8,
            reason_capacity: usize,
        ) -> isize;
        pub fn hl_progress(parts_per_million: u32, note: *const u8, len: usize) -> i32;
        pub fn posix_memalign(result: *mut *mut u8, alignment: usize, size: usize) -> i32;
        pub fn free(pointer: *mut u8);
        pub fn realloc(pointer: *mut u8, size: usize) -> *mut u8;
    }
}

/// `enum hl_status` values this binding uses.
pub mod status {
    pub const OK: u32 = 0;
    pub const GUEST_ERROR: u32 = 1;
    pub const FINAL_ERROR: u32 = 6;
}

/// A failure a guest function reports on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub message: String,
    /// A retry cannot fix it: the job is discarded without retries.
    pub is_final: bool,
}

impl Error {
    /// A guest_error: the job is retried while it has attempts left.
    pub fn new(message: impl Into<String>) -> Error {
        Error { message: message.into(), is_final: false }
    }

    /// A guest_final_error: the job is discarded at once.
    pub fn final_error(message: impl Into<String>) -> Error {
        Error { message: message.into(), is_final: true }
    }

    fn report(&self) {
        let status = if self.is_final { status::FINAL_ERROR } else { status::GUEST_ERROR };
        // SAFETY: the message is a live byte slice for the duration of the call.
        unsafe { ffi::hl_set_result(status, self.message.as_ptr(), self.message.len()) }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error::new(message)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error::new(message)
    }
}

/// What a guest function returns: result bytes or an error.
pub type Result = core::result::Result<Vec<u8>, Error>;

/// A guest function: the call's input bytes in.
pub type Function = fn(&[u8]) -> Result;

/// Runs the function of `table` the call names (or lists the table when the
/// host asks for it, or reports an unknown function). Called by the `main`
/// that `functions!` defines; the runtime calls that once per call.
pub fn dispatch(table: &[(&str, Function)]) {
    // SAFETY: plain calls into the runtime; the pointers it returns point
    // into the read-only input area, valid for `len` bytes until the call
    // ends, which outlives this function.
    unsafe {
        if ffi::hl_call_is_listing() != 0 {
            for (name, _) in table {
                ffi::hl_list_function(name.as_ptr(), name.len());
            }
            return;
        }
        let mut name_len = 0;
        let name = ffi::hl_call_name(&mut name_len);
        let name = bytes(name, name_len);
        let Some((_, function)) = table.iter().find(|(candidate, _)| candidate.as_bytes() == name) else {
            ffi::hl_report_unknown_function();
            return;
        };
        let mut input_len = 0;
        let input = ffi::hl_call_input(&mut input_len);
        match function(bytes(input, input_len)) {
            Ok(output) => ffi::hl_set_result(status::OK, output.as_ptr(), output.len()),
            Err(error) => error.report(),
        }
    }
}

/// Runs the guest's init (see `init!`): an error fails the VM's build.
pub fn run_init(body: fn() -> core::result::Result<(), Error>) {
    if let Err(error) = body() {
        error.report();
    }
}

/// SAFETY: `pointer` is null or valid for `len` bytes for the returned lifetime.
unsafe fn bytes<'a>(pointer: *const u8, len: usize) -> &'a [u8] {
    if pointer.is_null() || len == 0 {
        &[]
    } else {
        core::slice::from_raw_parts(pointer, len)
    }
}

/// Defines the guest's function table (and so its `main`):
/// `hl::functions! { "name" => function, ... }`.
#[macro_export]
macro_rules! functions {
    ($($name:literal => $function:path),* $(,)?) => {
        #[no_mangle]
        pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {
            $crate::dispatch(&[$(($name, $function as $crate::Function)),*]);
            0
        }
    };
}

/// Declares the guest's init: `hl::init!(setup)` with
/// `fn setup() -> Result<(), hl::Error>`. It runs once when a VM is built,
/// before any call and before a recycled VM's snapshot, so what it leaves in
/// statics is there for every call.
#[macro_export]
macro_rules! init {
    ($function:path) => {
        #[no_mangle]
        pub extern "C" fn hl_init() {
            $crate::run_init($function);
        }
    };
}

/// Log levels of the host's log.
#[derive(Clone, Copy, Debug)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warning = 2,
    Error = 3,
}

/// Sends one line to the host's log (a VM exit: lines, not characters).
pub fn log(level: Level, message: &str) {
    // SAFETY: the message is a live byte slice.
    unsafe { ffi::hl_log(level as u32, message.as_ptr(), message.len()) }
}

/// Nanoseconds since the Unix epoch by the host's clock, or 0.
pub fn wall_clock_ns() -> u64 {
    // SAFETY: no arguments.
    unsafe { ffi::hl_wall_clock_ns() }
}

/// Asks for a new job of `guest`'s `function`, inserted only if and when
/// this call's job completes, in the same transaction as its result (a call
/// that fails enqueues nothing). `args` is a JSON object (empty means
/// `{}`); `options` a JSON object or empty, with "queue", "priority",
/// "max_attempts", "unique_key" and "after" (indexes returned by earlier
/// calls, jobs the new one waits for). Returns the new job's index among
/// this call's, or the host's reason for refusing (an invalid request, or
/// one past the host's limits on jobs and bytes per call), as an error a
/// guest function can return with `?`.
pub fn enqueue(guest: &str, function: &str, args: &[u8], options: &[u8]) -> core::result::Result<u32, Error> {
    let mut reason = [0u8; 256];
    // SAFETY: every pointer is a live slice of the length given with it;
    // the runtime writes at most `reason.len()` bytes, NUL-terminated.
    let index = unsafe {
        ffi::hl_enqueue_bytes(
            guest.as_ptr(),
            guest.len(),
            function.as_ptr(),
            function.len(),
            args.as_ptr(),
            args.len(),
            options.as_ptr(),
            options.len(),
            reason.as_mut_ptr(),
            reason.len(),
        )
    };
    if index >= 0 {
        return Ok(index as u32);
    }
    let len = reason.iter().position(|&byte| byte == 0).unwrap_or(reason.len());
    Err(Error::new(alloc::format!("enqueue refused: {}", String::from_utf8_lossy(&reason[..len]))))
}

/// Reports how far the job has got (`fraction` from 0 to 1, clamped; NaN
/// counts as 0) with a short note. The host keeps the latest, written about
/// once a second while the job runs. True if the host accepted it.
pub fn progress(fraction: f64, note: &str) -> bool {
    let clamped = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
    // SAFETY: the note is a live byte slice.
    unsafe { ffi::hl_progress((clamped * 1_000_000.0) as u32, note.as_ptr(), note.len()) != 0 }
}

/// The global allocator: the SDK heap. It never returns null: running out
/// ends the call as out_of_memory, as for C and Swift guests.
pub struct SdkHeap;

unsafe impl GlobalAlloc for SdkHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut pointer = core::ptr::null_mut();
        let alignment = layout.align().max(core::mem::size_of::<usize>());
        if ffi::posix_memalign(&mut pointer, alignment, layout.size()) != 0 {
            return core::ptr::null_mut();
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, _layout: Layout) {
        ffi::free(pointer)
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // The SDK's realloc keeps malloc's 16-byte alignment; larger ones
        // go the long way.
        if layout.align() <= 16 {
            return ffi::realloc(pointer, new_size);
        }
        let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
        if !new.is_null() {
            core::ptr::copy_nonoverlapping(pointer, new, layout.size().min(new_size));
            self.dealloc(pointer, layout);
        }
        new
    }
}

#[global_allocator]
static HEAP: SdkHeap = SdkHeap;

/// Formats into a fixed buffer, dropping what does not fit: a panic must
/// not allocate (the heap may be what failed).
struct FixedText {
    bytes: [u8; 256],
    len: usize,
}

impl Write for FixedText {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if self.len == self.bytes.len() {
                break;
            }
            self.bytes[self.len] = byte;
            self.len += 1;
        }
        Ok(())
    }
}

/// A panic ends the call as a guest_error: "panicked at FILE:LINE:COLUMN:
/// MESSAGE". Nothing unwinds; the runtime signals the host directly.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut text = FixedText { bytes: [0; 256], len: 0 };
    let _ = text.write_str("panicked");
    if let Some(location) = info.location() {
        let _ = write!(text, " at {}:{}:{}", location.file(), location.line(), location.column());
    }
    let _ = write!(text, ": {}", info.message());
    // SAFETY: the buffer lives until hl_end_call, which does not return;
    // the runtime cuts the message at a UTF-8 boundary if it must.
    unsafe { ffi::hl_end_call(status::GUEST_ERROR, text.bytes.as_ptr(), text.len) }
}

// Symbols the precompiled `core` of x86_64-unknown-linux-gnu refers to and
// a guest without unwinding never reaches: landing pads name the unwinder's
// resume and the personality routine; slice comparison calls `bcmp`.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    // SAFETY: ends the call; nothing can unwind here.
    unsafe { ffi::hl_end_call(status::GUEST_ERROR, b"unwinding is not supported".as_ptr(), 26) }
}

#[no_mangle]
pub extern "C" fn rust_eh_personality() {}

extern "C" {
    fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32;
}

#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    memcmp(a, b, n)
}
