//! Builds the C shim (the variadic and cancellation-point entry points that
//! stable Rust cannot define) and limits the cdylib's exports to the symbols
//! listed in `shim/exports.map`, so no Rust symbol leaks into programs.

fn main() {
    println!("cargo:rerun-if-changed=shim/shim.c");
    println!("cargo:rerun-if-changed=shim/exports.map");
    cc::Build::new()
        .file("shim/shim.c")
        // pthread_cancel unwinds through the retry loop: unwind tables, and
        // no -fexceptions, so glibc's setjmp-based cleanup handlers are used
        // and no personality routine is needed (see WAIT_LOOP).
        .flag("-fasynchronous-unwind-tables")
        .flag("-fno-exceptions")
        .flag("-fvisibility=hidden")
        .define("QNXCOMPAT_VERSION", format!("\"{}\"", std::env::var("CARGO_PKG_VERSION").unwrap_or_default()).as_str())
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
    // A SONAME, and an entry point for when the library is run as a
    // program (shim.c: it prints its version and a usage line).
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libqnxcompat.so");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-e,qnxcompat_run_as_program");
    // The unwinder linked in statically (libgcc_eh), so that the library
    // does not need libgcc_s.so: loading it costs every preloaded process
    // start about 120 us (ld.so work and its CPU-feature constructor).
    // Panics abort; unwinding happens only for pthread_cancel through the
    // shim, driven by glibc.
    if let Ok(o) = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .arg("-print-file-name=libgcc_eh.a")
        .output()
    {
        let p = String::from_utf8_lossy(&o.stdout).trim().to_string();
        if let Some(d) = std::path::Path::new(&p).parent().filter(|_| p.starts_with('/')) {
            println!("cargo:rustc-link-search=native={}", d.display());
            println!("cargo:rustc-link-lib=static:-bundle=gcc_eh");
        }
    }
    for sym in ["fcntl", "fcntl64", "__fcntl", "lockf", "lockf64", "flock"] {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--undefined={sym}");
    }
}
