//! Plain HTTP/1.1 to a node's probe and metrics listener, without a client library: one
//! request per connection, answer read to the end.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `method path` with `body` and returns the status code and the body of the answer.
pub async fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(address)
        .await
        .map_err(|e| format!("connect to {address}: {e}"))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send to {address}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .map_err(|e| format!("read from {address}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Ok((status, body))
}

/// The value of an unlabelled metric in the text a `/metrics` endpoint served.
pub fn metric_value(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (metric, value) = line.split_once(' ')?;
        (metric == name).then(|| value.trim().parse().ok())?
    })
}

/// Where the node whose log is `log` serves probes and metrics: the `metrics_address` of the
/// last "node started" line (the harness asks for a free port, so only the node knows it).
pub fn metrics_address(log: &str) -> Option<SocketAddr> {
    let at = log.rfind("metrics_address")?;
    let rest = &log[at..];
    let start = rest.find("127.0.0.1:")?;
    let address: String = rest[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    address.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_metrics_address_of_the_latest_run_and_metric_values() {
        let log = "INFO node started metrics_address=127.0.0.1:1000\n\
                   INFO node started \x1b[3mmetrics_address\x1b[0m\x1b[2m=\x1b[0m127.0.0.1:2000 data_dir=x\n";
        assert_eq!(
            metrics_address(log),
            Some("127.0.0.1:2000".parse().unwrap())
        );
        let text = "# HELP x y\ndengine_a 3\ndengine_ab 4\n";
        assert_eq!(metric_value(text, "dengine_ab"), Some(4.0));
        assert_eq!(metric_value(text, "dengine_c"), None);
    }
}
