//! What tokens cost, for agents that report tokens but no cost.
//!
//! There is no built-in table: prices change, differ by contract and by provider, and a stale
//! price would book wrong numbers silently. Operators configure them; without one, a usage
//! simply has no cost.

use std::collections::BTreeMap;

use crate::Usage;

/// The price of one model, in US dollars per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
    /// Reading from the prompt cache; `None` charges cache reads at the input price (an upper
    /// bound: providers charge less).
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    /// Writing to the prompt cache; `None` charges cache writes at the input price.
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
}

impl Price {
    /// What `usage` costs at this price, in US dollars.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let per_token = |tokens: u64, per_mtok: f64| tokens as f64 * per_mtok / 1_000_000.0;
        per_token(usage.input_tokens, self.input_per_mtok)
            + per_token(usage.output_tokens, self.output_per_mtok)
            + per_token(
                usage.cache_read_tokens,
                self.cache_read_per_mtok.unwrap_or(self.input_per_mtok),
            )
            + per_token(
                usage.cache_write_tokens,
                self.cache_write_per_mtok.unwrap_or(self.input_per_mtok),
            )
    }
}

/// Prices by model name. A key matches a model exactly, or as a prefix of it: the key
/// `claude-sonnet-4` prices `claude-sonnet-4-5-20250929`, and the longest matching prefix wins.
/// The empty key is a prefix of every name, so it works as a default price.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Prices(pub BTreeMap<String, Price>);

impl Prices {
    /// The price for `model`: the exact entry, else the entry with the longest key that is a
    /// prefix of `model`.
    pub fn get(&self, model: &str) -> Option<&Price> {
        if let Some(price) = self.0.get(model) {
            return Some(price);
        }
        self.0
            .iter()
            .filter(|(key, _)| model.starts_with(key.as_str()))
            .max_by_key(|(key, _)| key.len())
            .map(|(_, price)| price)
    }

    /// What `usage` costs, or `None` when it names no model or its model has no price.
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        let model = usage.model.as_deref()?;
        self.get(model).map(|price| price.cost(usage))
    }
}

impl From<BTreeMap<String, Price>> for Prices {
    fn from(prices: BTreeMap<String, Price>) -> Self {
        Self(prices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: f64) -> Price {
        Price {
            input_per_mtok: input,
            output_per_mtok: output,
            cache_read_per_mtok: None,
            cache_write_per_mtok: None,
        }
    }

    fn prices() -> Prices {
        Prices(BTreeMap::from([
            ("claude".to_owned(), price(1.0, 1.0)),
            ("claude-sonnet-4".to_owned(), price(3.0, 15.0)),
            ("claude-sonnet-4-5".to_owned(), price(4.0, 16.0)),
            ("gpt-5".to_owned(), price(1.25, 10.0)),
            ("gpt-5-mini".to_owned(), price(0.25, 2.0)),
        ]))
    }

    fn usage(model: &str, input: u64, output: u64) -> Usage {
        Usage {
            model: Some(model.to_owned()),
            input_tokens: input,
            output_tokens: output,
            ..Usage::default()
        }
    }

    #[test]
    fn an_exact_match_wins() {
        assert_eq!(prices().get("gpt-5"), Some(&price(1.25, 10.0)));
        assert_eq!(prices().get("gpt-5-mini"), Some(&price(0.25, 2.0)));
    }

    #[test]
    fn the_longest_prefix_wins() {
        assert_eq!(
            prices().get("claude-sonnet-4-5-20250929"),
            Some(&price(4.0, 16.0))
        );
        assert_eq!(
            prices().get("claude-sonnet-4-20250514"),
            Some(&price(3.0, 15.0))
        );
        assert_eq!(prices().get("claude-opus-4-1"), Some(&price(1.0, 1.0)));
        assert_eq!(prices().get("gpt-5-mini-2025"), Some(&price(0.25, 2.0)));
    }

    #[test]
    fn a_name_matched_by_nothing_has_no_price() {
        assert_eq!(prices().get("gemini-2.5-pro"), None);
        assert_eq!(prices().get("gpt-4o"), None);
        assert_eq!(prices().cost(&usage("gemini-2.5-pro", 10, 10)), None);
    }

    #[test]
    fn the_empty_key_is_a_default() {
        let mut prices = prices();
        prices.0.insert(String::new(), price(2.0, 8.0));
        assert_eq!(prices.get("gemini-2.5-pro"), Some(&price(2.0, 8.0)));
        assert_eq!(prices.get("gpt-5"), Some(&price(1.25, 10.0)));
    }

    #[test]
    fn the_default_table_is_empty() {
        assert_eq!(Prices::default().cost(&usage("gpt-5", 1_000_000, 0)), None);
    }

    #[test]
    fn a_usage_without_a_model_has_no_cost() {
        let usage = Usage {
            input_tokens: 1_000,
            ..Usage::default()
        };
        assert_eq!(prices().cost(&usage), None);
    }

    #[test]
    fn cost_is_per_million_tokens() {
        let cost = prices()
            .cost(&usage("claude-sonnet-4-20250514", 2_000_000, 100_000))
            .unwrap();
        assert_eq!(cost, 6.0 + 1.5);
    }

    #[test]
    fn cache_tokens_use_their_own_price_or_the_input_price() {
        let usage = Usage {
            model: Some("m".to_owned()),
            cache_read_tokens: 1_000_000,
            cache_write_tokens: 1_000_000,
            ..Usage::default()
        };
        let plain = price(3.0, 15.0);
        assert_eq!(plain.cost(&usage), 6.0);
        let cached = Price {
            cache_read_per_mtok: Some(0.25),
            cache_write_per_mtok: Some(3.75),
            ..plain
        };
        assert_eq!(cached.cost(&usage), 4.0);
    }

    #[test]
    fn prices_read_from_configuration_reject_unknown_keys() {
        let ok: Prices =
            serde_json::from_str(r#"{"gpt-5": {"input_per_mtok": 1.25, "output_per_mtok": 10.0}}"#)
                .unwrap();
        assert_eq!(ok.get("gpt-5"), Some(&price(1.25, 10.0)));
        let err = serde_json::from_str::<Prices>(
            r#"{"gpt-5": {"input_per_mtok": 1.25, "output_per_mtok": 10.0, "input": 1}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `input`"), "{err}");
    }
}
