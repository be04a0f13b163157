//! A Rust guest using a crate from Debian's Rust packages: serde_json
//! (librust-serde-json-dev), built offline, no_std with `alloc`.
#![no_std]

extern crate alloc;

use alloc::string::ToString;
use serde_json::{json, Value};

/// stats {"numbers": [..]} -> {"count", "sum", "min", "max"}
fn stats(input: &[u8]) -> hl::Result {
    let args: Value = serde_json::from_slice(input).map_err(|e| hl::Error::final_error(e.to_string()))?;
    let numbers = args
        .get("numbers")
        .and_then(Value::as_array)
        .ok_or_else(|| hl::Error::final_error("stats needs an array \"numbers\""))?;
    let mut values = alloc::vec::Vec::with_capacity(numbers.len());
    for number in numbers {
        values.push(number.as_f64().ok_or_else(|| hl::Error::final_error("every element must be a number"))?);
    }
    let sum: f64 = values.iter().sum();
    let min = values.iter().copied().reduce(f64::min);
    let max = values.iter().copied().reduce(f64::max);
    let result = json!({"count": values.len(), "sum": sum, "min": min, "max": max});
    Ok(serde_json::to_vec(&result).map_err(|e| hl::Error::new(e.to_string()))?)
}

/// keys {object} -> the object's keys, sorted.
fn keys(input: &[u8]) -> hl::Result {
    let args: Value = serde_json::from_slice(input).map_err(|e| hl::Error::final_error(e.to_string()))?;
    let object = args.as_object().ok_or_else(|| hl::Error::final_error("keys needs a JSON object"))?;
    let mut names: alloc::vec::Vec<&str> = object.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    Ok(serde_json::to_vec(&names).map_err(|e| hl::Error::new(e.to_string()))?)
}

hl::functions! {
    "stats" => stats,
    "keys" => keys,
}
