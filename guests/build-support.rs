//! Builds guests for `wasm32-wasip2` from a build script: one nested cargo for
//! all of them, in its own target directory inside `OUT_DIR` (the outer build
//! holds the lock on the workspace's), with the host's compiler flags and
//! wrappers removed. A failure stops the build, with cargo's own output.
//!
//! For each package `name`, `OUT_DIR/<name>.wasm` holds the component and
//! `OUT_DIR/guests.rs` defines `pub const <NAME>: &[u8]` with its bytes, and
//! a macro `foreach_built_guest!(m)` that calls `m!(name)` for each guest, so
//! tests can make the compiler check that every guest has one.
//! Included by `hermes-builtins/build.rs` and `tests/build.rs`.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

pub fn build_guests(packages: &[&str]) {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("crates live one level below the workspace root");
    let target_dir = out_dir.join("guest-target");

    check_target_installed();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args([
            "build",
            "--target",
            TARGET,
            "--profile",
            PROFILE,
            "--target-dir",
        ])
        .arg(&target_dir);
    for package in packages {
        cmd.args(["-p", package]);
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build the guests");
    assert!(
        status.success(),
        "building the guests for {TARGET} failed (see cargo's output above)"
    );

    let artifacts = target_dir.join(TARGET).join(PROFILE);
    let mut consts = String::new();
    for package in packages {
        let stem = package.replace('-', "_");
        let built = artifacts.join(format!("{stem}.wasm"));
        let dest = out_dir.join(format!("{stem}.wasm"));
        std::fs::copy(&built, &dest).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
        writeln!(
            consts,
            "pub const {}: &[u8] = include_bytes!({:?});",
            stem.to_uppercase(),
            dest.display().to_string()
        )
        .expect("writing to a string");
        rerun_if_deps_changed(&artifacts.join(format!("{stem}.d")));
    }
    let calls: String = packages
        .iter()
        .map(|p| format!("$m!({});", p.replace('-', "_")))
        .collect();
    writeln!(
        consts,
        "#[macro_export]\nmacro_rules! foreach_built_guest {{ ($m:ident) => {{ {calls} }}; }}"
    )
    .expect("writing to a string");
    std::fs::write(out_dir.join("guests.rs"), consts).expect("cannot write guests.rs");
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        root.join("guests/build-support.rs").display()
    );
    // The contract, named as a directory: the dep-info above lists its files
    // only once a build has read them, and a new file would go unseen.
    println!("cargo:rerun-if-changed={}", root.join("wit").display());
}

/// Fails early, with the fix, when the wasm target's standard library is missing.
fn check_target_installed() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    if let Some(sysroot) = sysroot {
        let lib = Path::new(&sysroot).join("lib/rustlib").join(TARGET);
        assert!(
            lib.exists(),
            "the {TARGET} target is not installed for this toolchain: run `rustup target add {TARGET}`"
        );
    }
}

/// Reruns the build script when any source file of the guest changes, as
/// listed by cargo's dep-info file (which covers the SDK and the WIT too).
fn rerun_if_deps_changed(dep_info: &Path) {
    let Ok(text) = std::fs::read_to_string(dep_info) else {
        return;
    };
    for line in text.lines() {
        let Some((_, deps)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = deps.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    current.push(' ');
                    chars.next();
                }
                ' ' => {
                    if !current.is_empty() {
                        println!("cargo:rerun-if-changed={current}");
                        current.clear();
                    }
                }
                _ => current.push(c),
            }
        }
        if !current.is_empty() {
            println!("cargo:rerun-if-changed={current}");
        }
    }
}
