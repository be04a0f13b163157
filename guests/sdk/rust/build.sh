#!/usr/bin/env bash
# Builds a Rust guest: guests/sdk/rust/build.sh SRC_DIR OUT.elf
#
# SRC_DIR holds lib.rs, the crate root of a #![no_std] crate that uses the
# `hl` binding (guests/sdk/rust/hl.rs). Both are compiled by the installed
# stable rustc for x86_64-unknown-linux-gnu (no cargo, no registry; crates
# from Debian's librust-*-dev packages only, offline) into a static library,
# which is linked with the SDK's C runtime and linker script like any other
# guest. Debug sections are stripped; the symbol table is kept, so crash
# messages name functions.
set -euo pipefail

if [[ $# -ne 2 || ! -f "$1/lib.rs" ]]; then
    echo "usage: guests/sdk/rust/build.sh SRC_DIR OUT.elf   (SRC_DIR must hold lib.rs)" >&2
    exit 2
fi
source_dir="$(cd "$1" && pwd)"
out="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"

rustc="$(command -v rustc || true)"
if [[ -z "$rustc" && -x "$HOME/.cargo/bin/rustc" ]]; then
    rustc="$HOME/.cargo/bin/rustc"
fi
if [[ -z "$rustc" ]]; then
    echo "guests/sdk/rust/build.sh: rustc not found (install a stable Rust, or Debian's rustc)" >&2
    exit 1
fi
# hl.rs uses PanicInfo::message, stable since 1.81.
minor="$("$rustc" --version | sed -n 's/^rustc 1\.\([0-9]*\)\..*/\1/p')"
if [[ -z "$minor" || "$minor" -lt 81 ]]; then
    echo "guests/sdk/rust/build.sh: $("$rustc" --version) is too old; Rust guests need rustc 1.81 or newer" >&2
    exit 1
fi
# clang and ld.lld: the Swift toolchain's, as for every other guest.
swiftc_path="$(command -v swiftc || true)"
if [[ -z "$swiftc_path" && -x /opt/swift/usr/bin/swiftc ]]; then
    swiftc_path=/opt/swift/usr/bin/swiftc
fi
if [[ -z "$swiftc_path" ]]; then
    echo "guests/sdk/rust/build.sh: swiftc not found (its clang and ld.lld link guests)" >&2
    exit 1
fi
toolchain="$(dirname "$(readlink -f "$swiftc_path")")"
clang="$toolchain/clang"
lld="$toolchain/ld.lld"

abi_include=Sources/CGuestABI/include
sdk=guests/sdk
abi_value() {
    "$clang" -target x86_64-unknown-none-elf -ffreestanding -E -dM -x c "$abi_include/hl_abi.h" |
        awk -v name="$1" '$2 == name { sub(/[uUlL]+$/, "", $3); print $3 }'
}
image_base="$(abi_value HL_IMAGE_BASE)"
page_size="$(abi_value HL_PAGE_SIZE)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cflags=(
    -target x86_64-unknown-none-elf -march=x86-64 -std=c11 -O2
    -ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie
    -fno-stack-protector -mno-red-zone
    -fno-asynchronous-unwind-tables -fno-unwind-tables
    -ffunction-sections -fdata-sections
    -Wall -Wextra -Werror
    -I "$sdk/include" -I "$abi_include"
)
"$clang" "${cflags[@]}" -fsyntax-only "$sdk/rust/abi_check.c"
runtime_objects=()
for source in "$sdk"/c/*.c; do
    object="$work/sdk-$(basename "${source%.c}").o"
    "$clang" "${cflags[@]}" -c "$source" -o "$object"
    runtime_objects+=("$object")
done

# Static, non-PIE code for a fixed image address; no unwinding (the
# precompiled core still has landing pads, hence hl.rs's stubs).
rustflags=(
    --target x86_64-unknown-linux-gnu
    -C opt-level=s -C panic=abort -C relocation-model=static -C code-model=small
    -C debuginfo=0 -C force-unwind-tables=no
)
"$rustc" "${rustflags[@]}" --edition 2021 --crate-type rlib --crate-name hl "$sdk/rust/hl.rs" -o "$work/libhl.rlib"

# Debian's librust-*-dev crates, offline: a guest names the ones it uses in
# SRC_DIR/crates (one per line, e.g. serde_json); each is built by
# guests/sdk/rust/crates.sh into $work and passed with --extern.
externs=(--extern "hl=$work/libhl.rlib" -L "dependency=$work")
if [[ -f "$source_dir/crates" ]]; then
    while read -r crate; do
        [[ -z "$crate" || "$crate" == \#* ]] && continue
        "$sdk/rust/crates.sh" "$crate" "$work" "${rustflags[@]}"
        externs+=(--extern "$crate=$work/lib$crate.rlib")
    done < "$source_dir/crates"
fi

name="$(basename "$source_dir" | tr -c 'A-Za-z0-9_\n' _)"
"$rustc" "${rustflags[@]}" --edition 2021 --crate-type staticlib --crate-name "$name" "${externs[@]}" \
    "$source_dir/lib.rs" -o "$work/lib$name.a"

"$lld" -static -nostdlib --no-pie \
    -T "$sdk/guest.ld" --defsym=HL_IMAGE_BASE="$image_base" --defsym=HL_PAGE_SIZE="$page_size" \
    --gc-sections --orphan-handling=error --build-id=none --strip-debug \
    -z noexecstack -z max-page-size="$page_size" \
    "${runtime_objects[@]}" "$work/lib$name.a" -o "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
