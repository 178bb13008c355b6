//! A dated price table for the common OpenAI and Anthropic models, online and batch rates, so
//! that a dollar budget guards something before a user types a price.
//!
//! Prices change; the table says when it was compiled ([`PRICES_AS_OF`]) and a config's
//! `price_*` keys override it. A model the table does not know has no price: the run shows its
//! cost as unknown and refuses a dollar budget until the config gives one — never $0.

use crate::teacher::Pricing;

/// When the table was compiled from the providers' pricing pages.
pub const PRICES_AS_OF: &str = "2025-11";

/// Both providers' batch APIs bill half the online rate.
pub const BATCH_DISCOUNT: f64 = 0.5;

/// (provider, model id prefix, input $/Mtok, output $/Mtok), online rates; the batch rate is
/// [`BATCH_DISCOUNT`] of each.
const TABLE: &[(&str, &str, f64, f64)] = &[
    ("openai", "gpt-5", 1.25, 10.00),
    ("openai", "gpt-5-mini", 0.25, 2.00),
    ("openai", "gpt-5-nano", 0.05, 0.40),
    ("openai", "gpt-4.1", 2.00, 8.00),
    ("openai", "gpt-4.1-mini", 0.40, 1.60),
    ("openai", "gpt-4.1-nano", 0.10, 0.40),
    ("openai", "gpt-4o", 2.50, 10.00),
    ("openai", "gpt-4o-mini", 0.15, 0.60),
    ("openai", "gpt-4-turbo", 10.00, 30.00),
    ("openai", "gpt-3.5-turbo", 0.50, 1.50),
    ("openai", "o1", 15.00, 60.00),
    ("openai", "o3", 2.00, 8.00),
    ("openai", "o3-mini", 1.10, 4.40),
    ("openai", "o4-mini", 1.10, 4.40),
    ("anthropic", "claude-opus-4-5", 5.00, 25.00),
    ("anthropic", "claude-opus-4-1", 15.00, 75.00),
    ("anthropic", "claude-opus-4", 15.00, 75.00),
    ("anthropic", "claude-sonnet-4-5", 3.00, 15.00),
    ("anthropic", "claude-sonnet-4", 3.00, 15.00),
    ("anthropic", "claude-haiku-4-5", 1.00, 5.00),
    ("anthropic", "claude-3-7-sonnet", 3.00, 15.00),
    ("anthropic", "claude-3-5-sonnet", 3.00, 15.00),
    ("anthropic", "claude-3-5-haiku", 0.80, 4.00),
    ("anthropic", "claude-3-haiku", 0.25, 1.25),
    ("anthropic", "claude-3-opus", 15.00, 75.00),
];

/// The table's price of `model` at `provider` (`"openai"` or `"anthropic"`), online and batch.
///
/// A model id matches an entry that is its whole name, or its name plus a dated snapshot
/// (`gpt-4o-mini-2024-07-18`, `claude-3-5-haiku-20241022`) or `-latest`; the longest such entry
/// wins. Anything else (`gpt-4o-audio-preview`, `claude-opus-4-7`) is unknown rather than
/// priced as a cousin.
pub fn lookup(provider: &str, model: &str) -> Option<Pricing> {
    TABLE
        .iter()
        .filter(|(p, name, _, _)| *p == provider && is_snapshot_of(model, name))
        .max_by_key(|(_, name, _, _)| name.len())
        .map(|&(_, _, input, output)| Pricing::with_batch_discount(input, output))
}

fn is_snapshot_of(model: &str, name: &str) -> bool {
    let Some(rest) = model.strip_prefix(name) else {
        return false;
    };
    let Some(tail) = rest.strip_prefix('-') else {
        return rest.is_empty();
    };
    tail == "latest" || tail.bytes().take_while(u8::is_ascii_digit).count() >= 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_snapshots_match_and_cousins_do_not() {
        let p = |prov, m| lookup(prov, m).map(|p| (p.input_per_mtok, p.output_per_mtok));
        assert_eq!(p("openai", "gpt-4o-mini"), Some((0.15, 0.60)));
        assert_eq!(p("openai", "gpt-4o-mini-2024-07-18"), Some((0.15, 0.60)));
        assert_eq!(p("openai", "gpt-4o-2024-08-06"), Some((2.50, 10.00)));
        assert_eq!(p("openai", "gpt-4o-audio-preview"), None);
        assert_eq!(
            p("anthropic", "claude-3-5-haiku-20241022"),
            Some((0.80, 4.00))
        );
        assert_eq!(
            p("anthropic", "claude-3-5-haiku-latest"),
            Some((0.80, 4.00))
        );
        assert_eq!(
            p("anthropic", "claude-opus-4-1-20250805"),
            Some((15.0, 75.0))
        );
        assert_eq!(
            p("anthropic", "claude-opus-4-5-20251101"),
            Some((5.0, 25.0))
        );
        // a version the table does not list is not priced as its older sibling
        assert_eq!(p("anthropic", "claude-opus-4-7"), None);
        // the provider matters: an OpenAI-compatible server named like a Claude model
        assert_eq!(p("openai", "claude-3-haiku"), None);
        assert_eq!(p("openai", "Qwen/Qwen2.5-7B-Instruct"), None);
        let b = lookup("openai", "gpt-4o-mini").unwrap();
        assert_eq!(
            (b.batch_input_per_mtok, b.batch_output_per_mtok),
            (0.075, 0.30)
        );
    }
}
