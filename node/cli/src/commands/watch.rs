//! `watch KEY [--prefix] [--rev N]`: one line per event until Ctrl-C or the server ends the
//! stream. A server error (such as OUT_OF_RANGE for a compacted `--rev`) ends it with its
//! message.

use serde::Serialize;

use crate::args::{OutputFormat, WatchArgs};
use crate::error::CliError;
use crate::output::{emit, json_line, printable, KeyValueView};
use crate::proto::event::EventType;
use crate::proto::{Event, KeyValue, WatchRequest};
use crate::Outcome;
use dengine_client::Connection;

use super::bytes_of;

pub async fn run(
    connection: &Connection,
    format: OutputFormat,
    args: &WatchArgs,
) -> Result<Outcome, CliError> {
    let request = WatchRequest {
        key: bytes_of(&args.key),
        prefix: args.prefix,
        start_revision: args.rev.unwrap_or(0),
    };
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    let mut kv = connection.kv();
    // Not `connection.request`: its deadline would end the stream after `--timeout`. The
    // timeout still bounds the wait for the server to accept the watch.
    let mut events = tokio::select! {
        () = &mut interrupted => return Ok(Outcome::Success),
        stream = connection.call(kv.watch(tonic::Request::new(request))) => stream?,
    };
    loop {
        tokio::select! {
            () = &mut interrupted => return Ok(Outcome::Success),
            message = events.message() => match message? {
                Some(response) => {
                    let lines: String =
                        response.events.iter().map(|event| render(format, event)).collect();
                    emit(&lines)?;
                }
                None => return Ok(Outcome::Success),
            },
        }
    }
}

/// Resolves on Ctrl-C. If the handler cannot be installed it never resolves, and Ctrl-C keeps
/// its default effect of ending the process.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[derive(Serialize)]
struct EventView {
    #[serde(rename = "type")]
    kind: &'static str,
    kv: KeyValueView,
}

fn kind(event: &Event) -> &'static str {
    match EventType::try_from(event.event_type) {
        Ok(EventType::Put) => "PUT",
        Ok(EventType::Delete) => "DELETE",
        Err(_) => "UNKNOWN",
    }
}

/// `PUT key value (rev N)` / `DELETE key (rev N)`, or one JSON object, on one line.
fn render(format: OutputFormat, event: &Event) -> String {
    let empty = KeyValue::default();
    let kv = event.kv.as_ref().unwrap_or(&empty);
    let kind = kind(event);
    let carries_value = kind == "PUT";
    match format {
        OutputFormat::Table if carries_value => format!(
            "{kind} {} {} (rev {})\n",
            printable(&kv.key),
            printable(&kv.value),
            kv.mod_revision
        ),
        OutputFormat::Table => {
            format!("{kind} {} (rev {})\n", printable(&kv.key), kv.mod_revision)
        }
        OutputFormat::Json => json_line(&EventView {
            kind,
            kv: if carries_value {
                KeyValueView::new(kv)
            } else {
                KeyValueView::without_value(kv)
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn event(kind: EventType, value: &'static [u8], revision: i64) -> Event {
        Event {
            event_type: kind.into(),
            kv: Some(KeyValue {
                key: Bytes::from_static(b"app/x"),
                value: Bytes::from_static(value),
                mod_revision: revision,
                ..KeyValue::default()
            }),
        }
    }

    #[test]
    fn events_as_text() {
        assert_eq!(
            render(OutputFormat::Table, &event(EventType::Put, b"on", 41)),
            "PUT app/x on (rev 41)\n"
        );
        assert_eq!(
            render(OutputFormat::Table, &event(EventType::Put, &[0x9f], 42)),
            "PUT app/x 0x9f (rev 42)\n"
        );
        assert_eq!(
            render(OutputFormat::Table, &event(EventType::Delete, b"", 43)),
            "DELETE app/x (rev 43)\n"
        );
    }

    #[test]
    fn events_as_json_lines() {
        let put: serde_json::Value = serde_json::from_str(&render(
            OutputFormat::Json,
            &event(EventType::Put, b"on", 41),
        ))
        .expect("valid JSON");
        assert_eq!(put["type"], "PUT");
        assert_eq!(put["kv"]["value"], "on");
        assert_eq!(put["kv"]["mod_revision"], 41);
        let delete = render(OutputFormat::Json, &event(EventType::Delete, b"", 43));
        assert!(delete.starts_with("{\"type\":\"DELETE\""), "{delete}");
        assert!(!delete.contains("\"value\""), "{delete}");
    }

    #[test]
    fn an_unknown_event_type_is_named_so() {
        let mut odd = event(EventType::Put, b"v", 1);
        odd.event_type = 9;
        assert_eq!(render(OutputFormat::Table, &odd), "UNKNOWN app/x (rev 1)\n");
    }
}
