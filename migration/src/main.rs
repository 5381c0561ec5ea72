//! `flakeguard-migration`: apply, roll back and check the FlakeGuard schema migrations.
//!
//! Reads the database URL from `DATABASE_URL` (or `-u/--database-url`). Subcommands:
//!
//! - `up [-n N]`: apply all pending steps (or the next N)
//! - `down [-n N]`: roll back the last step (or the last N)
//! - `status`: list every step and whether it is applied
//! - `fresh`: drop every table in the schema, then apply all steps
//! - `refresh`: roll back all applied steps, then apply them all again
//! - `reset`: roll back all applied steps
//! - `validate`: check the live schema, row-level security, grants and history; exits 1 naming
//!   each problem
//! - `adopt`: record the steps of a database built by another tool from the same schema, after
//!   checking it; touches no data
//! - `distribute`: on a Citus coordinator, after `up`, distribute the tenant tables by "orgId"
//!   and make the others reference tables; resumes where a failed run stopped, and does
//!   nothing (saying so) when the database is already distributed
//! - `isolate-tenant ORG_ID [--to HOST:PORT]`: on a distributed database, give
//!   one organization a shard of its own and move it to another worker (the named one, or the
//!   one holding the fewest bytes), while the application runs
//!
//! Every command that changes the schema holds a PostgreSQL advisory lock, so two migrators
//! started at once run one after the other. Run it as the database owner or a superuser, never
//! as an application role.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use flakeguard_migration::distribute;
use flakeguard_migration::isolate::{self, Node};
use flakeguard_migration::runner::{self, MigrateError};
use flakeguard_migration::validate::{self, Adoption};
use flakeguard_migration::{Migrator, MigratorTrait};
use sea_orm_migration::sea_orm::{Database, DatabaseConnection};

#[derive(Parser)]
#[command(
    name = "flakeguard-migration",
    version,
    about = "FlakeGuard schema migrations"
)]
struct Cli {
    /// The database URL.
    #[arg(short = 'u', long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending steps.
    Up {
        /// Apply only the next N steps.
        #[arg(short = 'n', long)]
        num: Option<u32>,
    },
    /// Roll back applied steps (the last one by default).
    Down {
        /// Roll back the last N steps.
        #[arg(short = 'n', long)]
        num: Option<u32>,
    },
    /// List every step and whether it is applied.
    Status,
    /// Drop every table, then apply every step.
    Fresh,
    /// Roll back every step, then apply them all again.
    Refresh,
    /// Roll back every step.
    Reset,
    /// Check the live database against the migrations and entities.
    Validate,
    /// Record the history of a database that already holds the schema, after checking it.
    Adopt,
    /// On a Citus coordinator: distribute the schema (tenant tables by "orgId").
    Distribute,
    /// On a distributed database: give one organization a shard of its own, on another worker.
    IsolateTenant {
        /// The organization's id ("Organization".id).
        org_id: String,
        /// The worker to move it to, as HOST:PORT in pg_dist_node (default: the worker
        /// holding the fewest bytes of shards, when the tenant is not isolated yet).
        #[arg(long)]
        to: Option<Node>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let db = match Database::connect(&cli.database_url).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("error: cannot connect: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match run(&db, cli.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    };
    let _ = db.close().await;
    code
}

fn print_steps(verb: &str, steps: &[String]) {
    if steps.is_empty() {
        println!("nothing to do: no step {verb}");
    }
    for step in steps {
        println!("{verb} {step}");
    }
}

async fn run(db: &DatabaseConnection, command: Command) -> Result<ExitCode, MigrateError> {
    match command {
        Command::Up { num } => print_steps("applied", &runner::up(db, num).await?),
        Command::Down { num } => print_steps("rolled back", &runner::down(db, num).await?),
        Command::Fresh => print_steps("applied", &runner::fresh(db).await?),
        Command::Refresh => print_steps("applied", &runner::refresh(db).await?),
        Command::Reset => print_steps("rolled back", &runner::reset(db).await?),
        Command::Status => {
            let applied: Vec<String> = Migrator::get_applied_migrations(db)
                .await
                .map_err(|source| MigrateError::Database {
                    operation: "read history",
                    source,
                })?
                .iter()
                .map(|m| m.name().to_owned())
                .collect();
            for step in runner::step_names() {
                let state = if applied.contains(&step) {
                    "applied"
                } else {
                    "pending"
                };
                println!("{state:8} {step}");
            }
        }
        Command::Validate => {
            let report = validate::validate(db).await?;
            if !report.is_ok() {
                for problem in &report.problems {
                    println!("problem: {problem}");
                }
                println!("{} problem(s) found", report.problems.len());
                return Ok(ExitCode::from(1));
            }
            println!("the database is valid; checked:");
            for (what, n) in &report.checked {
                println!("  {n:>5} {what}");
            }
        }
        Command::Distribute => {
            let done = distribute::distribute(db).await?;
            if done.nothing_to_do() {
                println!("nothing to do: the database is already distributed");
            }
            for action in &done.actions {
                println!("{action}");
            }
        }
        Command::IsolateTenant { org_id, to } => {
            let done = isolate::isolate_tenant(db, &org_id, to.as_ref()).await?;
            if done.nothing_to_do() {
                println!(
                    "nothing to do: organization {org_id} has shard {} of its own on {}",
                    done.shard_id, done.to
                );
            }
            for action in &done.actions {
                println!("{action}");
            }
        }
        Command::Adopt => match validate::adopt(db).await? {
            Adoption::Adopted { recorded, pending } => {
                print_steps("recorded as applied:", &recorded);
                if !pending.is_empty() {
                    println!(
                        "{} step(s) still pending; run `up` to apply them:",
                        pending.len()
                    );
                    for step in pending {
                        println!("  {step}");
                    }
                }
            }
            Adoption::Refused { problems } => {
                for problem in &problems {
                    println!("problem: {problem}");
                }
                println!("not adopted: the schema matches no migration step; nothing was recorded");
                return Ok(ExitCode::from(1));
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
