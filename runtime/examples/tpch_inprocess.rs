//! The baseline of `bench/tpch.sh`: TPC-H queries on plain in-process DataFusion, over the same
//! Parquet files the `samples` catalog serves, with DataFusion's default session (target
//! partitions = cores) kept for the whole run, as an application embedding DataFusion would.
//!
//! It reads one path of a `.sql` file per line on standard input, runs that query once, and
//! answers with one line: the seconds it took and the rows it returned. The driver interleaves
//! these runs with the gateway's and DuckDB's, so all three see the same machine conditions.
//!
//! Usage: tpch_inprocess <tables dir (one sub-directory per table)>

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use std::io::{BufRead, Write};
use std::time::Instant;

const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, tables] = args.as_slice() else {
        anyhow::bail!("usage: tpch_inprocess <tables dir>  (query paths on stdin, one a line)");
    };
    let ctx = SessionContext::new();
    for table in TABLES {
        let dir = format!("{tables}/{table}/");
        ctx.register_parquet(table, &dir, ParquetReadOptions::default())
            .await?;
    }
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let sql = std::fs::read_to_string(line?.trim())?;
        let started = Instant::now();
        let batches = ctx.sql(&sql).await?.collect().await?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let seconds = started.elapsed().as_secs_f64();
        let mut out = stdout.lock();
        writeln!(out, "{seconds} {rows}")?;
        out.flush()?;
    }
    Ok(())
}
