#!/usr/bin/env bash
# Builds guests, from any directory.
#
#   guests/build.sh                        every guest under guests/examples/ into guests/build/NAME.elf
#   guests/build.sh SOURCE -o OUT.elf      one guest
#   guests/build.sh --wasm SOURCE -o OUT.elf
#
# SOURCE is a directory or a .wasm module. A directory with .swift files is
# an Embedded Swift guest (its files and the Swift SDK form one module), one
# with Cargo.toml or .rs files a Rust guest (built by guests/sdk/rust/build.sh),
# one with only .c files a C guest. --wasm builds a C or Swift directory
# through wasm32 and wasm2c instead of natively; a .wasm module is always
# built that way. An example named NAME_wasm is built with --wasm.
#
# Native guests need only the Swift toolchain (swiftc, and the clang and
# ld.lld beside it). Wasm guests also need Debian's wabt (wasm2c), wasi-libc
# and libclang-rt-dev-wasm32. Without arguments an example whose ELF is
# newer than everything it is built from is not built again.
set -euo pipefail
shopt -s inherit_errexit

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
    echo "build.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: guests/build.sh [--wasm] SOURCE -o OUT.elf   (SOURCE: a directory of .swift, .c or .rs files, or a .wasm module)" >&2
    echo "       guests/build.sh                              (every example into guests/build/)" >&2
    exit 2
}

wasm=0
source_path=""
output=""
while (( $# > 0 )); do
    case "$1" in
        --wasm) wasm=1 ;;
        -o) (( $# >= 2 )) || usage; output="$2"; shift ;;
        -h|--help) usage ;;
        -*) echo "build.sh: unknown option $1" >&2; usage ;;
        *) [[ -z "$source_path" ]] || usage; source_path="$1" ;;
    esac
    shift
done
if [[ -n "$source_path" && -z "$output" ]] || [[ -z "$source_path" && -n "$output" ]]; then
    usage
fi
# Paths given by the caller are relative to where they called from.
if [[ -n "$source_path" ]]; then
    [[ -e "$source_path" ]] || die "$source_path does not exist"
    source_path="$(cd "$(dirname "$source_path")" && pwd)/$(basename "$source_path")"
    mkdir -p "$(dirname "$output")"
    output="$(cd "$(dirname "$output")" && pwd)/$(basename "$output")"
fi
cd "$root"

swiftc_path="$(command -v swiftc || true)"
if [[ -z "$swiftc_path" && -x /opt/swift/usr/bin/swiftc ]]; then
    swiftc_path=/opt/swift/usr/bin/swiftc
fi
if [[ -z "$swiftc_path" ]]; then
    die "swiftc not found (put the Swift toolchain on PATH or in /opt/swift)"
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
    die "HL_IMAGE_BASE or HL_PAGE_SIZE missing from $abi_include/hl_abi.h"
fi

