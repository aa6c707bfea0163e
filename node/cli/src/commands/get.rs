//! `get KEY`: prints nothing for a missing key, as etcdctl does, so `$(dengine get k)` is empty.

use serde::Serialize;

use crate::args::{GetArgs, GlobalArgs, OutputFormat};
use crate::error::CliError;
use crate::output::{emit, json_line, kv_lines, HeaderView, KeyValueView};
use crate::proto::{GetRequest, GetResponse};
use crate::Outcome;
use dengine_client::Connection;

use super::bytes_of;

pub async fn run(
    connection: &Connection,
    global: &GlobalArgs,
    args: &GetArgs,
) -> Result<Outcome, CliError> {
    let request = GetRequest {
        key: bytes_of(&args.key),
        read_policy: global.read_policy().into(),
        ..Default::default()
    };
    let mut kv = connection.kv();
    let response = connection.call(kv.get(connection.request(request))).await?;
    emit(&render(global.output, &response))?;
    Ok(Outcome::Success)
}

#[derive(Serialize)]
struct GetView {
    found: bool,
    header: HeaderView,
    #[serde(skip_serializing_if = "Option::is_none")]
    kv: Option<KeyValueView>,
}

fn render(format: OutputFormat, response: &GetResponse) -> String {
    match format {
        OutputFormat::Table => response.kv.as_ref().map(kv_lines).unwrap_or_default(),
        OutputFormat::Json => json_line(&GetView {
            found: response.kv.is_some(),
            header: HeaderView::new(response.header.as_ref()),
            kv: response.kv.as_ref().map(KeyValueView::new),
        }),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::{KeyValue, ResponseHeader};

    fn response(kv: Option<KeyValue>) -> GetResponse {
        GetResponse {
            header: Some(ResponseHeader {
                cluster_id: 7,
                member_id: 1,
                revision: 20,
                raft_term: 2,
            }),
            kv,
        }
    }

    fn stored() -> KeyValue {
        KeyValue {
            key: Bytes::from_static(b"config/db"),
            value: Bytes::from_static(&[0x00, 0xff]),
            create_revision: 5,
            mod_revision: 19,
            version: 3,
            expires_at_unix_ms: 0,
            lease: 0,
        }
    }

    #[test]
    fn a_found_key_is_a_key_line_and_a_value_line() {
        assert_eq!(
            render(OutputFormat::Table, &response(Some(stored()))),
            "config/db\n0x00ff\n"
        );
    }

    #[test]
    fn a_missing_key_prints_nothing_as_text() {
        assert_eq!(render(OutputFormat::Table, &response(None)), "");
    }

    #[test]
    fn json_says_whether_the_key_was_found() {
        let found: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &response(Some(stored()))))
                .expect("valid JSON");
        assert_eq!(found["found"], true);
        assert_eq!(found["header"]["revision"], 20);
        assert_eq!(found["kv"]["value"], "0x00ff");
        assert_eq!(found["kv"]["create_revision"], 5);
        assert_eq!(found["kv"]["mod_revision"], 19);
        assert_eq!(found["kv"]["version"], 3);
        assert_eq!(found["kv"]["expires_at_unix_ms"], 0);

        let missing: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &response(None))).expect("valid JSON");
        assert_eq!(missing["found"], false);
        assert_eq!(missing["header"]["revision"], 20);
        assert!(missing.get("kv").is_none());
    }
}
