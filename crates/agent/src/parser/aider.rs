//! Aider's plain-text output (aider/coders/base_coder.py, aider/utils.py).
//!
//! After each exchange with the model Aider prints a report:
//!
//! ```text
//! Tokens: 12k sent, 2.0k cache write, 8.5k cache hit, 1.1k received. Cost: $0.02 message, $0.09 session.
//! ```
//!
//! Counts under 1,000 are printed whole, under 10,000 with one decimal and a `k`, above that
//! rounded to thousands (`12k`); older releases printed `4,200` and said `request` for
//! `message`. The cache parts appear only when non-zero, the cost only when Aider knows the
//! model's price. The counts are those since the previous report: a delta. `sent` includes the
//! cache writes Aider adds to it and the cache hits the provider counts in the prompt, so they
//! are taken out of the input here.
//!
//! Cost: the message cost is the delta Aider means, but it is printed rounded to cents, so a sum
//! of message costs drifts from the truth; the growth of the session cost (rounded too, but
//! cumulative) adds up exactly to the last session figure. It is used when present, the message
//! cost otherwise.
//!
//! `Applied edit to <path>` lines are progress; `Main model: <name> with …` names the model.
//! Everything else, the model's reply included, is output.

use super::meter::Meter;
use super::text;
use super::{AgentEvent, Parser, Usage};

#[derive(Debug)]
pub(crate) struct Aider {
    meter: Meter,
    model: Option<String>,
    /// The last session cost reported, in US dollars.
    session_cost: f64,
}

impl Aider {
    pub(crate) fn new(meter: Meter) -> Self {
        let model = meter.model().map(str::to_owned);
        Self {
            meter,
            model,
            session_cost: 0.0,
        }
    }

    fn report(&mut self, report: &Report) -> Option<AgentEvent> {
        let cost = match (report.session_cost, report.message_cost) {
            (Some(session), _) => {
                let growth = (session - self.session_cost).max(0.0);
                self.session_cost = session;
                Some(growth)
            }
            (None, message) => message,
        };
        let cache = report.cache_write.saturating_add(report.cache_hit);
        self.meter.delta(Usage {
            model: self.model.clone(),
            input_tokens: report.sent.saturating_sub(cache),
            output_tokens: report.received,
            cache_read_tokens: report.cache_hit,
            cache_write_tokens: report.cache_write,
            cost_usd: cost,
        })
    }
}

impl Parser for Aider {
    fn line(&mut self, line: &str) -> Vec<AgentEvent> {
        let trimmed = line.trim();
        if let Some(report) = trimmed.strip_prefix("Tokens: ").and_then(Report::parse) {
            return self.report(&report).into_iter().collect();
        }
        if let Some(path) = trimmed.strip_prefix("Applied edit to ") {
            return text::progress(&format!("Edit {path}"))
                .into_iter()
                .collect();
        }
        let model_line = trimmed
            .strip_prefix("Main model: ")
            .or_else(|| trimmed.strip_prefix("Model: "));
        if let Some(rest) = model_line {
            let name = rest.split(" with ").next().unwrap_or(rest).trim();
            if !name.is_empty() {
                self.model = Some(name.to_owned());
            }
        }
        vec![text::output(line)]
    }

    fn finish(&mut self) -> Vec<AgentEvent> {
        Vec::new()
    }
}

/// One `Tokens:` report.
#[derive(Debug, Default, PartialEq)]
struct Report {
    sent: u64,
    cache_write: u64,
    cache_hit: u64,
    received: u64,
    message_cost: Option<f64>,
    session_cost: Option<f64>,
}

impl Report {
    /// Parses what follows `Tokens: `; `None` unless both `sent` and `received` are there.
    fn parse(text: &str) -> Option<Self> {
        let (tokens, costs) = match text.split_once(" Cost: ") {
            Some((tokens, costs)) => (tokens, Some(costs)),
            None => (text, None),
        };
        let mut report = Self::default();
        let (mut sent, mut received) = (None, None);
        for part in tokens.trim_end_matches('.').split(", ") {
            let (number, label) = part.trim().split_once(' ')?;
            let number = tokens_count(number)?;
            match label {
                "sent" => sent = Some(number),
                "received" => received = Some(number),
                "cache write" => report.cache_write = number,
                "cache hit" => report.cache_hit = number,
                _ => return None,
            }
        }
        report.sent = sent?;
        report.received = received?;
        for part in costs
            .into_iter()
            .flat_map(|costs| costs.trim_end_matches('.').split(", "))
        {
            let Some((amount, label)) = part.trim().split_once(' ') else {
                continue;
            };
            let Some(amount) = amount
                .strip_prefix('$')
                .and_then(|amount| amount.parse().ok())
            else {
                continue;
            };
            match label {
                "message" | "request" => report.message_cost = Some(amount),
                "session" => report.session_cost = Some(amount),
                _ => {}
            }
        }
        Some(report)
    }
}

/// `812`, `4,200`, `4.2k`, `12k`, `1.5M`.
fn tokens_count(text: &str) -> Option<u64> {
    let (number, scale) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 1e3),
        'M' | 'm' => (&text[..text.len() - 1], 1e6),
        'B' | 'b' => (&text[..text.len() - 1], 1e9),
        _ => (text, 1.0),
    };
    let number: String = number.chars().filter(|c| *c != ',').collect();
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    // Counts are whole tokens; the float only carries the printed decimal.
    Some((value * scale).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_suffixes_and_separators() {
        assert_eq!(tokens_count("812"), Some(812));
        assert_eq!(tokens_count("4,200"), Some(4_200));
        assert_eq!(tokens_count("4.2k"), Some(4_200));
        assert_eq!(tokens_count("12k"), Some(12_000));
        assert_eq!(tokens_count("1.5M"), Some(1_500_000));
        assert_eq!(tokens_count("k"), None);
        assert_eq!(tokens_count("-3"), None);
        assert_eq!(tokens_count("lots"), None);
    }

    #[test]
    fn a_full_report() {
        let report = Report::parse(
            "12k sent, 2.0k cache write, 8.5k cache hit, 1.1k received. Cost: $0.02 message, $0.09 session.",
        );
        assert_eq!(
            report,
            Some(Report {
                sent: 12_000,
                cache_write: 2_000,
                cache_hit: 8_500,
                received: 1_100,
                message_cost: Some(0.02),
                session_cost: Some(0.09),
            })
        );
    }

    #[test]
    fn a_report_without_cost() {
        let report = Report::parse("116 sent, 30 received.").unwrap();
        assert_eq!((report.sent, report.received), (116, 30));
        assert_eq!((report.message_cost, report.session_cost), (None, None));
    }

    #[test]
    fn an_old_style_report() {
        let report =
            Report::parse("4,200 sent, 1,100 received. Cost: $0.02 request, $0.09 session.")
                .unwrap();
        assert_eq!((report.sent, report.received), (4_200, 1_100));
        assert_eq!(report.message_cost, Some(0.02));
    }

    #[test]
    fn prose_after_tokens_is_not_a_report() {
        assert_eq!(Report::parse("are the unit of billing."), None);
        assert_eq!(Report::parse("4.2k sent."), None);
    }
}
