//! A guest written in Rust: the same JSON-in, JSON-out protocol as the C and
//! Swift examples, plus what Rust guests add: a panic that ends the call
//! with its message and location, a final error, and an init that fills a
//! table once per VM, and a function that enqueues jobs and reports progress.
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;

/// Filled by `setup` once per VM; every call sees it already there.
static mut SQUARES: Vec<u64> = Vec::new();

fn setup() -> Result<(), hl::Error> {
    // SAFETY: init runs alone, before any call; calls only read it.
    let squares = unsafe { &mut *core::ptr::addr_of_mut!(SQUARES) };
    squares.extend((0..100u64).map(|n| n * n));
    Ok(())
}

hl::init!(setup);

/// Reads integer member `key` of a flat JSON object (enough for examples;
/// see the serde_json example for real parsing).
fn integer(input: &[u8], key: &str) -> Option<i64> {
    let text = core::str::from_utf8(input).ok()?;
    let at = text.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest.find(|c: char| c != '-' && !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// echo: the input, unchanged.
fn echo(input: &[u8]) -> hl::Result {
    Ok(input.to_vec())
}

/// add {"a", "b"} -> {"sum"}
fn add(input: &[u8]) -> hl::Result {
    let (Some(a), Some(b)) = (integer(input, "a"), integer(input, "b")) else {
        return Err(hl::Error::final_error("add needs integer arguments \"a\" and \"b\""));
    };
    let sum = a.checked_add(b).ok_or("a + b overflows i64")?;
    Ok(format!("{{\"sum\":{sum}}}").into_bytes())
}

/// square {"n"} -> {"square"}, from the table init built.
fn square(input: &[u8]) -> hl::Result {
    let n = integer(input, "n").ok_or("square needs an integer \"n\"")?;
    // SAFETY: written only by init, before any call.
    let squares = unsafe { &*core::ptr::addr_of!(SQUARES) };
    let value = usize::try_from(n).ok().and_then(|n| squares.get(n)).ok_or("n must be in 0...99")?;
    Ok(format!("{{\"square\":{value}}}").into_bytes())
}

/// panic {"index"}: indexes past the end of a slice, so Rust panics.
fn panic(input: &[u8]) -> hl::Result {
    let index = integer(input, "index").unwrap_or(7) as usize;
    let small = [1u8, 2, 3];
    Ok(alloc::vec![small[index]])
}

/// fail {"final"}: a guest error, final when "final" is 1.
fn fail(input: &[u8]) -> hl::Result {
    if integer(input, "final") == Some(1) {
        Err(hl::Error::final_error("this request can never succeed"))
    } else {
        Err(hl::Error::new("a failure worth retrying"))
    }
}

/// spawn {"count", "spin"} -> {"enqueued"}: asks the host for `count` echo
/// jobs of this guest (args {"n": i}), reporting progress as it goes; the
/// first refusal fails the call with the host's reason. With "spin": 1 it
/// then spins until the host stops it (for tests of progress while a job
/// runs, and of children of a parent that never completes).
fn spawn(input: &[u8]) -> hl::Result {
    let count = integer(input, "count").filter(|n| (0..=100_000).contains(n));
    let count = count.ok_or("spawn needs an integer argument \"count\" in 0...100000")?;
    for i in 0..count {
        hl::enqueue("hello_rust", "echo", format!("{{\"n\":{i}}}").as_bytes(), b"")?;
        hl::progress((i + 1) as f64 / count as f64, "spawning");
    }
    if integer(input, "spin") == Some(1) {
        loop {
            core::hint::spin_loop();
        }
    }
    Ok(format!("{{\"enqueued\":{count}}}").into_bytes())
}

/// crash: executes an invalid instruction (a guest_crash naming `crash`).
fn crash(_input: &[u8]) -> hl::Result {
    // SAFETY: ends the call; the host reports a guest crash.
    unsafe { core::arch::asm!("ud2", options(noreturn)) }
}

hl::functions! {
    "echo" => echo,
    "add" => add,
    "square" => square,
    "panic" => panic,
    "fail" => fail,
    "crash" => crash,
    "spawn" => spawn,
}
