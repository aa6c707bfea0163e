//! Request limits, enforced with INVALID_ARGUMENT and a message naming the limit.

use super::vocabulary::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    pub max_request_bytes: usize,
    pub max_scan_limit: u32,
}

impl Limits {
    pub fn check_key(&self, key: &[u8]) -> Result<(), ApiError> {
        if key.is_empty() {
            return Err(ApiError::invalid("key must not be empty"));
        }
        if key.len() > self.max_key_bytes {
            return Err(ApiError::over_limit(
                "max_key_bytes",
                format!(
                    "key is {} bytes, over the limit of {} bytes (max_key_bytes)",
                    key.len(),
                    self.max_key_bytes
                ),
            ));
        }
        Ok(())
    }

    /// A scan prefix: any key's prefix, the empty one included.
    pub fn check_prefix(&self, prefix: &[u8]) -> Result<(), ApiError> {
        if prefix.len() > self.max_key_bytes {
            return Err(ApiError::over_limit(
                "max_key_bytes",
                format!(
                    "prefix is {} bytes, over the limit of {} bytes (max_key_bytes)",
                    prefix.len(),
                    self.max_key_bytes
                ),
            ));
        }
        Ok(())
    }

    pub fn check_value(&self, value: &[u8]) -> Result<(), ApiError> {
        if value.len() > self.max_value_bytes {
            return Err(ApiError::over_limit(
                "max_value_bytes",
                format!(
                    "value is {} bytes, over the limit of {} bytes (max_value_bytes)",
                    value.len(),
                    self.max_value_bytes
                ),
            ));
        }
        Ok(())
    }

    pub fn check_request(&self, encoded_len: usize) -> Result<(), ApiError> {
        if encoded_len > self.max_request_bytes {
            return Err(ApiError::over_limit(
                "max_request_bytes",
                format!(
                    "request is {encoded_len} bytes, over the limit of {} bytes (max_request_bytes)",
                    self.max_request_bytes
                ),
            ));
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

    fn limit_of(e: ApiError) -> (tonic::Code, Option<&'static str>, String) {
        let code = e.code();
        let message = e.to_string();
        match e {
            ApiError::InvalidArgument { limit, .. } => (code, limit, message),
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn each_limit_is_named_in_its_error() {
        let limits = Limits {
            max_key_bytes: 4,
            max_value_bytes: 8,
            max_request_bytes: 16,
            max_scan_limit: 10,
        };
        assert!(limits.check_key(b"abcd").is_ok());
        let (code, limit, message) = limit_of(limits.check_key(b"").unwrap_err());
        assert_eq!((code, limit), (tonic::Code::InvalidArgument, None));
        assert!(message.contains("empty"));
        for (error, name) in [
            (limits.check_key(b"abcde").unwrap_err(), "max_key_bytes"),
            (limits.check_prefix(b"abcde").unwrap_err(), "max_key_bytes"),
            (limits.check_value(&[0; 9]).unwrap_err(), "max_value_bytes"),
            (limits.check_request(17).unwrap_err(), "max_request_bytes"),
        ] {
            let (code, limit, message) = limit_of(error);
            assert_eq!(code, tonic::Code::InvalidArgument);
            assert_eq!(limit, Some(name));
            assert!(message.contains(name), "{message}");
        }
        assert!(limits.check_prefix(b"").is_ok());
    }
}
