//! The command line. Help texts are the first documentation users read: each says what the
//! command does, what it changes and what its exit code means.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod governance;

pub use governance::{
    ApprovalsCommand, BreakerCommand, GovernanceCommand, ReadinessCommand, TenantArg,
};

const EXIT_CODES: &str = "\
Exit codes: 0 success · 1 the run failed · 2 invalid input (plan, flags, configuration) ·
3 the run was cancelled · 4 kamachiq could not do it (store, git, system) · 5 policy held work
back (the run waits; `kamachiq requeue list`) · 6 halted by the emergency stop or a pause (the
run keeps its state) · 130 interrupted (the run keeps its state; `kamachiq resume RUN`
continues it)";

/// kamachiq: the control plane for autonomous software delivery. It runs a plan of
/// deliverables (a DAG) in isolated git worktrees, merges what passes into your branch one
/// merge at a time, and records every step durably so nothing is lost on a crash.
#[derive(Debug, Parser)]
#[command(name = "kamachiq", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    /// State directory (SQLite database, step logs, worktrees). Default: ./.kamachiq
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB. Default: SQLite in the home.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// Configuration file. Default: ./kamachiq.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log level for diagnostics on stderr: error, warn, info, debug, trace.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Act on a kamachiq server instead of the local store (runs, status, cancel, resume,
    /// run, pause, stop, resume-all, governance, breaker, readiness, approvals). Also
    /// KAMACHIQ_SERVER.
    #[arg(long, global = true, value_name = "URL")]
    pub server: Option<String>,

    /// API token for --server. Prefer KAMACHIQ_TOKEN: a flag shows in the process list.
    #[arg(long, global = true, value_name = "TOKEN")]
    pub token: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a demo: a throwaway git repository, a six-deliverable plan shaped like a diamond,
    /// run for real, with the result shown. Needs only git.
    Demo(DemoArgs),
    /// Run a plan: every deliverable whose dependencies are done runs in parallel, each in
    /// its own worktree and branch; what passes is merged into the target branch.
    Run(RunArgs),
    /// Work with plan files.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// List runs, newest first.
    Runs(RunsArgs),
    /// Show a run and each deliverable's state, attempts and times.
    Status(StatusArgs),
    /// Show what a deliverable's steps printed.
    Logs(LogsArgs),
    /// Cancel a run: running steps are stopped, waiting deliverables are cancelled.
    Cancel(CancelArgs),
    /// Continue a run that was interrupted or paused (or, with --retry-failed, retry what
    /// failed).
    Resume(ResumeArgs),
    /// Pause a run: its steps are stopped and handed back, its state saved; nothing runs until
    /// `kamachiq resume RUN`.
    Pause(PauseArgs),
    /// Emergency stop: within a second no new action starts anywhere on this store, every
    /// running step and agent is stopped (SIGTERM, then SIGKILL) with its state saved, and
    /// policy denies everything until `kamachiq resume-all`. Touching `.kamachiq/STOP` does
    /// the same.
    Stop(StopArgs),
    /// Lift the emergency stop. Runs are driven again by a server, or by `kamachiq resume RUN`.
    ResumeAll(StopStatusArgs),
    /// Run a program under a Linux Landlock sandbox that lets it write only beneath the given
    /// directories (how agents run with `agents.sandbox = true`).
    #[command(hide = true)]
    Sandbox(SandboxArgs),
    /// Serve the HTTP API, the scheduler and a worker on this store: runs submitted over HTTP
    /// and runs left in flight (by a crash, or a `kamachiq run` that was killed) are driven
    /// here. Ctrl-C or SIGTERM stops taking work and hands running work back.
    Serve(ServeArgs),
    /// Print the HTTP API's OpenAPI document (the one `GET /v1/openapi.json` serves).
    Openapi,
    /// Manage API tokens in the local store (run it where the server's database is).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Configure tenants in the local store: the regions their runs may use, the policy
    /// threshold, budgets, and the personas and tools they may use.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Rego policies: run their tests, evaluate an input, load a set for a tenant, show it,
    /// and replay a candidate set against the decisions already made.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Deliverables held back by policy: list them, re-evaluate them, or override a block
    /// (audited) so the deliverable runs.
    #[command(subcommand)]
    Requeue(RequeueCommand),
    /// The audit trail of operator actions: list it, or verify its hash chain.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The runs' worktrees under the home: their disk use, and pruning those of finished runs.
    #[command(subcommand)]
    Workspaces(WorkspacesCommand),
    /// Figures from the local store: what agents spent, by run, deliverable, model or day.
    #[command(subcommand)]
    Metrics(MetricsCommand),
    /// Measure the engine: run a generated plan through the real engine and store.
    Bench(BenchArgs),
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check the health of this machine and setup: CPU, memory, disk, git, the coding agents,
    /// the store and the configuration, each healthy, degraded or unhealthy.
    ///
    /// CPU is degraded from 80% (never unhealthy: a busy machine is slow, not broken); memory
    /// degraded from 85%, unhealthy from 95%; disk, where the home is, degraded from 90%,
    /// unhealthy from 98% or under 500 MiB free. Percentages are judged as the whole numbers
    /// shown, and a value at a threshold is past it (80% CPU is degraded). git missing or older
    /// than 2.38 is unhealthy. An agent that is not installed is fine; one whose `--version`
    /// fails or takes over 5 s is degraded. A store that does not open and answer within 5 s is
    /// unhealthy.
    #[command(after_help = DOCTOR_EXIT_CODES)]
    Doctor(DoctorArgs),
    /// Roll back a promotion: a new commit on the target branch undoes one merge (history is
    /// kept). `rollback list` shows the rollback points, `rollback cleanup` forgets old ones.
    Rollback(RollbackArgs),
    /// Autonomy governance of a tenant: enable it, its phase, mode and settings, the weekly
    /// cycle and its proposals, rolling the phase back, critical incidents, action metrics.
    #[command(subcommand)]
    Governance(GovernanceCommand),
    /// Circuit breakers: rules over the windowed action metrics that revert the phase to L3,
    /// pause an action type or alert, and the events they raised.
    #[command(subcommand)]
    Breaker(BreakerCommand),
    /// Readiness for more autonomy: the weighted checklist, its score and blockers,
    /// attestations.
    #[command(subcommand)]
    Readiness(ReadinessCommand),
    /// The approvals inbox: actions that wait for a person, approved or denied by approvers.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
}

