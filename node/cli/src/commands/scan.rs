//! `scan PREFIX [--limit N] [--keys-only] [--all]`: lists keys under a prefix, page by page.
//!
//! As text each page is printed as it arrives, so a large scan starts printing at once and
//! holds one page in memory; as JSON the pages are gathered into one object.

use bytes::Bytes;
use serde::Serialize;

use crate::args::{GlobalArgs, OutputFormat, ScanArgs};
use crate::error::CliError;
use crate::output::{emit, json_line, kv_lines, printable, HeaderView, KeyValueView};
use crate::proto::{KeyValue, ScanRequest};
use crate::Outcome;
use dengine_client::Connection;

use super::bytes_of;

pub async fn run(
    connection: &Connection,
    global: &GlobalArgs,
    args: &ScanArgs,
) -> Result<Outcome, CliError> {
    let mut kv = connection.kv();
    let mut continuation = Bytes::new();
    let mut gathered = ScanView::default();
    loop {
        let request = ScanRequest {
            prefix: bytes_of(&args.prefix),
            limit: args.limit.unwrap_or(0),
            continuation: continuation.clone(),
            read_policy: global.read_policy().into(),
            ..Default::default()
        };
        let page = connection
            .call(kv.scan(connection.request(request)))
            .await?;
        match global.output {
            OutputFormat::Table => emit(&render_page(&page.kvs, args.keys_only))?,
            OutputFormat::Json => gathered.add_page(&page.kvs, args.keys_only),
        }
        gathered.header = HeaderView::new(page.header.as_ref());
        if page.continuation.is_empty() {
            break;
        }
        if !args.fetch_all_pages() {
            gathered.more = true;
            break;
        }
        if page.continuation == continuation {
            // Following it again would loop for ever.
            return Err(tonic::Status::internal(
                "the server returned the same scan continuation token twice",
            )
            .into());
        }
        continuation = page.continuation;
    }
    match global.output {
        OutputFormat::Table if gathered.more => {
            eprintln!("(more keys under this prefix; add --all to fetch every page)");
        }
        OutputFormat::Table => {}
        OutputFormat::Json => emit(&json_line(&gathered))?,
    }
    Ok(Outcome::Success)
}

/// All pages of a scan as one JSON object; `header` is the last page's.
#[derive(Debug, Default, Serialize)]
struct ScanView {
    header: HeaderView,
    count: usize,
    /// Keys remain past the last page fetched (only with `--limit` without `--all`).
    more: bool,
    kvs: Vec<KeyValueView>,
}

impl ScanView {
    fn add_page(&mut self, kvs: &[KeyValue], keys_only: bool) {
        let view = if keys_only {
            KeyValueView::without_value
        } else {
            KeyValueView::new
        };
        self.kvs.extend(kvs.iter().map(view));
        self.count = self.kvs.len();
    }
}

/// Key and value lines for each pair, or key lines only.
fn render_page(kvs: &[KeyValue], keys_only: bool) -> String {
    kvs.iter()
        .map(|kv| {
            if keys_only {
                format!("{}\n", printable(&kv.key))
            } else {
                kv_lines(kv)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &'static str, value: &'static [u8]) -> KeyValue {
        KeyValue {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(value),
            ..KeyValue::default()
        }
    }

    #[test]
    fn a_page_is_key_and_value_lines_in_order() {
        let page = [pair("app/a", b"1"), pair("app/b", &[0xfe])];
        assert_eq!(render_page(&page, false), "app/a\n1\napp/b\n0xfe\n");
        assert_eq!(render_page(&page, true), "app/a\napp/b\n");
        assert_eq!(render_page(&[], false), "");
    }

    #[test]
    fn json_gathers_every_page() {
        let mut view = ScanView::default();
        view.add_page(&[pair("a", b"1")], true);
        view.add_page(&[pair("b", b"2"), pair("c", b"3")], true);
        let parsed: serde_json::Value =
            serde_json::from_str(&json_line(&view)).expect("valid JSON");
        assert_eq!(parsed["count"], 3);
        assert_eq!(parsed["more"], false);
        assert_eq!(parsed["kvs"][2]["key"], "c");
        assert!(parsed["kvs"][0].get("value").is_none(), "keys only");
    }
}