# Baseline x86-64 only (SSE2, no AVX). Nothing interrupts a guest today, but
# the C runtime keeps off the red zone so that it stays correct if the host
# ever injects events.
base_cflags=(
    -target "$target" -march=x86-64 -std=c11 -O2
    -ffreestanding -nostdlib -fno-pic -fno-pie
    -fno-stack-protector -mno-red-zone
    -fno-asynchronous-unwind-tables -fno-unwind-tables
    -ffunction-sections -fdata-sections
)
cflags=("${base_cflags[@]}" -fno-builtin -Wall -Wextra -Werror -I "$sdk/include" -I "$abi_include")
swift_embedded=(
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

# --- up to date? ---

# True when $1 exists and is newer than every file under the other arguments.
up_to_date() {
    local out="$1"
    shift
    [[ -f "$out" ]] || return 1
    # -H: an example may be a link to another's directory.
    [[ -z "$(find -H "$@" -newer "$out" -type f -print -quit 2>/dev/null)" ]]
}

# --- the native SDK runtime ---

runtime_objects=()
sdk_runtime() {
    (( ${#runtime_objects[@]} == 0 )) || return 0
    mkdir -p "$obj/sdk"
    local source object
    for source in "$sdk"/c/*.c; do
        object="$obj/sdk/$(basename "${source%.c}").o"
        if ! up_to_date "$object" "$source" "$sdk/include" "$abi_include" guests/build.sh; then
            "$clang" "${cflags[@]}" -c "$source" -o "$object"
        fi
        runtime_objects+=("$object")
    done
}

# Links objects into $1, beside the target and renamed, so a reader never
# sees half an ELF.
link_elf() {
    local out="$1"
    shift
    "$lld" "${ldflags[@]}" "$@" -o "$out.tmp.$$"
    mv -f "$out.tmp.$$" "$out"
}

# --- languages ---

# Prints swift, rust or c for a source directory, or fails.
language_of() {
    local dir="$1"
    if compgen -G "$dir/*.swift" >/dev/null; then
        echo swift
    elif [[ -f "$dir/Cargo.toml" ]] || compgen -G "$dir/*.rs" >/dev/null || compgen -G "$dir/src/*.rs" >/dev/null; then
        echo rust
    elif compgen -G "$dir/*.c" >/dev/null; then
        echo c
    else
        return 1
    fi
}

# build_native DIR OUT NAME LANGUAGE
build_native() {
    local dir="$1" out="$2" name="$3" language="$4" work="$5"
    sdk_runtime
    local objects=() libraries=() source
    if [[ "$language" == swift ]]; then
        "$swiftc" -target "$target" "${swift_embedded[@]}" -module-name "$name" \
            "$sdk"/swift/*.swift "$dir"/*.swift -c -o "$work/$name.o"
        objects+=("$work/$name.o")
        libraries+=("$toolchain/../lib/swift/embedded/$target/libswiftUnicodeDataTables.a")
    fi
    shopt -s nullglob
    for source in "$dir"/*.c; do
        "$clang" "${cflags[@]}" -c "$source" -o "$work/$(basename "${source%.c}").o"
        objects+=("$work/$(basename "${source%.c}").o")
    done
    shopt -u nullglob
    link_elf "$out" "${objects[@]}" "${runtime_objects[@]}" "${libraries[@]}"
}

# --- Wasm ---

wasm_sysroot=/usr
wasm_rt_include=/usr/src/wasm2c
wasm_builtins=""
wasm_tools() {
    [[ -z "$wasm_builtins" ]] || return 0
    local missing=()
    command -v wasm2c >/dev/null || missing+=(wabt)
    [[ -f "$wasm_rt_include/wasm-rt.h" ]] || missing+=(wabt)
    [[ -f "$wasm_sysroot/lib/wasm32-wasi/libc.a" ]] || missing+=(wasi-libc)
    wasm_builtins="$(ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a 2>/dev/null | tail -n 1 || true)"
    [[ -n "$wasm_builtins" ]] || missing+=(libclang-rt-dev-wasm32)
    if (( ${#missing[@]} > 0 )); then
        die "Wasm guests need Debian's $(printf '%s ' "${missing[@]}" | sort -u | xargs): apt-get install wabt wasi-libc libclang-rt-dev-wasm32"
    fi
}

# The module's own stack: placed first in linear memory, so overflowing it
# leaves memory (an out-of-bounds trap) instead of overwriting data.
wasm_stack=$((256 << 10))
wasm_cflags=(
    --target=wasm32-wasi --sysroot="$wasm_sysroot" -std=gnu11 -O2
    -Wall -Wextra -Werror -I "$sdk/include" -I "$abi_include"
)
wasm_ldflags=(
    -mexec-model=reactor -nodefaultlibs
    -Wl,--stack-first -Wl,-z,stack-size="$wasm_stack"
)

# build_wasm_module DIR OUT.wasm NAME LANGUAGE WORK: C or Swift to wasm32,
# with the guest SDK inside the module and wasi-libc.
build_wasm_module() {
    local dir="$1" out="$2" name="$3" language="$4" work="$5"
    wasm_tools
    local objects=() libraries=() source object
    for source in "$sdk/wasm/guest/sdk.c" "$sdk/c/json.c"; do
        object="$work/sdk-$(basename "${source%.c}").wasm.o"
        "$clang" "${wasm_cflags[@]}" -c "$source" -o "$object"
        objects+=("$object")
    done
    if [[ "$language" == swift ]]; then
        "$swiftc" -target wasm32-unknown-none-wasm "${swift_embedded[@]}" -module-name "$name" \
            "$sdk"/swift/*.swift "$dir"/*.swift -c -o "$work/$name.wasm.o"
        objects+=("$work/$name.wasm.o")
        libraries+=("$toolchain/../lib/swift/embedded/wasm32-unknown-none-wasm/libswiftUnicodeDataTables.a")
    fi
    shopt -s nullglob
    for source in "$dir"/*.c; do
        object="$work/$(basename "${source%.c}").wasm.o"
        "$clang" "${wasm_cflags[@]}" -c "$source" -o "$object"
        objects+=("$object")
    done
    shopt -u nullglob
    "$clang" "${wasm_cflags[@]}" "${wasm_ldflags[@]}" "${objects[@]}" "${libraries[@]}" \
        -lc "$wasm_builtins" -o "$out"
}

wasm_runtime_objects=()
wasm_runtime() {
    (( ${#wasm_runtime_objects[@]} == 0 )) || return 0
    mkdir -p "$obj/sdk-wasm"
    local source object
    for source in "$sdk"/wasm/*.c; do
        object="$obj/sdk-wasm/$(basename "${source%.c}").o"
        if ! up_to_date "$object" "$source" "$sdk/include" "$sdk/wasm/include" "$abi_include" guests/build.sh; then
            "$clang" "${cflags[@]}" -I "$sdk/wasm/include" -I "$wasm_rt_include" \
                -DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0 -DWASM_RT_USE_STACK_DEPTH_COUNT=0 -c "$source" -o "$object"
        fi
        wasm_runtime_objects+=("$object")
    done
}

# The imports the runtime provides (hl_wasm_imports.h declares them).
supported_imports="$(sed -n 's/.* Z_\([a-z_0-9]*\)Z_\([a-z_0-9]*\)(.*/\1.\2/p' "$sdk/wasm/include/hl_wasm_imports.h" | sort -u)"

# build_from_wasm MODULE.wasm OUT.elf WORK: wasm2c, the glue that describes
# the module to the runtime, and a native link with the SDK.
build_from_wasm() {
    local module="$1" out="$2" work="$3"
    wasm_tools
    sdk_runtime
    wasm_runtime
    [[ "$(head -c 4 "$module" | od -An -tx1 | tr -d ' \n')" == 0061736d ]] ||
        die "$module is not a Wasm module (no \\0asm magic)"
    wasm2c "$module" -n guest -o "$work/guest.c"

    # Imports: only what the runtime provides.
    local imports unsupported
    imports="$(sed -n "s|^/\* import: '\(.*\)' '\(.*\)' \*/$|\1.\2|p" "$work/guest.h" | sort -u)"
    unsupported="$(comm -23 <(echo "$imports") <(echo "$supported_imports") | grep -v '^$' || true)"
    if [[ -n "$unsupported" ]]; then
        die "$module imports what the runtime does not provide: $(echo $unsupported); see guests/README.md, \"The Wasm ABI\""
    fi

    # The stack check replaces wasm2c's (empty, without a depth counter)
    # function prologue; exactly one such line is expected.
    if [[ "$(grep -c '^#define FUNC_PROLOGUE$' "$work/guest.c")" != 1 ]]; then
        die "wasm2c $(wasm2c --version) writes code this runtime does not know (built for wabt 1.0.32)"
    fi
    sed -i 's/^#define FUNC_PROLOGUE$/#define FUNC_PROLOGUE HL_WASM_STACK_CHECK();/' "$work/guest.c"

    awk -f "$sdk/wasm/glue.awk" "$work/guest.h" > "$work/glue.c"
    grep -q '^#define HL_WASM_HAS_MEMORY 1' "$work/glue.c" ||
        die "$module exports no memory named \"memory\"; see guests/README.md, \"The Wasm ABI\""

    local generated_flags=(
        "${base_cflags[@]}" -fno-math-errno -w
        -DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0 -DWASM_RT_USE_STACK_DEPTH_COUNT=0
        -I "$sdk/wasm/include" -I "$wasm_rt_include" -I "$work" -include hl_wasm.h
    )
    "$clang" "${generated_flags[@]}" -c "$work/guest.c" -o "$work/guest.o"
    # The glue includes the runtime's import declarations after the
    # module's: an import declared with other types does not compile.
    "$clang" "${base_cflags[@]}" -Wall -Werror -DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0 -DWASM_RT_USE_STACK_DEPTH_COUNT=0 \
        -I "$sdk/wasm/include" -I "$wasm_rt_include" -I "$work" -c "$work/glue.c" -o "$work/glue.o" ||
        die "$module imports a function with other types than the runtime's (above; $sdk/wasm/include/hl_wasm_imports.h has them)"
    link_elf "$out" "$work/guest.o" "$work/glue.o" "${wasm_runtime_objects[@]}" "${runtime_objects[@]}"
}

# --- one guest ---

# build_guest SOURCE OUT NAME WASM WORK
build_guest() {
    local source="$1" out="$2" name="$3" through_wasm="$4" work="$5"
    if [[ -f "$source" ]]; then
        [[ "$source" == *.wasm ]] || die "$source: SOURCE is a directory of sources or a .wasm module"
        build_from_wasm "$source" "$out" "$work"
        echo "wasm"
        return
    fi
    [[ -d "$source" ]] || die "$source is neither a directory nor a .wasm module"
    local language
    language="$(language_of "$source")" || die "$source holds no .swift, .rs or .c files"
    if [[ "$language" == rust ]]; then
        (( through_wasm == 0 )) || die "--wasm builds C and Swift guests; a Rust guest is built natively"
        [[ -x "$sdk/rust/build.sh" ]] || die "Rust guests need guests/sdk/rust/build.sh, which this checkout lacks"
        "$sdk/rust/build.sh" "$source" "$out" >&2
        echo "rust"
        return
    fi
    if (( through_wasm )); then
        build_wasm_module "$source" "$work/$name.wasm" "$name" "$language" "$work"
        build_from_wasm "$work/$name.wasm" "$out" "$work"
        echo "$language via wasm"
    else
        build_native "$source" "$out" "$name" "$language" "$work"
        echo "$language"
    fi
}

# A module name for Swift: the directory's name, as an identifier.
module_name() {
    local name
    name="$(basename "${1%.wasm}" | tr -c 'A-Za-z0-9_\n' '_')"
    [[ "$name" =~ ^[A-Za-z_] ]] || name="guest_$name"
    echo "$name"
}

if [[ -n "$source_path" ]]; then
    work="$(mktemp -d "${TMPDIR:-/tmp}/hl-guest-build.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    how="$(build_guest "${source_path%/}" "$output" "$(module_name "${source_path%/}")" "$wasm" "$work")"
    echo "built $output ($how, $(wc -c < "$output") bytes)"
    exit 0
fi

# --- every example ---

# What every example depends on besides its own files.
shared_inputs=(guests/build.sh "$sdk" "$abi_include")
built=0
skipped=0
for dir in guests/examples/*/; do
    dir="${dir%/}"
    name="$(basename "$dir")"
    language="$(language_of "$dir")" || continue
    # Without a rustc (the container image's build stage) a Rust example is
    # skipped, loudly; the tests that run it fail where KVM and the guests
    # are required.
    if [[ "$language" == rust ]] && ! command -v rustc >/dev/null && [[ ! -x "$HOME/.cargo/bin/rustc" ]]; then
        echo "build.sh: skipping $name (Rust): no rustc on PATH or in ~/.cargo/bin" >&2
        continue
    fi
    out="$build/$name.elf"
    if up_to_date "$out" "$dir" "${shared_inputs[@]}"; then
        skipped=$((skipped + 1))
        continue
    fi
    through_wasm=0
    [[ "$name" == *_wasm ]] && through_wasm=1
    rm -rf "${obj:?}/$name"
    mkdir -p "$obj/$name"
    how="$(build_guest "$dir" "$out" "$name" "$through_wasm" "$obj/$name")"
    echo "built $out ($how, $(wc -c < "$out") bytes)"
    built=$((built + 1))
done

if (( built + skipped == 0 )); then
    die "no guests found under guests/examples"
fi
if (( skipped > 0 )); then
    echo "$skipped up-to-date guests not rebuilt"
fi
