//! `make test`'s build holds no benchmark-only crate: criterion is an
//! optional dependency behind the `bench` feature, never a dev-dependency
//! (which `cargo test` would build), and the benchmark needs the feature.

#[test]
fn criterion_is_out_of_the_test_build() {
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).expect("Cargo.toml");
    let mut section = String::new();
    let mut seen = false;
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
            continue;
        }
        if line.starts_with("criterion") {
            seen = true;
            assert_eq!(section, "[dependencies]", "criterion belongs in [dependencies], optional");
            assert!(line.contains("optional = true"), "criterion must be optional: {line}");
        }
    }
    assert!(seen, "criterion is the benchmarks' dependency");
    assert!(toml.contains("bench = [\"dep:criterion\"]"), "the bench feature turns criterion on");
    assert!(toml.contains("required-features = [\"bench\"]"), "the benchmark needs the bench feature");
}
