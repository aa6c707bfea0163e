//! Request limits, enforced with INVALID_ARGUMENT and a message naming the limit.

use tonic::Status;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_request_bytes: usize,
    pub max_scan_limit: u32,
}

impl Limits {
    pub fn check_key(&self, key: &[u8]) -> Result<(), Status> {
        if key.is_empty() {
            return Err(Status::invalid_argument("key must not be empty"));
        }
        if key.len() > self.max_key_bytes {
            return Err(Status::invalid_argument(format!(
                "key is {} bytes, over the limit of {} bytes (max_key_bytes)",
                key.len(),
                self.max_key_bytes
            )));
        }
        Ok(())
    }

    pub fn check_value(&self, value: &[u8]) -> Result<(), Status> {
        if value.len() > self.max_value_bytes {
            return Err(Status::invalid_argument(format!(
                "value is {} bytes, over the limit of {} bytes (max_value_bytes)",
                value.len(),
                self.max_value_bytes
            )));
        }
        Ok(())
    }

    pub fn check_request(&self, encoded_len: usize) -> Result<(), Status> {
        if encoded_len > self.max_request_bytes {
            return Err(Status::invalid_argument(format!(
                "request is {encoded_len} bytes, over the limit of {} bytes (max_request_bytes)",
                self.max_request_bytes
            )));
        }
        Ok(())
    }

    /// gRPC's own decoding limit sits above ours, so an oversized request still reaches our
    /// check and gets our message rather than a transport error.
    pub fn transport_limit(&self) -> usize {
        self.max_request_bytes.saturating_mul(2).max(4 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_limit_is_named_in_its_error() {
        let limits = Limits {
            max_key_bytes: 4,
            max_value_bytes: 8,
            max_request_bytes: 16,
            max_scan_limit: 10,
        };
        assert!(limits.check_key(b"abcd").is_ok());
        let e = limits.check_key(b"").unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("empty"));
        assert!(limits
            .check_key(b"abcde")
            .unwrap_err()
            .message()
            .contains("max_key_bytes"));
        assert!(limits
            .check_value(&[0; 9])
            .unwrap_err()
            .message()
            .contains("max_value_bytes"));
        assert!(limits
            .check_request(17)
            .unwrap_err()
            .message()
            .contains("max_request_bytes"));
    }
}
