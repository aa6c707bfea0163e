//! `cas KEY NEW_VALUE (--expect-value V | --expect-mod-revision N | --expect-absent)`.
//!
//! A failed comparison is an answer, not an error: it prints `FAILED` and the key's current
//! state (what a retry needs) and exits with status 2, so scripts can tell it from a failure to
//! reach the cluster (status 1).

use serde::Serialize;

use crate::args::{CasArgs, Expectation, OutputFormat};
use crate::error::CliError;
use crate::output::{emit, header_revision, json_line, kv_lines, HeaderView, KeyValueView};
use crate::proto::compare::Target;
use crate::proto::{Compare, CompareAndSwapRequest, CompareAndSwapResponse};
use crate::Outcome;
use dengine_client::duration::ttl_millis;
use dengine_client::Connection;

use super::bytes_of;

pub async fn run(
    connection: &Connection,
    format: OutputFormat,
    args: &CasArgs,
) -> Result<Outcome, CliError> {
    let request = CompareAndSwapRequest {
        key: bytes_of(&args.key),
        compare: Some(compare(&args.expectation())),
        new_value: bytes_of(&args.new_value),
        ttl_ms: ttl_millis(args.ttl),
    };
    let mut kv = connection.kv();
    let response = connection
        .call(kv.compare_and_swap(connection.request(request)))
        .await?;
    emit(&render(format, &response))?;
    Ok(if response.succeeded {
        Outcome::Success
    } else {
        Outcome::ComparisonFailed
    })
}

fn compare(expectation: &Expectation) -> Compare {
    let target = match expectation {
        Expectation::Value(value) => Target::Value(bytes_of(value)),
        Expectation::ModRevision(revision) => Target::ModRevision(*revision),
        Expectation::Absent => Target::Absent(true),
    };
    Compare {
        target: Some(target),
    }
}

#[derive(Serialize)]
struct CasView {
    succeeded: bool,
    header: HeaderView,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<KeyValueView>,
}

/// `OK (rev N)`; or `FAILED (key absent)`; or `FAILED (mod_revision N)` then the current key
/// and value lines.
fn render(format: OutputFormat, response: &CompareAndSwapResponse) -> String {
    match format {
        OutputFormat::Table if response.succeeded => {
            format!("OK (rev {})\n", header_revision(response.header.as_ref()))
        }
        OutputFormat::Table => match &response.current {
            None => "FAILED (key absent)\n".to_string(),
            Some(current) => format!(
                "FAILED (mod_revision {})\n{}",
                current.mod_revision,
                kv_lines(current)
            ),
        },
        OutputFormat::Json => json_line(&CasView {
            succeeded: response.succeeded,
            header: HeaderView::new(response.header.as_ref()),
            current: response.current.as_ref().map(KeyValueView::new),
        }),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::{KeyValue, ResponseHeader};

    fn current() -> KeyValue {
        KeyValue {
            key: Bytes::from_static(b"leader"),
            value: Bytes::from_static(b"node-2"),
            create_revision: 4,
            mod_revision: 8,
            version: 2,
            expires_at_unix_ms: 0,
            lease: 0,
        }
    }

    #[test]
    fn each_expectation_becomes_its_compare_target() {
        assert_eq!(
            compare(&Expectation::Value("old".into())).target,
            Some(Target::Value(Bytes::from_static(b"old")))
        );
        assert_eq!(
            compare(&Expectation::ModRevision(8)).target,
            Some(Target::ModRevision(8))
        );
        assert_eq!(
            compare(&Expectation::Absent).target,
            Some(Target::Absent(true))
        );
    }

    #[test]
    fn success_prints_ok_and_the_revision() {
        let response = CompareAndSwapResponse {
            succeeded: true,
            header: Some(ResponseHeader {
                revision: 9,
                ..ResponseHeader::default()
            }),
            current: Some(current()),
        };
        assert_eq!(render(OutputFormat::Table, &response), "OK (rev 9)\n");
    }

    #[test]
    fn failure_prints_the_current_state() {
        let present = CompareAndSwapResponse {
            succeeded: false,
            current: Some(current()),
            ..CompareAndSwapResponse::default()
        };
        assert_eq!(
            render(OutputFormat::Table, &present),
            "FAILED (mod_revision 8)\nleader\nnode-2\n"
        );
        let absent = CompareAndSwapResponse::default();
        assert_eq!(
            render(OutputFormat::Table, &absent),
            "FAILED (key absent)\n"
        );

        let view: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &present)).expect("valid JSON");
        assert_eq!(view["succeeded"], false);
        assert_eq!(view["current"]["value"], "node-2");
        assert_eq!(view["current"]["mod_revision"], 8);
    }
}
