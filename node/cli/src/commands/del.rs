//! `del KEY [--prev-kv]`: prints how many keys were deleted, `1` or `0`, as etcdctl does.

use serde::Serialize;

use crate::args::{DelArgs, OutputFormat};
use crate::output::{json_line, kv_lines, HeaderView, KeyValueView};
use crate::proto::kv_client::KvClient;
use crate::proto::{DeleteRequest, DeleteResponse};
use tonic::transport::Channel;
use tonic::Request;

use super::{bytes_of, Answer};

/// Sends the request.
pub async fn call(
    mut kv: KvClient<Channel>,
    request: Request<DeleteRequest>,
) -> Answer<DeleteResponse> {
    kv.delete(request).await
}

/// The request `del` sends.
pub fn request(args: &DelArgs) -> DeleteRequest {
    DeleteRequest {
        key: bytes_of(&args.key),
        prev_kv: args.prev_kv,
    }
}

#[derive(Serialize)]
struct DeleteView {
    deleted: u32,
    header: HeaderView,
    #[serde(skip_serializing_if = "Option::is_none")]
    prev_kv: Option<KeyValueView>,
}

pub fn render(format: OutputFormat, response: &DeleteResponse) -> String {
    let deleted = u32::from(response.deleted);
    match format {
        OutputFormat::Table => {
            let mut text = format!("{deleted}\n");
            if let Some(previous) = &response.prev_kv {
                text.push_str(&kv_lines(previous));
            }
            text
        }
        OutputFormat::Json => json_line(&DeleteView {
            deleted,
            header: HeaderView::new(response.header.as_ref()),
            prev_kv: response.prev_kv.as_ref().map(KeyValueView::new),
        }),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::KeyValue;

    #[test]
    fn table_is_the_deleted_count_then_the_previous_pair() {
        let missing = DeleteResponse::default();
        assert_eq!(render(OutputFormat::Table, &missing), "0\n");
        let deleted = DeleteResponse {
            deleted: true,
            prev_kv: Some(KeyValue {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                ..KeyValue::default()
            }),
            ..DeleteResponse::default()
        };
        assert_eq!(render(OutputFormat::Table, &deleted), "1\nk\nv\n");
    }

    #[test]
    fn json_counts_like_the_table() {
        let deleted = DeleteResponse {
            deleted: true,
            ..DeleteResponse::default()
        };
        let view: serde_json::Value =
            serde_json::from_str(&render(OutputFormat::Json, &deleted)).expect("valid JSON");
        assert_eq!(view["deleted"], 1);
        assert!(view.get("prev_kv").is_none());
    }
}
