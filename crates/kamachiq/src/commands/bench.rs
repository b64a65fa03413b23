//! `kamachiq bench`: a generated plan through the real engine and a real store, with durable
//! commits (fsync on), timed from submission to the run's end. Steps are no-ops (engine and
//! store cost only) or real `true` processes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kamachiq_domain::plan::{
    Command as StepCommand, DEFAULT_BACKOFF, DEFAULT_TIMEOUT, Deliverable, Step,
};
use kamachiq_domain::{DeliverableId, Plan, RunState, StepName, TenantId};
use kamachiq_engine::{
    Ending, Engine, EngineOptions, NoopRunner, Parts, ProcessRunner, Runner, SystemClock,
};
use kamachiq_store::Store;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::cli::{BenchArgs, BenchCommand, BenchStep, BenchStore, Shape};
use crate::config::Config;
use crate::{InvalidInput, exit, output};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Debug, Serialize)]
struct Report {
    deliverables: u32,
    shape: String,
    store: String,
    step: String,
    concurrency: u32,
    wall_s: f64,
    submit_s: f64,
    per_second: f64,
    peak_rss_bytes: u64,
}

pub async fn bench(config: &Config, args: &BenchArgs) -> anyhow::Result<u8> {
    if let Some(BenchCommand::Seed { runs, tenant }) = &args.command {
        return seed(config, *runs, tenant).await;
    }
    let n = args.deliverables;
    if !(3..=1_000_000).contains(&n) {
        return Err(InvalidInput::new("--deliverables must be between 3 and 1000000").into());
    }
    let concurrency = args.concurrency.unwrap_or(match args.step {
        BenchStep::Noop => 1024,
        BenchStep::Process => 64,
    });
    if concurrency == 0 {
        return Err(InvalidInput::new("--concurrency must be at least 1").into());
    }
    let plan = generate(args.shape, n)?;
    let scratch = tempfile::Builder::new()
        .prefix("kamachiq-bench-")
        .tempdir()?;
    let (store, schema) = match args.store {
        BenchStore::Sqlite => (
            Store::open_sqlite(&scratch.path().join("bench.db")).await?,
            None,
        ),
        BenchStore::Postgres => {
            let base = match &config.database_url {
                Some(url) if url.starts_with("postgres") => url.clone(),
                _ => DEFAULT_POSTGRES.to_owned(),
            };
            let (store, schema) = postgres_schema(&base).await?;
            (store, Some((base, schema)))
        }
    };
    let runner: Arc<dyn Runner> = match args.step {
        BenchStep::Noop => Arc::new(NoopRunner),
        BenchStep::Process => Arc::new(ProcessRunner::default()),
    };
    let engine = Engine::new(Parts::new(
        store.clone(),
        runner,
        Arc::new(SystemClock),
        EngineOptions::new(scratch.path()),
    ))?;

    let started = Instant::now();
    let run = engine.submit(plan, None, concurrency).await?;
    let submitted = started.elapsed();
    let ending = engine.drive(&run, CancellationToken::new()).await?;
    let wall = started.elapsed();
    let succeeded = store
        .deliverables(&run)
        .await?
        .iter()
        .filter(|d| d.state == kamachiq_domain::DeliverableState::Succeeded)
        .count();
    if ending != Ending::Finished(RunState::Succeeded) || succeeded != n as usize {
        bail!(
            "the benchmark run did not succeed ({ending:?}, {succeeded} of {n} deliverables succeeded)"
        );
    }
    engine.close().await;
    store.close().await;
    if let Some((base, schema)) = schema {
        drop_schema(&base, &schema).await?;
    }

    let report = Report {
        deliverables: n,
        shape: format!("{:?}", args.shape).to_lowercase(),
        store: format!("{:?}", args.store).to_lowercase(),
        step: format!("{:?}", args.step).to_lowercase(),
        concurrency,
        wall_s: round(wall.as_secs_f64()),
        submit_s: round(submitted.as_secs_f64()),
        per_second: round(f64::from(n) / wall.as_secs_f64().max(1e-9)),
        peak_rss_bytes: peak_rss(),
    };
    if args.json {
        output::json(&report);
    } else {
        output::line(format!(
            "{} deliverables, {} shape, {} store, {} steps, {} at once:\n  wall {} (submit {}), {:.0} deliverables/s, peak memory {:.1} MiB",
            report.deliverables,
            report.shape,
            report.store,
            report.step,
            report.concurrency,
            output::duration(wall),
            output::duration(submitted),
            report.per_second,
            report.peak_rss_bytes as f64 / (1024.0 * 1024.0)
        ));
    }
    Ok(exit::OK)
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The process's peak resident memory (VmHWM), in bytes; 0 where /proc is unavailable.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The dependencies of each of `n` deliverables, by position, for `shape`.
pub fn edges(shape: Shape, n: usize) -> Vec<Vec<usize>> {
    match shape {
        Shape::Fanout => (0..n)
            .map(|i| match i {
                0 => vec![],
                i if i == n - 1 => (1..n - 1).collect(),
                _ => vec![0],
            })
            .collect(),
        Shape::Chain => (0..n)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect(),
        Shape::Diamond => {
            let width = (n as f64).sqrt().ceil().max(1.0) as usize;
            (0..n)
                .map(|i| {
                    let (layer, pos) = (i / width, i % width);
                    if layer == 0 {
                        return vec![];
                    }
                    let above = (layer - 1) * width;
                    let mut deps = vec![above + pos];
                    let next = above + (pos + 1) % width;
                    if next != above + pos {
                        deps.push(next);
                    }
                    deps
                })
                .collect()
        }
        Shape::Random => {
            let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            (0..n)
                .map(|i| {
                    let mut deps: Vec<usize> = (0..3.min(i))
                        .map(|_| (next() % i as u64) as usize)
                        .collect();
                    deps.sort_unstable();
                    deps.dedup();
                    deps
                })
                .collect()
        }
    }
}

fn generate(shape: Shape, n: u32) -> anyhow::Result<Plan> {
    let n = n as usize;
    let ids: Vec<DeliverableId> = (0..n)
        .map(|i| DeliverableId::parse(format!("d{i:06}")))
        .collect::<Result<_, _>>()?;
    let step = Step {
        name: StepName::parse("run")?,
        work: kamachiq_domain::plan::Work::Run {
            run: StepCommand::Argv(vec!["true".to_owned()]),
        },
        env: BTreeMap::new(),
        workdir: None,
        timeout: DEFAULT_TIMEOUT,
        retries: 0,
        backoff: DEFAULT_BACKOFF,
    };
    let deliverables = edges(shape, n)
        .into_iter()
        .enumerate()
        .map(|(i, deps)| Deliverable {
            id: ids[i].clone(),
            title: ids[i].to_string(),
            persona: None,
            tools: Vec::new(),
            budget_tokens: None,
            dependencies: deps.into_iter().map(|d| ids[d].clone()).collect(),
            acceptance_criteria: Vec::new(),
            steps: vec![step.clone()],
        })
        .collect();
    Ok(Plan {
        title: Some(format!("bench {shape:?} {n}")),
        tenant: TenantId::parse("bench")?,
        region: "local".to_owned(),
        repo: None,
        branch: None,
        deliverables,
    })
}

/// A store on a fresh schema of the PostgreSQL server at `base`.
async fn postgres_schema(base: &str) -> anyhow::Result<(Store, String)> {
    use sqlx::Executor;
    let schema = format!(
        "kq_bench_{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    sqlx::any::install_default_drivers();
    let admin = tokio::time::timeout(Duration::from_secs(10), sqlx::AnyPool::connect(base))
        .await
        .context("PostgreSQL did not answer")?
        .with_context(|| format!("cannot connect to {}", kamachiq_store::redact_url(base)))?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await?;
    admin.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    let store = Store::open(&format!("{base}{sep}options=-c%20search_path%3D{schema}")).await?;
    Ok((store, schema))
}

async fn drop_schema(base: &str, schema: &str) -> anyhow::Result<()> {
    use sqlx::Executor;
    let admin = sqlx::AnyPool::connect(base).await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await?;
    admin.close().await;
    Ok(())
}

/// Adds `runs` finished runs of `tenant` to the configured store, 500 per transaction.
async fn seed(config: &Config, runs: u32, tenant: &str) -> anyhow::Result<u8> {
    if !(1..=1_000_000).contains(&runs) {
        return Err(InvalidInput::new("--runs must be between 1 and 1000000").into());
    }
    let tenant =
        TenantId::parse(tenant).map_err(|e| InvalidInput::new(format!("--tenant: {e}")))?;
    let mut plan = generate(Shape::Chain, 3)?;
    plan.tenant = tenant;
    plan.title = Some("seeded".into());
    let store = crate::commands::open_store(config).await?;
    let started = Instant::now();
    let at = kamachiq_domain::Timestamp::from_system_time(std::time::SystemTime::now());
    let mut left = runs;
    while left > 0 {
        let batch = left.min(500);
        let new: Vec<kamachiq_store::NewRun> = (0..batch)
            .map(|_| {
                Ok(kamachiq_store::NewRun {
                    id: kamachiq_domain::RunId::parse(
                        ulid::Ulid::generate().to_string().to_lowercase(),
                    )?,
                    plan: plan.clone(),
                    repo: None,
                    branch: None,
                    concurrency: 1,
                    at,
                    driver: None,
                    submitted_by: Some("bench seed".into()),
                })
            })
            .collect::<Result<_, kamachiq_domain::Error>>()?;
        store.create_runs(&new).await?;
        let finish: Vec<kamachiq_store::Change> = new
            .iter()
            .map(|r| kamachiq_store::Change::FinishRun {
                run: r.id.clone(),
                state: RunState::Succeeded,
            })
            .collect();
        store
            .apply(at.plus(Duration::from_secs(1)), &finish)
            .await?;
        left -= batch;
    }
    output::line(format!(
        "added {runs} finished runs to {} in {:.1}s",
        config.database_url_display(),
        started.elapsed().as_secs_f64()
    ));
    // What the server's background refresh of a summary costs at this store size.
    let tenant = &plan.tenant;
    let mut times = Vec::with_capacity(5);
    for _ in 0..5 {
        let started = Instant::now();
        store.summary(tenant).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    output::line(format!(
        "the summary of tenant {tenant} over its runs takes {:.1} ms (median of 5 uncached computations)",
        times[2]
    ));
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated_plan_is_valid(shape: Shape, n: u32) {
        let plan = generate(shape, n).unwrap();
        assert_eq!(plan.deliverables.len(), n as usize);
        // Every dependency points backwards, so the graph is acyclic by construction.
        for (i, deps) in edges(shape, n as usize).iter().enumerate() {
            assert!(deps.iter().all(|&d| d < i), "{shape:?}: {i} -> {deps:?}");
        }
    }

    #[test]
    fn every_shape_generates_an_acyclic_plan() {
        for shape in [Shape::Fanout, Shape::Chain, Shape::Diamond, Shape::Random] {
            generated_plan_is_valid(shape, 101);
        }
    }

    #[test]
    fn fanout_is_root_then_middle_then_sink() {
        let e = edges(Shape::Fanout, 5);
        assert_eq!(e, vec![vec![], vec![0], vec![0], vec![0], vec![1, 2, 3]]);
    }

    #[test]
    fn diamond_layers_depend_on_two_above() {
        let e = edges(Shape::Diamond, 9);
        assert_eq!(e[3], vec![0, 1]);
        assert_eq!(e[5], vec![2, 0]);
    }
}