const DOCTOR_EXIT_CODES: &str = "\
Exit codes: 0 healthy · 1 degraded (something needs a look) · 2 invalid configuration ·
4 unhealthy (kamachiq cannot work as it is)";

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON: {"status", "components": [{"name", "status", "value",
    /// "detail", ...}]}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Print machine-readable events (one JSON object per line) instead of the live display.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The plan file (YAML, or JSON when it ends in .json).
    pub plan: PathBuf,
    /// Target repository; overrides `repo:` in the plan.
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Target branch; overrides `branch:` in the plan. Default: the repository's current branch.
    #[arg(long)]
    pub branch: Option<String>,
    /// Deliverables that may run at once (default from configuration: 4).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<u32>,
    /// Print machine-readable events (one JSON object per line) instead of the live display.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (default from configuration: 127.0.0.1:8200).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret, once. Only a hash of the secret is stored.
    Create {
        /// The tenant whose data the token reaches.
        #[arg(long)]
        tenant: String,
        /// Who or what uses it (`ci`, `alice`); unique among the tenant's live tokens.
        #[arg(long)]
        name: String,
        /// A role; repeat for several: viewer, operator, admin, tech-lead, ops-lead,
        /// product-lead, exec-sponsor, metrics.
        #[arg(long = "role", required = true, value_name = "ROLE")]
        roles: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets), revoked ones included.
    List {
        /// Only this tenant's tokens.
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: it stops working at once on this store's servers (within seconds on
    /// a server that cached it).
    Revoke {
        /// The token's id (from `kamachiq token list`).
        id: String,
        #[arg(long)]
        json: bool,
    },
}

/// Tenant settings given on the command line.
#[derive(Debug, Args, Default)]
pub struct TenantSettingsArgs {
    /// A region the tenant's runs may use (data residency); repeat for several. A run in any
    /// other region is held back by policy. None given on create: every region.
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// The lowest score an action may have and still run without review, 0 to 1 (default 0.5).
    #[arg(long, value_name = "SCORE")]
    pub threshold: Option<f64>,
    /// A persona the tenant's deliverables may use; repeat for several. None: any persona.
    #[arg(long = "persona", value_name = "PERSONA")]
    pub personas: Vec<String>,
    /// A tool the tenant's deliverables may use; repeat for several. None: any tool.
    #[arg(long = "tool", value_name = "TOOL")]
    pub tools: Vec<String>,
    /// Most tokens one deliverable may use.
    #[arg(long, value_name = "N")]
    pub deliverable_tokens: Option<u64>,
    /// Most tokens one run may use.
    #[arg(long, value_name = "N")]
    pub run_tokens: Option<u64>,
    /// Most tokens the tenant may use per UTC day.
    #[arg(long, value_name = "N")]
    pub day_tokens: Option<u64>,
    /// Most the tenant may spend per UTC day, in US dollars (`25`, `12.50`).
    #[arg(long, value_name = "USD")]
    pub day_cost: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TenantField {
    /// Allow every region again.
    Regions,
    /// Allow every persona again.
    Personas,
    /// Allow every tool again.
    Tools,
    DeliverableTokens,
    RunTokens,
    DayTokens,
    DayCost,
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Configure a tenant. Its blocked deliverables are re-evaluated at once.
    Create {
        /// The tenant's id (`tenant-a`), as plans and tokens name it.
        id: String,
        #[command(flatten)]
        settings: TenantSettingsArgs,
        #[arg(long)]
        json: bool,
    },
    /// Show a tenant's settings (the defaults, for one never configured).
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List configured tenants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change some of a tenant's settings; lists given replace the current ones. Its blocked
    /// deliverables are re-evaluated at once.
    Update {
        id: String,
        #[command(flatten)]
        settings: TenantSettingsArgs,
        /// Remove a restriction or a cap; repeat for several.
        #[arg(long = "clear", value_enum, value_name = "FIELD")]
        clear: Vec<TenantField>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run the `test_*` rules of the policies in DIR. Exit code 1 when one fails.
    Test {
        /// A directory of .rego files (searched recursively).
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Decide a policy input (a JSON file) and show the decision and why. The tenant named in
    /// the input decides with its settings and its policy set in force, or the set in
    /// --policy.
    Eval {
        /// The input: `{"action": "provision", "tenant": "tenant-a", "region": "eu-west-1", ...}`.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// Evaluate these policies instead of the tenant's stored set.
        #[arg(long, value_name = "DIR")]
        policy: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Store the policies in DIR as the tenant's next policy set version, after they compile
    /// and their tests pass. Its blocked deliverables are re-evaluated at once.
    Load {
        dir: PathBuf,
        #[arg(long)]
        tenant: String,
        /// Store them even if their own tests fail.
        #[arg(long)]
        skip_tests: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show the tenant's policy set in force (or one version), with its modules.
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        version: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a candidate policy set against the inputs of decisions already recorded, and
    /// print what would change (allowed that was held back, and the reverse).
    Replay {
        /// The candidate policies.
        #[arg(long, value_name = "DIR")]
        policy: PathBuf,
        /// Only decisions made since then: a date (`2026-11-01`), a time (RFC 3339), or a
        /// duration back from now (`7d`, `12h`).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// Only this tenant's decisions (default: every tenant's, each with its settings).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RequeueCommand {
    /// List deliverables held back by policy (only those still waiting, unless --all).
    List {
        /// Only this run's (an id, a unique prefix, or `latest`).
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        /// Resolved entries too.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Resolve an entry: re-evaluate it with the policy in force, or with --allow override the
    /// block (who, why and when go to the audit trail). A deliverable let through runs: this
    /// command drives its run unless another process does.
    Resolve {
        /// The entry's id (`rq-...`, from `kamachiq requeue list`).
        id: String,
        /// Override: let the deliverable run whatever policy says (the emergency stop aside).
        #[arg(long, requires = "justification")]
        allow: bool,
        /// Why the override is right; recorded in the audit trail.
        #[arg(long, value_name = "TEXT")]
        justification: Option<String>,
        /// Return once resolved instead of driving the run.
        #[arg(long)]
        no_wait: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspacesCommand {
    /// Each run's worktrees and their disk use, with the total and the limit.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Removes the worktrees of finished runs (their branches are kept): those that finished
    /// more than --older-than ago (default: any finished run).
    Prune {
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// What agent steps spent (tokens and dollars, from the usage ledger), largest first.
    Cost {
        /// Group by run, deliverable, model, day or tenant.
        #[arg(long, default_value = "model", value_name = "GROUP")]
        by: String,
        #[arg(long)]
        tenant: Option<String>,
        /// Only this run (an id, a unique prefix, or `latest`).
        #[arg(long)]
        run: Option<String>,
        /// Only spend since then: a date (`2026-11-01`), a time, or a duration back (`7d`).
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the audit trail, oldest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// At most this many records (the latest).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Recompute the hash chain of the whole trail. Exit code 1 when a record was altered.
    Verify {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Check a plan without running anything; every problem is listed with file, line and
    /// deliverable. Exit code 2 when the plan is invalid.
    Validate {
        plan: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run: its id, a unique prefix of it, or `latest`.
    pub run: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run: its id, a unique prefix of it, or `latest`.
    pub run: String,
    pub deliverable: String,
    /// Only this step (default: every step that ran).
    pub step: Option<String>,
    /// Which attempt (default: the latest of each step).
    #[arg(long)]
    pub attempt: Option<u32>,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run: its id, a unique prefix of it, or `latest`.
    pub run: String,
    /// Return once the cancel is requested instead of waiting for the run to stop.
    #[arg(long)]
    pub no_wait: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run: its id, a unique prefix of it, or `latest`.
    pub run: String,
    /// Also retry failed deliverables (and those skipped because of them). Steps that
    /// passed before are not run again.
    #[arg(long)]
    pub retry_failed: bool,
    #[arg(long)]
    pub json: bool,
}

/// `kamachiq sandbox`: runs a program that may write only where it is told.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// A directory the program may write beneath; repeat for several. It may read everywhere.
    #[arg(long = "write", value_name = "DIR")]
    pub write: Vec<PathBuf>,
    /// The program and its arguments.
    #[arg(trailing_var_arg = true, required = true, allow_hyphen_values = true)]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The run: its id, a unique prefix of it, or `latest`.
    pub run: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Why, for the audit trail.
    #[arg(long, default_value = "emergency stop")]
    pub reason: String,
    /// Return once the stop is recorded, without waiting for this host's steps to end.
    #[arg(long)]
    pub no_wait: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StopStatusArgs {
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// root -> N-2 independent deliverables -> sink
    Fanout,
    /// each deliverable depends on the one before
    Chain,
    /// layers of width √N, each deliverable depending on two of the layer before
    Diamond,
    /// each deliverable depends on up to three earlier ones, chosen with a fixed seed
    Random,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchStore {
    Sqlite,
    Postgres,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchStep {
    /// No process: measures the engine and the store.
    Noop,
    /// A real `true` process per step.
    Process,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// Deliverables in the generated plan.
    #[arg(long, default_value_t = 1000)]
    pub deliverables: u32,
    #[arg(long, value_enum, default_value_t = Shape::Fanout)]
    pub shape: Shape,
    /// SQLite in a temporary directory, or PostgreSQL (a fresh schema on --database-url or
    /// postgres://postgres@127.0.0.1:5432/test, dropped afterwards).
    #[arg(long, value_enum, default_value_t = BenchStore::Sqlite)]
    pub store: BenchStore,
    #[arg(long, value_enum, default_value_t = BenchStep::Noop)]
    pub step: BenchStep,
    /// Deliverables in flight at once (default: 1024 for noop steps, 64 for processes).
    #[arg(long)]
    pub concurrency: Option<u32>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Fill the configured store with finished runs (for the API load benchmark,
    /// benches/api.sh): each a three-deliverable chain, committed in batches.
    Seed {
        /// How many runs to add.
        #[arg(long, default_value_t = 10_000)]
        runs: u32,
        /// The tenant that owns them.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
}

/// Which promotion `kamachiq rollback` undoes: exactly one of ID, --deliverable, --commit,
/// --latest.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Exit codes: 0 rolled back · 1 refused: later changes conflict with the revert, \
                  or the checkout that has the branch holds local changes it would overwrite \
                  (files named; nothing changed) · 2 unknown, ambiguous, already rolled back, or \
                  its merge is no longer on the branch (nothing changed) · 4 git or the store \
                  failed"
)]
#[command(group(
    clap::ArgGroup::new("which")
        .required(true)
        .args(["id", "deliverable", "commit", "latest"])
))]
pub struct RollbackArgs {
    #[command(subcommand)]
    pub command: Option<RollbackCommand>,
    /// The rollback point's id (`rb-...`, from `kamachiq rollback list`).
    pub id: Option<String>,
    /// The rollback point of this deliverable's merge.
    #[arg(long, value_name = "ID")]
    pub deliverable: Option<String>,
    /// With --deliverable: in this run (an id, a unique prefix, or `latest`). Needed when
    /// several runs merged a deliverable of that name.
    #[arg(long, requires = "deliverable", value_name = "RUN")]
    pub run: Option<String>,
    /// The rollback point whose merge commit this is (a full or unique abbreviated hash).
    #[arg(long, value_name = "COMMIT")]
    pub commit: Option<String>,
    /// The newest rollback point not rolled back yet.
    #[arg(long)]
    pub latest: bool,
    /// With --latest: only merges into this repository (any directory in it).
    #[arg(long, requires = "latest", value_name = "DIR")]
    pub repo: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RollbackCommand {
    /// List rollback points, newest first: the merge, the commit before it, and whether (by
    /// whom, when, with which commit) it was rolled back.
    List {
        /// Only this run's (an id, a unique prefix, or `latest`).
        #[arg(long)]
        run: Option<String>,
        /// At most this many (the newest).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Forget rollback points older than a duration, with their rollback records. Branches,
    /// commits, runs and the audit trail are not touched.
    Cleanup {
        /// How old: `30d`, `12h`, `1w`.
        #[arg(long, value_name = "DURATION")]
        older_than: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load the configuration from every source, check it, and show the result.
    Validate,
    /// Print a commented configuration file with every key and its default.
    Example,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
