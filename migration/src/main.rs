//! `flakeguard-migration`: apply or roll back the FlakeGuard schema migrations.
//!
//! Reads the database URL from `DATABASE_URL` (or `-u/--database-url`; a `.env` file is honoured)
//! and supports SeaORM's migration subcommands:
//!
//! - `up [-n N]`: apply all pending steps (or the next N); the default when no subcommand is given
//! - `down [-n N]`: roll back the last step (or the last N)
//! - `status`: list every step and whether it is applied
//! - `fresh`: drop every table in the schema, then apply all steps
//! - `refresh`: roll back all applied steps, then apply them all again
//! - `reset`: roll back all applied steps
//!
//! Run it as the database owner or a superuser, never as an application role.

#[tokio::main]
async fn main() {
    sea_orm_migration::cli::run_cli(flakeguard_migration::Migrator).await;
}
