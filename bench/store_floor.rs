//! The local-directory store alone (no codec, no ledger): puts N objects of
//! SIZE bytes from memory with the metadata an archived recording carries,
//! then reads each one's answer back (`head`), WORKERS at a time as the
//! daemon's workers do, and prints one line: `objects cpu_seconds`.
//!
//!   store_floor DIR N SIZE [WORKERS]
//!
//! bench/backlog.sh subtracts this and the codec's CPU from the archive's to
//! show what recvault spends per recording beyond codec and store.

#[path = "cpu.rs"]
mod cpu;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use recvault::store::{Body, LocalStore, PutRequest, Store, meta};
use sha2::{Digest, Sha256};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: store_floor DIR N SIZE [WORKERS]";
    let dir = PathBuf::from(args.first().expect(usage));
    let n: usize = args.get(1).and_then(|v| v.parse().ok()).expect(usage);
    let size: usize = args.get(2).and_then(|v| v.parse().ok()).expect(usage);
    let workers: usize = args.get(3).and_then(|v| v.parse().ok()).unwrap_or(16);
    let store = Arc::new(LocalStore::new(dir));
    let started = cpu::cpu_seconds();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            async move { put_and_head(&store, i, size).await }
        })
        .buffer_unordered(workers)
        .collect::<Vec<()>>()
        .await;
    println!("{n} {:.3}", cpu::cpu_seconds() - started);
}

/// Puts object `i` as the archive would (its key under a day's folder, the
/// metadata of a recording) and reads the store's answer back.
async fn put_and_head(store: &LocalStore, i: usize, size: usize) {
    let mut bytes = vec![0u8; size];
    for (j, b) in bytes.iter_mut().enumerate() {
        *b = (i.wrapping_mul(31) ^ j.wrapping_mul(7)) as u8;
    }
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let hex = hex::encode(sha256);
    let key = format!("recordings/host/2026/12/07/{i:08}-20261207-101010_5551234567.flac");
    let metadata: BTreeMap<String, String> = [
        (meta::SHA256, hex.clone()),
        (meta::ORIGINAL_SHA256, hex),
        (meta::ORIGINAL_SIZE, "2092".to_string()),
        (
            meta::ORIGINAL_NAME,
            format!("{i:08}-20261207-101010_5551234567.wav"),
        ),
        (meta::ORIGINAL_MTIME_NS, "1765102210000000000".to_string()),
        (meta::CODEC, "flac".to_string()),
        (meta::HOST, "host".to_string()),
        (meta::RECORDING_ID, i.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let request = PutRequest {
        key: &key,
        source: Body::Bytes(&bytes),
        size: size as u64,
        sha256,
        metadata: &metadata,
        content_type: "audio/flac",
    };
    store.put(&request).await.expect("put");
    let info = store.head(&key).await.expect("head").expect("stored");
    assert_eq!(info.size, size as u64);
}
