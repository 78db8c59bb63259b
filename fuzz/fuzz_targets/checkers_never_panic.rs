//! Fuzz target for [`converge::props::checkers_never_panic`]; `tests/fuzz_corpus.rs`
//! replays its corpus and crash files through the same function.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| converge::props::checkers_never_panic(data));
