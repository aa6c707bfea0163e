//! `put KEY VALUE [--ttl D] [--prev-kv]`.

use serde::Serialize;

use crate::args::{OutputFormat, PutArgs};
use crate::output::{header_revision, json_line, kv_lines, HeaderView, KeyValueView};
use crate::proto::kv_client::KvClient;
use crate::proto::{PutRequest, PutResponse};
use dengine_client::duration::ttl_millis;
use tonic::transport::Channel;
use tonic::Request;

use super::{bytes_of, Answer};

/// Sends the request.
pub async fn call(mut kv: KvClient<Channel>, request: Request<PutRequest>) -> Answer<PutResponse> {
    kv.put(request).await
}

/// The request `put` sends.
pub fn request(args: &PutArgs) -> PutRequest {
    PutRequest {
        key: bytes_of(&args.key),
        value: bytes_of(&args.value),
        ttl_ms: ttl_millis(args.ttl),
        prev_kv: args.prev_kv,
    }
}

#[derive(Serialize)]
struct PutView {
    header: HeaderView,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev_kv: Option<KeyValueView>,
}

/// `OK (rev N)`, then the previous key and value lines if asked for and present.
pub fn render(format: OutputFormat, response: &PutResponse) -> String {
    match format {
        OutputFormat::Table => {
            let mut text = format!("OK (rev {})\n", header_revision(response.header.as_ref()));
            if let Some(previous) = &response.prev_kv {
                text.push_str(&kv_lines(previous));
            }
            text
        }
        OutputFormat::Json => json_line(&PutView {
            header: HeaderView::new(response.header.as_ref()),
            prev_kv: response.prev_kv.as_ref().map(KeyValueView::new),
        }),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::{KeyValue, ResponseHeader};

    fn response(prev_kv: Option<KeyValue>) -> PutResponse {
        PutResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 12,
                raft_term: 3,
            }),
            prev_kv,
        }
    }

    #[test]
    fn table_is_ok_and_the_revision() {
        assert_eq!(
            render(OutputFormat::Table, &response(None)),
            "OK (rev 12)\n"
        );
        let previous = KeyValue {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"old"),
            ..KeyValue::default()
        };
        assert_eq!(
            render(OutputFormat::Table, &response(Some(previous))),
            "OK (rev 12)\nk\nold\n"
        );
    }

    #[test]
    fn json_has_the_header_revision() {
        assert_eq!(
            render(OutputFormat::Json, &response(None)),
            "{\"header\":{\"cluster_id\":1,\"member_id\":2,\"revision\":12,\"raft_term\":3}}\n"
        );
    }
}
