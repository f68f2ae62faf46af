//! The README's program is `examples/quickstart.rs`, and the crate page
//! shows that file: this test keeps the three the same text, so the program
//! a new user copies from the README is the one `cargo test` compiles and
//! runs (README.md's blocks are also doc-tested through `src/lib.rs`).

/// The first ```rust block of the README.
fn readme_program() -> &'static str {
    let readme = include_str!("../README.md");
    let start = readme.find("```rust\n").expect("README.md has a rust block") + "```rust\n".len();
    let end = start + readme[start..].find("```").expect("the rust block ends");
    &readme[start..end]
}

#[test]
fn the_readme_program_is_examples_quickstart() {
    let example = include_str!("../examples/quickstart.rs");
    // The example opens with comments saying what it is; the program follows.
    let program_start = example.find("use ").expect("the example has a use line");
    assert_eq!(readme_program(), &example[program_start..], "README.md's program and examples/quickstart.rs differ");
}
