//! Support code of the conformance suite that is also a tool on its own: the load generator
//! (`src/bin/loadgen.rs`). The black-box tests themselves live in `tests/`.

pub mod loadgen;
