//! Usage bookkeeping shared by the parsers, so that every agent's usage reaches the ledger as
//! deltas that add up to what the agent consumed, and nothing is counted twice.

use super::{AgentEvent, ParserOptions, Usage};

/// Costs are rounded to a billionth of a dollar, so that a sum of deltas does not drift from
/// the totals the agent printed by a float's last bits.
fn round_cost(cost: f64) -> f64 {
    (cost * 1e9).round() / 1e9
}

/// What a parser has already reported, and how to price what it has not.
#[derive(Debug)]
pub(crate) struct Meter {
    options: ParserOptions,
    tokens: Usage,
    cost: f64,
}

impl Meter {
    pub(crate) fn new(options: ParserOptions) -> Self {
        Self {
            options,
            tokens: Usage::default(),
            cost: 0.0,
        }
    }

    /// The model the agent was asked for, if the caller said.
    pub(crate) fn model(&self) -> Option<&str> {
        self.options.model.as_deref()
    }

    /// Usage consumed since the last report. Its model defaults to the one the agent was asked
    /// for; a missing cost is estimated from the prices. `None` when there is nothing to report.
    pub(crate) fn delta(&mut self, mut usage: Usage) -> Option<AgentEvent> {
        if usage.model.is_none() {
            usage.model = self.options.model.clone();
        }
        if usage.cost_usd.is_none() {
            usage.cost_usd = self.options.prices.cost(&usage);
        }
        usage.cost_usd = usage.cost_usd.map(round_cost);
        if usage.total_tokens() == 0 && usage.cost_usd.is_none_or(|cost| cost == 0.0) {
            return None;
        }
        self.tokens.input_tokens += usage.input_tokens;
        self.tokens.output_tokens += usage.output_tokens;
        self.tokens.cache_read_tokens += usage.cache_read_tokens;
        self.tokens.cache_write_tokens += usage.cache_write_tokens;
        self.cost += usage.cost_usd.unwrap_or(0.0);
        Some(AgentEvent::Usage(usage))
    }

    /// Totals since the start of the run, as some agents print them: reports what they add to
    /// what was already reported. Token counts never go back (a total below what was reported
    /// adds nothing); a total cost replaces the estimates booked so far, so its delta can be
    /// negative.
    pub(crate) fn total(&mut self, total: Usage) -> Option<AgentEvent> {
        let mut delta = Usage {
            model: total.model,
            input_tokens: total.input_tokens.saturating_sub(self.tokens.input_tokens),
            output_tokens: total
                .output_tokens
                .saturating_sub(self.tokens.output_tokens),
            cache_read_tokens: total
                .cache_read_tokens
                .saturating_sub(self.tokens.cache_read_tokens),
            cache_write_tokens: total
                .cache_write_tokens
                .saturating_sub(self.tokens.cache_write_tokens),
            cost_usd: None,
        };
        if let Some(cost) = total.cost_usd {
            delta.cost_usd = Some(round_cost(cost - self.cost));
        }
        self.delta(delta)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Price, Prices};

    fn usage(input: u64, output: u64, cost: Option<f64>) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
            ..Usage::default()
        }
    }

    fn priced() -> Meter {
        Meter::new(ParserOptions {
            prices: Prices(BTreeMap::from([(
                "m".to_owned(),
                Price {
                    input_per_mtok: 1.0,
                    output_per_mtok: 2.0,
                    cache_read_per_mtok: None,
                    cache_write_per_mtok: None,
                },
            )])),
            model: Some("m".to_owned()),
        })
    }

    fn reported(event: Option<AgentEvent>) -> Usage {
        match event {
            Some(AgentEvent::Usage(usage)) => usage,
            other => panic!("expected usage, got {other:?}"),
        }
    }

    #[test]
    fn nothing_to_report_is_no_event() {
        let mut meter = Meter::new(ParserOptions::default());
        assert_eq!(meter.delta(Usage::default()), None);
        assert_eq!(meter.delta(usage(0, 0, Some(0.0))), None);
    }

    #[test]
    fn a_delta_gets_the_default_model_and_an_estimated_cost() {
        let usage = reported(priced().delta(usage(1_000_000, 500_000, None)));
        assert_eq!(usage.model.as_deref(), Some("m"));
        assert_eq!(usage.cost_usd, Some(2.0));
    }

    #[test]
    fn a_reported_cost_is_kept() {
        let usage = reported(priced().delta(usage(1_000_000, 0, Some(0.5))));
        assert_eq!(usage.cost_usd, Some(0.5));
    }

    #[test]
    fn totals_report_only_what_is_new() {
        let mut meter = Meter::new(ParserOptions::default());
        reported(meter.delta(usage(100, 10, None)));
        let delta = reported(meter.total(usage(150, 10, None)));
        assert_eq!((delta.input_tokens, delta.output_tokens), (50, 0));
        assert_eq!(meter.total(usage(150, 10, None)), None);
    }

    #[test]
    fn a_total_below_what_was_reported_adds_nothing() {
        let mut meter = Meter::new(ParserOptions::default());
        reported(meter.delta(usage(100, 10, None)));
        assert_eq!(meter.total(usage(90, 5, None)), None);
    }

    #[test]
    fn a_total_cost_replaces_earlier_estimates() {
        let mut meter = priced();
        assert_eq!(
            reported(meter.delta(usage(1_000_000, 0, None))).cost_usd,
            Some(1.0)
        );
        let correction = reported(meter.total(usage(1_000_000, 0, Some(0.75))));
        assert_eq!(correction.total_tokens(), 0);
        assert_eq!(correction.cost_usd, Some(-0.25));
    }

    #[test]
    fn cost_deltas_add_up_to_the_total_exactly() {
        let mut meter = Meter::new(ParserOptions::default());
        let first = reported(meter.total(usage(1, 0, Some(0.02))));
        let second = reported(meter.total(usage(2, 0, Some(0.09))));
        assert_eq!(first.cost_usd, Some(0.02));
        assert_eq!(second.cost_usd, Some(0.07));
    }
}
