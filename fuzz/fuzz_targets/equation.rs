//! The equation evaluator over arbitrary text (deep nesting, huge numbers): no panic, no
//! unbounded recursion; spaces around tokens do not change a value.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mentor_core::equation::{evaluate, values_match};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let a = evaluate(&text);
    let spaced: String = text.chars().flat_map(|c| if "+-*/()".contains(c) { vec![' ', c, ' '] } else { vec![c] }).collect();
    if let (Ok(x), Ok(y)) = (&a, evaluate(&spaced)) {
        assert!(values_match(*x, y) || (x.is_nan() && y.is_nan()), "{text:?}: {x} vs {y}");
    }
});
