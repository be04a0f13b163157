#!/usr/bin/env bash
# Builds one crate from Debian's librust-*-dev packages (sources under
# /usr/share/cargo/registry), offline and without cargo, as a no_std rlib
# for a Rust guest: guests/sdk/rust/crates.sh CRATE WORK_DIR RUSTFLAGS...
# Its dependencies are built first; each rlib lands in WORK_DIR as
# libNAME.rlib. Only the crates listed below are known: each needs the cfgs
# its build script would print (for a current rustc) and its no_std
# features, written here by hand.
set -euo pipefail

crate="$1"
work="$2"
shift 2
rustflags=("$@")
registry=/usr/share/cargo/registry

rustc="$(command -v rustc || true)"
[[ -n "$rustc" ]] || rustc="$HOME/.cargo/bin/rustc"

# build NAME DEBIAN_PACKAGE [--cfg ... / --extern ...]
build() {
    local name="$1" package="$2"
    shift 2
    [[ -f "$work/lib$name.rlib" ]] && return 0
    local source
    source="$(ls -d "$registry/$name"-[0-9]* 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -z "$source" ]]; then
        echo "crates.sh: crate $name not found under $registry: apt-get install $package" >&2
        exit 1
    fi
    # The crate's own edition (2015 when its Cargo.toml names none).
    local edition
    edition="$(sed -n 's/^edition *= *"\([0-9]*\)".*/\1/p' "$source/Cargo.toml" | head -n 1)"
    # Warnings in a packaged crate are not the guest author's to fix.
    "$rustc" "${rustflags[@]}" --edition "${edition:-2015}" --cap-lints allow --crate-type rlib --crate-name "$name" \
        -L "dependency=$work" "$@" "$source/src/lib.rs" -o "$work/lib$name.rlib"
}

case "$crate" in
serde)
    build serde librust-serde-dev --cfg 'feature="alloc"'
    ;;
serde_json)
    build serde librust-serde-dev --cfg 'feature="alloc"'
    build itoa librust-itoa-dev
    build ryu librust-ryu-dev --cfg integer128 --cfg must_use_return --cfg maybe_uninit
    build serde_json librust-serde-json-dev --cfg 'feature="alloc"' --cfg limb_width_64 \
        --extern "serde=$work/libserde.rlib" --extern "itoa=$work/libitoa.rlib" --extern "ryu=$work/libryu.rlib"
    ;;
*)
    echo "crates.sh: no recipe for crate '$crate' (known: serde, serde_json)" >&2
    exit 1
    ;;
esac
