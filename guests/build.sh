#!/usr/bin/env bash
# Builds every guest under guests/examples/NAME into guests/build/NAME.elf,
# with the Swift toolchain alone (swiftc, and the clang and ld.lld beside it).
# A guest with .swift files is an Embedded Swift guest (its files and the
# Swift SDK form one module); one with only .c files is a C guest; one with a
# lib.rs is a Rust crate, built by guests/sdk/rust/build.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

swiftc_path="$(command -v swiftc || true)"
if [[ -z "$swiftc_path" && -x /opt/swift/usr/bin/swiftc ]]; then
    swiftc_path=/opt/swift/usr/bin/swiftc
fi
if [[ -z "$swiftc_path" ]]; then
    echo "build.sh: swiftc not found (put the Swift toolchain on PATH or in /opt/swift)" >&2
    exit 1
fi
# clang and ld.lld must be the toolchain's own, beside the real swiftc.
toolchain="$(dirname "$(readlink -f "$swiftc_path")")"
swiftc="$toolchain/swiftc"
clang="$toolchain/clang"
lld="$toolchain/ld.lld"

target=x86_64-unknown-none-elf
abi_include=Sources/CGuestABI/include
sdk=guests/sdk
build=guests/build
obj="$build/obj"

# The image base and page size come from the ABI header, the one source of
# truth; the linker script uses them as symbols.
abi_value() {
    "$clang" -target "$target" -ffreestanding -E -dM -x c "$abi_include/hl_abi.h" |
        awk -v name="$1" '$2 == name { sub(/[uUlL]+$/, "", $3); print $3 }'
}
image_base="$(abi_value HL_IMAGE_BASE)"
page_size="$(abi_value HL_PAGE_SIZE)"
if [[ -z "$image_base" || -z "$page_size" ]]; then
    echo "build.sh: HL_IMAGE_BASE or HL_PAGE_SIZE missing from $abi_include/hl_abi.h" >&2
    exit 1
fi

# Baseline x86-64 only (SSE2, no AVX). Nothing interrupts a guest today, but
# the C runtime keeps off the red zone so that it stays correct if the host
# ever injects events.
cflags=(
    -target "$target" -march=x86-64 -std=c11 -O2
    -ffreestanding -fno-builtin -nostdlib -fno-pic -fno-pie
    -fno-stack-protector -mno-red-zone
    -fno-asynchronous-unwind-tables -fno-unwind-tables
    -ffunction-sections -fdata-sections
    -Wall -Wextra -Werror
    -I "$sdk/include" -I "$abi_include"
)
swiftflags=(
    -target "$target"
    -enable-experimental-feature Embedded -enable-experimental-feature Extern
    -wmo -Osize -parse-as-library
    -Xfrontend -disable-stack-protector
    -Xcc -fno-stack-protector -Xcc -ffreestanding
    -I "$sdk/include" -Xcc -I -Xcc "$abi_include"
)
ldflags=(
    -static -nostdlib --no-pie
    -T "$sdk/guest.ld" --defsym=HL_IMAGE_BASE="$image_base" --defsym=HL_PAGE_SIZE="$page_size"
    --gc-sections --orphan-handling=error --build-id=none
    -z noexecstack -z max-page-size="$page_size"
)
unicode_tables="$toolchain/../lib/swift/embedded/$target/libswiftUnicodeDataTables.a"

mkdir -p "$obj/sdk"
runtime_objects=()
for source in "$sdk"/c/*.c; do
    object="$obj/sdk/$(basename "${source%.c}").o"
    "$clang" "${cflags[@]}" -c "$source" -o "$object"
    runtime_objects+=("$object")
done

shopt -s nullglob
built=0
for dir in guests/examples/*/; do
    name="$(basename "$dir")"
    # A Rust guest (a crate root lib.rs) has its own build. Without a rustc
    # (the container image's build stage) it is skipped, loudly; the tests
    # that run it fail where KVM and the guests are required.
    if [[ -f "$dir/lib.rs" ]]; then
        if ! command -v rustc >/dev/null && [[ ! -x "$HOME/.cargo/bin/rustc" ]]; then
            echo "build.sh: skipping $name (Rust): no rustc on PATH or in ~/.cargo/bin" >&2
            continue
        fi
        guests/sdk/rust/build.sh "$dir" "$build/$name.elf"
        echo "built $build/$name.elf (rust, $(wc -c < "$build/$name.elf") bytes)"
        built=$((built + 1))
        continue
    fi
    swift_sources=("$dir"*.swift)
    c_sources=("$dir"*.c)
    if (( ${#swift_sources[@]} == 0 && ${#c_sources[@]} == 0 )); then
        continue
    fi
    rm -rf "${obj:?}/$name"
    mkdir -p "$obj/$name"
    objects=()
    libraries=()
    if (( ${#swift_sources[@]} > 0 )); then
        language=swift
        "$swiftc" "${swiftflags[@]}" -module-name "$name" \
            "$sdk"/swift/*.swift "${swift_sources[@]}" -c -o "$obj/$name/$name.o"
        objects+=("$obj/$name/$name.o")
        libraries+=("$unicode_tables")
    else
        language=c
    fi
    for source in "${c_sources[@]}"; do
        object="$obj/$name/$(basename "${source%.c}").o"
        "$clang" "${cflags[@]}" -c "$source" -o "$object"
        objects+=("$object")
    done
    # Link beside the target and rename, so a reader never sees half an ELF.
    "$lld" "${ldflags[@]}" "${objects[@]}" "${runtime_objects[@]}" "${libraries[@]}" -o "$build/$name.elf.tmp.$$"
    mv -f "$build/$name.elf.tmp.$$" "$build/$name.elf"
    echo "built $build/$name.elf ($language, $(wc -c < "$build/$name.elf") bytes)"
    built=$((built + 1))
done

if (( built == 0 )); then
    echo "build.sh: no guests found under guests/examples" >&2
    exit 1
fi
