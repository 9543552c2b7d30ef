//! Builds the C shim (the variadic and cancellation-point entry points that
//! stable Rust cannot define) and limits the cdylib's exports to the symbols
//! listed in `shim/exports.map`, so no Rust symbol leaks into programs.

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/exports.map");
    cc::Build::new()
        .file("shim/shim.c")
        .flag("-fexceptions") // pthread_cancel unwinds through the retry loop
        .flag("-fvisibility=hidden")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .cargo_metadata(false) // only the cdylib links the shim: test binaries must not interpose
        .compile("qnxcompat_shim");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--whole-archive");
    println!("cargo:rustc-cdylib-link-arg={out}/libqnxcompat_shim.a");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--no-whole-archive");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/shim/exports.map");
    for sym in ["fcntl", "fcntl64", "__fcntl", "lockf", "lockf64", "flock"] {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--undefined={sym}");
    }
}
