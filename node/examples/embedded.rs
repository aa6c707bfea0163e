//! d-engine inside an application: starts a single-node cluster in a temporary directory,
//! writes, reads under each read policy, watches a prefix, and shuts down.
//!
//! ```sh
//! cargo run -p dengine --example embedded
//! ```

use std::time::Duration;

use dengine::embedded::{
    Compare, Embedded, EventKind, PutOptions, ReadPolicy, ScanRequest, WatchRequest,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let node = Embedded::single_node(dir.path()).start().await?;
    node.wait_ready(Duration::from_secs(10)).await?;
    let role = node.role();
    println!(
        "node {} ready in {}: leader {:?}, term {}",
        node.id(),
        dir.path().display(),
        role.leader_id,
        role.term
    );
    let client = node.client();

    // Watch a prefix before writing to it.
    let mut watch = client.watch(WatchRequest::prefix("config/")).await?;

    let put = client.put("config/color", "blue").await?;
    println!("put config/color=blue at revision {}", put.header.revision);
    client
        .put_with(
            "config/session",
            "alive",
            PutOptions::new().with_ttl(Duration::from_secs(30)),
        )
        .await?;
    let swapped = client
        .compare_and_swap("config/color", Compare::Value("blue".into()), "green")
        .await?;
    println!(
        "compare-and-swap blue -> green: {}",
        if swapped.succeeded {
            "swapped"
        } else {
            "refused"
        }
    );

    for policy in [
        ReadPolicy::Linearizable,
        ReadPolicy::Lease,
        ReadPolicy::Eventual,
    ] {
        let read = client.get_with("config/color", policy).await?;
        let value = read
            .kv
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        println!(
            "get config/color ({policy:?}): {value:?} at revision {}",
            read.header.revision
        );
    }

    let page = client.scan(ScanRequest::prefix("config/")).await?;
    for kv in &page.kvs {
        println!(
            "scan: {} = {} (version {}, expires at {})",
            String::from_utf8_lossy(&kv.key),
            String::from_utf8_lossy(&kv.value),
            kv.version,
            kv.expires_at_unix_ms
        );
    }

    client.delete("config/session").await?;

    // Put, put, compare-and-swap, delete: four events.
    let mut seen = 0;
    while seen < 4 {
        let Some(batch) = watch.recv().await else {
            break;
        };
        for event in batch?.events {
            seen += 1;
            let kind = match event.kind {
                EventKind::Put => "PUT",
                EventKind::Delete => "DELETE",
            };
            println!(
                "watch: {kind} {} = {:?} at revision {}",
                String::from_utf8_lossy(&event.kv.key),
                String::from_utf8_lossy(&event.kv.value),
                event.revision()
            );
        }
    }

    node.shutdown().await?;
    println!("shut down");
    Ok(())
}
