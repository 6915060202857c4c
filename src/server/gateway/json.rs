//! etcd's JSON mapping, as its gateway (grpc-gateway v1 with `OrigName`) writes it: proto field
//! names, 64-bit integers as strings, bytes as base64, enums by name, default values left out.
//! Requests may use either field name, numbers or strings for integers, names or numbers for
//! enums. Errors are grpc-gateway's bodies with the HTTP status of the gRPC code.

use axum::http::StatusCode;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, MethodDescriptor, SerializeOptions,
};
use serde_json::Value;
use tonic::{Code, Status};

use super::table::Route;
use crate::server::descriptors;

/// The descriptor of the method `route` calls.
pub fn method(route: &Route) -> Option<MethodDescriptor> {
    descriptors::method(route.service, route.method)
}

/// `body` as a `desc` message; an empty body is the empty message (as grpc-gateway reads it).
pub fn request(desc: &MessageDescriptor, body: &[u8]) -> Result<DynamicMessage, Status> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(DynamicMessage::new(desc.clone()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Status::invalid_argument(e.to_string()))?;
    from_value(desc, value)
}

/// A parsed JSON value as a `desc` message.
pub fn from_value(desc: &MessageDescriptor, mut value: Value) -> Result<DynamicMessage, Status> {
    // etcd's gateway ignores fields it does not know but refuses enum names it does not know.
    drop_unknown_fields(desc, &mut value);
    DynamicMessage::deserialize_with_options(desc.clone(), value, &DeserializeOptions::new())
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Removes from `value` (a `desc` message) every field `desc` does not have, at any depth.
fn drop_unknown_fields(desc: &MessageDescriptor, value: &mut Value) {
    let Value::Object(fields) = value else {
        return;
    };
    fields.retain(|name, _| {
        desc.get_field_by_name(name).is_some() || desc.get_field_by_json_name(name).is_some()
    });
    for (name, v) in fields.iter_mut() {
        let field = desc
            .get_field_by_name(name)
            .or_else(|| desc.get_field_by_json_name(name));
        let Some(Kind::Message(inner)) = field.map(|f| f.kind()) else {
            continue;
        };
        match v {
            Value::Array(items) => items
                .iter_mut()
                .for_each(|i| drop_unknown_fields(&inner, i)),
            v => drop_unknown_fields(&inner, v),
        }
    }
}

/// `msg` in etcd's JSON, its fields in field-number order as etcd writes them.
pub fn to_json(msg: &DynamicMessage) -> String {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true);
    let mut out = Vec::new();
    msg.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
        .expect("a decoded message always serializes");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// A streamed message's line: `{"result":…}` and a newline.
pub fn result_line(msg: &DynamicMessage) -> String {
    format!("{{\"result\":{}}}\n", to_json(msg))
}

/// The HTTP status grpc-gateway answers a gRPC code with.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The body of a failed unary call, its keys in grpc-gateway's order.
pub fn error(status: &Status) -> String {
    let message = Value::from(status.message());
    format!(
        "{{\"error\":{message},\"message\":{message},\"code\":{}}}",
        status.code() as i32
    )
}

/// The line a stream ends with when its call fails after it began: grpc-gateway's stream
/// error, its keys in field order.
pub fn stream_error(status: &Status) -> String {
    let http = http_status(status.code());
    let mut fields = vec![
        format!("\"grpc_code\":{}", status.code() as i32),
        format!("\"http_code\":{}", http.as_u16()),
    ];
    if !status.message().is_empty() {
        fields.push(format!("\"message\":{}", Value::from(status.message())));
    }
    if let Some(reason) = http.canonical_reason() {
        fields.push(format!("\"http_status\":{}", Value::from(reason)));
    }
    format!("{{\"error\":{{{}}}}}\n", fields.join(","))
}

/// Splits a streamed request body into the JSON values it holds, as they complete.
#[derive(Default)]
pub struct ValueSplitter {
    buf: Vec<u8>,
}

impl ValueSplitter {
    /// Appends what arrived.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete value; `Ok(None)` when more input is needed; an error when what came
    /// is not JSON.
    pub fn next_value(&mut self) -> Result<Option<Value>, serde_json::Error> {
        let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
        match values.next() {
            None => {
                self.buf.clear();
                Ok(None)
            }
            Some(Ok(v)) => {
                let used = values.byte_offset();
                self.buf.drain(..used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(name: &str) -> MessageDescriptor {
        descriptors::pool().get_message_by_name(name).unwrap()
    }

    #[test]
    fn requests_take_either_field_name_and_base64_bytes() {
        let d = desc("etcdserverpb.RangeRequest");
        let a = request(&d, br#"{"key":"Zm9v","range_end":"Zm9w","limit":"5"}"#).unwrap();
        let b = request(&d, br#"{"key":"Zm9v","rangeEnd":"Zm9w","limit":5}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            to_json(&a),
            r#"{"key":"Zm9v","range_end":"Zm9w","limit":"5"}"#
        );
        assert!(request(&d, b"  \n").unwrap().fields().next().is_none());
        assert_eq!(request(&d, b"{").unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(
            request(&d, br#"{"key":"Zm9v","nope":1}"#).unwrap(),
            request(&d, br#"{"key":"Zm9v"}"#).unwrap()
        );
        let t = desc("etcdserverpb.TxnRequest");
        assert_eq!(
            request(
                &t,
                br#"{"success":[{"request_put":{"key":"Zm9v","x":1}}],"y":[]}"#
            )
            .unwrap(),
            request(&t, br#"{"success":[{"request_put":{"key":"Zm9v"}}]}"#).unwrap()
        );
        assert_eq!(
            request(&d, br#"{"sort_order":"NOPE"}"#).unwrap_err().code(),
            Code::InvalidArgument
        );
        assert_eq!(
            request(&d, br#"{"key":5}"#).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn enums_by_name_and_defaults_left_out() {
        let d = desc("etcdserverpb.RangeRequest");
        let m = request(&d, br#"{"sort_order":"DESCEND","sort_target":0}"#).unwrap();
        assert_eq!(to_json(&m), r#"{"sort_order":"DESCEND"}"#);
        assert_eq!(
            result_line(&m),
            "{\"result\":{\"sort_order\":\"DESCEND\"}}\n"
        );
    }

    #[test]
    fn errors_look_like_grpc_gateways() {
        let s = Status::invalid_argument("etcdserver: key is not provided");
        assert_eq!(
            error(&s),
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        );
        assert_eq!(http_status(s.code()), StatusCode::BAD_REQUEST);
        assert_eq!(
            stream_error(&s),
            "{\"error\":{\"grpc_code\":3,\"http_code\":400,\"message\":\"etcdserver: key is not provided\",\"http_status\":\"Bad Request\"}}\n"
        );
    }

    #[test]
    fn the_splitter_yields_values_as_they_complete() {
        let mut s = ValueSplitter::default();
        s.push(br#"{"a":1} {"b"#);
        assert_eq!(s.next_value().unwrap(), Some(serde_json::json!({"a": 1})));
        assert_eq!(s.next_value().unwrap(), None);
        s.push(br#"":2}"#);
        assert_eq!(s.next_value().unwrap(), Some(serde_json::json!({"b": 2})));
        assert_eq!(s.next_value().unwrap(), None);
        s.push(b"]");
        assert!(s.next_value().is_err());
    }
}
