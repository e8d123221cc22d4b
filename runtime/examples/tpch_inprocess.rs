//! The baseline of `bench/tpch.sh`: the TPC-H queries on plain in-process DataFusion, over the
//! same Parquet files the `samples` catalog serves, with DataFusion's default session (target
//! partitions = cores). Prints one JSON object: query name → seconds of each run.
//!
//! Usage: tpch_inprocess <tables dir (one sub-directory per table)> <queries dir> <runs>

use datafusion::prelude::{ParquetReadOptions, SessionContext};
use std::collections::BTreeMap;
use std::time::Instant;

const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, tables, queries, runs] = args.as_slice() else {
        anyhow::bail!("usage: tpch_inprocess <tables dir> <queries dir> <runs>");
    };
    let runs: usize = runs.parse()?;
    let ctx = SessionContext::new();
    for table in TABLES {
        let dir = format!("{tables}/{table}/");
        ctx.register_parquet(table, &dir, ParquetReadOptions::default())
            .await?;
    }
    let mut names: Vec<_> = std::fs::read_dir(queries)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    names.sort();
    let mut timings: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for path in names {
        let sql = std::fs::read_to_string(&path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        for _ in 0..runs {
            let started = Instant::now();
            let batches = ctx.sql(&sql).await?.collect().await?;
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            std::hint::black_box(rows);
            timings
                .entry(name.clone())
                .or_default()
                .push(started.elapsed().as_secs_f64());
        }
    }
    println!("{}", serde_json::to_string(&timings)?);
    Ok(())
}
