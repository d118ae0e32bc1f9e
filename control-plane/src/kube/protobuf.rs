//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! which kubectl's typed clients send (`create namespace`, `create deployment`, drain's
//! evictions, typed deletes) and do not retry as JSON. A body is the magic `k8s\0` and a
//! `runtime.Unknown` (typeMeta, raw); raw is the object's own generated.proto encoding.
//!
//! It is decoded into the JSON kubectl would have sent for the same object, and the request
//! then goes on as a JSON one: validation, fieldValidation, authorization, size caps and dry
//! runs are the JSON path's, not a copy. The decoder is table-driven: the tables
//! ([`super::protobuf_tables`]) are generated from Kubernetes' own generated.proto and
//! types.go, so every field Kubernetes has comes out under its JSON name, and a field Skiff's
//! types lack is an unknown field exactly as it is in JSON.

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, header};
use serde_json::{Map, Number, Value};

use super::protobuf_tables::{MESSAGES, ROOTS};
use super::resources::Target;
use super::status::KubeError;

/// Kubernetes' protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What every protobuf body starts with.
const MAGIC: &[u8; 4] = b"k8s\0";

/// How deep messages may nest. Kubernetes' own messages for these kinds nest about a dozen
/// deep; the bound keeps a hostile body from recursing the stack away.
pub const MAX_DEPTH: usize = 32;

/// How many values one body may decode to. A repeated field of empty messages costs two
/// bytes each on the wire and far more as JSON: this bounds what a body can cost in memory
/// whatever --max-request-bytes allows.
pub const MAX_VALUES: usize = 100_000;

/// One message's fields, sorted by number.
pub struct Message {
    pub name: &'static str,
    pub fields: &'static [Field],
}

/// One field: its number on the wire, its JSON name ("" for a Go struct embedded inline,
/// whose fields are the parent's), and how its JSON is written.
pub struct Field {
    pub number: u32,
    pub name: &'static str,
    pub shape: Shape,
    pub ty: Type,
    /// A Go pointer: present means set, so a zero value is written (`replicas: 0`,
    /// `gracePeriodSeconds: 0`).
    pub pointer: bool,
    /// `omitempty`: a zero value of a non-pointer field is left out, as encoding/json does.
    pub omitempty: bool,
}

#[derive(Clone, Copy)]
pub enum Shape {
    Single,
    Repeated,
    /// `map<string, ty>`: entries are messages of key (1) and value (2).
    Map,
}

#[derive(Clone, Copy)]
pub enum Type {
    String,
    Bool,
    Int32,
    Int64,
    /// An index into [`MESSAGES`].
    Message(usize),
    /// metav1.Time: seconds and nanos, written as RFC 3339 to the second.
    Time,
    /// metav1.MicroTime: RFC 3339 to the microsecond.
    MicroTime,
    /// FieldsV1 and RawExtension: raw bytes (1) holding JSON.
    RawJson,
    /// intstr.IntOrString: type (1), intVal (2), strVal (3); a number or a string in JSON.
    IntOrString,
    /// resource.Quantity: its string (1).
    Quantity,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the body does not start with Kubernetes' protobuf prefix \"k8s\\x00\"")]
    Magic,
    #[error("{at}: a varint runs past the end of its message")]
    TruncatedVarint { at: String },
    #[error("{at}: a varint is longer than 10 bytes")]
    LongVarint { at: String },
    #[error("{at}: a length of {length} bytes runs past the end of its message")]
    LengthPastEnd { at: String, length: u64 },
    #[error("{at}: wire type {got} where {expected} is expected")]
    WireType {
        at: String,
        got: u8,
        expected: &'static str,
    },
    #[error("{at}: field number 0 is not valid")]
    FieldZero { at: String },
    #[error("{at}: messages nest more than {MAX_DEPTH} deep")]
    TooDeep { at: String },
    #[error("the body decodes to more than {MAX_VALUES} values")]
    TooManyValues,
    #[error("{at}: a string is not UTF-8")]
    NotUtf8 { at: String },
    #[error("{at}: {problem}")]
    Invalid { at: String, problem: String },
}

/// The body as JSON when it is a protobuf one (by its Content-Type), checked against what
/// the request path takes; any other body as it came. Every handler that reads a body gets
/// it through here ([`super::route`]).
pub fn decode_body(
    headers: &HeaderMap,
    method: &Method,
    target: &Target,
    body: Bytes,
) -> Result<Bytes, KubeError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if !media.eq_ignore_ascii_case(MEDIA_TYPE) || body.is_empty() {
        return Ok(body);
    }
    let Some(expected) = expected_kinds(method, target) else {
        // A patch says what it is in its own media type; the patch handlers refuse this one.
        return Ok(body);
    };
    let envelope = unknown(&body).map_err(|e| KubeError::BadRequest(e.to_string()))?;
    if !envelope.content_encoding.is_empty() {
        return Err(KubeError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown content encoding ({:?})",
            envelope.content_encoding
        )));
    }
    if !envelope.content_type.is_empty() && envelope.content_type != MEDIA_TYPE {
        return Err(KubeError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format ({:?}) - accepted media types include: application/json, {MEDIA_TYPE}",
            envelope.content_type
        )));
    }
    let (version, kind) = (envelope.api_version.as_str(), envelope.kind.as_str());
    let wanted = expected.first().map_or("", |(_, k)| *k);
    // Kubernetes' words (transformDecodeError in the apiserver's handlers).
    // Every group version registers DeleteOptions: a client sends it in its own.
    let registered =
        |(v, k, _): &&(&str, &str, usize)| *k == kind && (*v == version || kind == "DeleteOptions");
    let Some(&(_, _, root)) = ROOTS.iter().find(registered) else {
        return Err(KubeError::BadRequest(format!(
            "{kind} in version {version:?} cannot be handled as a {wanted}: no kind {kind:?} is registered for version {version:?}"
        )));
    };
    if !expected
        .iter()
        .any(|(v, k)| *k == kind && (v.is_empty() || *v == version))
    {
        return Err(KubeError::BadRequest(format!(
            "the object provided is unrecognized (must be of type {wanted}): {kind} in version {version:?}"
        )));
    }
    let mut object = decode(root, envelope.raw).map_err(|e| {
        KubeError::BadRequest(format!(
            "the protobuf body is not a valid {version} {kind}: {e}"
        ))
    })?;
    // The typeMeta travels in the envelope; JSON carries it in the object.
    object.insert("apiVersion".into(), Value::String(envelope.api_version));
    object.insert("kind".into(), Value::String(envelope.kind));
    Ok(Bytes::from(
        serde_json::to_vec(&Value::Object(object)).expect("a JSON value encodes"),
    ))
}

/// The (apiVersion, kind) a body on this request may be ("" for any version), or `None`
/// when the request takes no object body.
fn expected_kinds(method: &Method, target: &Target) -> Option<Vec<(&'static str, &'static str)>> {
    let kind = target.kind;
    match (method, target.subresource.as_deref()) {
        // Every group registers DeleteOptions; clients send it in their own.
        (&Method::DELETE, _) => Some(vec![("", "DeleteOptions")]),
        (&Method::POST, Some("eviction")) => Some(vec![
            ("policy/v1", "Eviction"),
            ("policy/v1beta1", "Eviction"),
        ]),
        (&Method::PUT, Some("scale")) => Some(vec![("autoscaling/v1", "Scale")]),
        (&Method::POST, None) | (&Method::PUT, None | Some("status")) => {
            Some(vec![(kind.api_version(), kind.as_str())])
        }
        _ => None,
    }
}

/// The `runtime.Unknown` a protobuf body wraps its object in.
#[derive(Debug, Default, PartialEq)]
struct Unknown<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

fn unknown(body: &[u8]) -> Result<Unknown<'_>, DecodeError> {
    let rest = body.strip_prefix(MAGIC).ok_or(DecodeError::Magic)?;
    let mut envelope = Unknown::default();
    let mut reader = Reader::new(rest);
    while let Some((number, wire)) = reader.key("Unknown")? {
        let at = || format!("Unknown.{number}");
        match number {
            1 => {
                let mut meta = Reader::new(reader.bytes(wire, &at)?);
                while let Some((number, wire)) = meta.key("TypeMeta")? {
                    let at = || format!("TypeMeta.{number}");
                    match number {
                        1 => envelope.api_version = meta.string(wire, &at)?,
                        2 => envelope.kind = meta.string(wire, &at)?,
                        _ => meta.skip(wire, &at)?,
                    }
                }
            }
            2 => envelope.raw = reader.bytes(wire, &at)?,
            3 => envelope.content_encoding = reader.string(wire, &at)?,
            4 => envelope.content_type = reader.string(wire, &at)?,
            _ => reader.skip(wire, &at)?,
        }
    }
    Ok(envelope)
}

/// Message `root` of [`MESSAGES`], decoded from `bytes` into its JSON object.
pub fn decode(root: usize, bytes: &[u8]) -> Result<Map<String, Value>, DecodeError> {
    let mut budget = MAX_VALUES;
    message(&MESSAGES[root], bytes, 0, "", &mut budget)
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH: u8 = 2;
const FIXED32: u8 = 5;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    fn varint(&mut self, at: &dyn Fn() -> String) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err(DecodeError::TruncatedVarint { at: at() });
            };
            self.at += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::LongVarint { at: at() })
    }

    /// The next field's number and wire type, or `None` at the end.
    fn key(&mut self, message: &str) -> Result<Option<(u32, u8)>, DecodeError> {
        if self.at == self.bytes.len() {
            return Ok(None);
        }
        let key = self.varint(&|| format!("{message}: a field key"))?;
        let number = u32::try_from(key >> 3).map_err(|_| DecodeError::Invalid {
            at: message.to_string(),
            problem: format!("field number {} is out of range", key >> 3),
        })?;
        if number == 0 {
            return Err(DecodeError::FieldZero {
                at: message.to_string(),
            });
        }
        Ok(Some((number, (key & 7) as u8)))
    }

    fn take(&mut self, length: u64, at: &dyn Fn() -> String) -> Result<&'a [u8], DecodeError> {
        let remaining = self.bytes.len() - self.at;
        match usize::try_from(length) {
            Ok(n) if n <= remaining => {
                let taken = &self.bytes[self.at..self.at + n];
                self.at += n;
                Ok(taken)
            }
            _ => Err(DecodeError::LengthPastEnd { at: at(), length }),
        }
    }

    fn bytes(&mut self, wire: u8, at: &dyn Fn() -> String) -> Result<&'a [u8], DecodeError> {
        expect(wire, LENGTH, at)?;
        let length = self.varint(at)?;
        self.take(length, at)
    }

    fn string(&mut self, wire: u8, at: &dyn Fn() -> String) -> Result<String, DecodeError> {
        let bytes = self.bytes(wire, at)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8 { at: at() })
    }

    fn skip(&mut self, wire: u8, at: &dyn Fn() -> String) -> Result<(), DecodeError> {
        match wire {
            VARINT => self.varint(at).map(drop),
            FIXED64 => self.take(8, at).map(drop),
            LENGTH => {
                let length = self.varint(at)?;
                self.take(length, at).map(drop)
            }
            FIXED32 => self.take(4, at).map(drop),
            got => Err(DecodeError::WireType {
                at: at(),
                got,
                expected: "a varint, fixed or length-delimited field",
            }),
        }
    }
}

fn expect(got: u8, wanted: u8, at: &dyn Fn() -> String) -> Result<(), DecodeError> {
    if got == wanted {
        return Ok(());
    }
    let expected = match wanted {
        VARINT => "a varint (0)",
        _ => "length-delimited (2)",
    };
    Err(DecodeError::WireType {
        at: at(),
        got,
        expected,
    })
}

fn join(path: &str, name: &str) -> String {
    match path.is_empty() {
        true => name.to_string(),
        false => format!("{path}.{name}"),
    }
}

fn message(
    schema: &Message,
    bytes: &[u8],
    depth: usize,
    path: &str,
    budget: &mut usize,
) -> Result<Map<String, Value>, DecodeError> {
    if depth >= MAX_DEPTH {
        return Err(DecodeError::TooDeep {
            at: path.to_string(),
        });
    }
    let mut reader = Reader::new(bytes);
    // Values by field, in the order of the schema's fields; unknown ones after.
    let mut values: Vec<Option<Value>> = vec![None; schema.fields.len()];
    let mut unknown = Map::new();
    let context = if path.is_empty() { schema.name } else { path };
    while let Some((number, wire)) = reader.key(context)? {
        *budget = budget.checked_sub(1).ok_or(DecodeError::TooManyValues)?;
        let Ok(i) = schema.fields.binary_search_by_key(&number, |f| f.number) else {
            // Not a field Kubernetes has: kept under a name that says so, so that the JSON
            // path's fieldValidation reports it (Strict) or drops it (Warn, Ignore).
            reader.skip(wire, &|| join(path, &format!("#{number}")))?;
            unknown.insert(format!("protobuf field {number}"), Value::Null);
            continue;
        };
        let field = &schema.fields[i];
        let here = join(path, field.name);
        let at = || here.clone();
        match field.shape {
            Shape::Single => {
                let value = single(field.ty, &mut reader, wire, depth, &here, budget)?;
                values[i] = Some(match (values[i].take(), value) {
                    // A message given twice is merged, as protobuf does.
                    (Some(Value::Object(mut old)), Value::Object(new)) => {
                        old.extend(new);
                        Value::Object(old)
                    }
                    (_, value) => value,
                });
            }
            Shape::Repeated => {
                let list = values[i].get_or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(list) = list else {
                    unreachable!("a repeated field's value is an array")
                };
                let numeric = matches!(field.ty, Type::Int32 | Type::Int64 | Type::Bool);
                if numeric && wire == LENGTH {
                    // Packed: a run of varints.
                    let mut packed = Reader::new(reader.bytes(wire, &at)?);
                    while packed.at < packed.bytes.len() {
                        *budget = budget.checked_sub(1).ok_or(DecodeError::TooManyValues)?;
                        list.push(single(field.ty, &mut packed, VARINT, depth, &here, budget)?);
                    }
                } else {
                    list.push(single(field.ty, &mut reader, wire, depth, &here, budget)?);
                }
            }
            Shape::Map => {
                let entry = reader.bytes(wire, &at)?;
                let (key, value) = map_entry(field.ty, entry, depth, &here, budget)?;
                let map = values[i].get_or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(map) = map {
                    map.insert(key, value);
                }
            }
        }
    }
    let mut object = Map::new();
    for (field, value) in schema.fields.iter().zip(values) {
        let Some(value) = value else { continue };
        if matches!(field.shape, Shape::Single)
            && !field.pointer
            && field.omitempty
            && is_zero(&value)
        {
            continue;
        }
        match (field.name, value) {
            ("", Value::Object(inline)) => object.extend(inline),
            (name, value) => {
                object.insert(name.to_string(), value);
            }
        }
    }
    object.extend(unknown);
    Ok(object)
}

/// What encoding/json's `omitempty` leaves out; an empty struct too, which Go writes as
/// `{}` but which means what its absence means.
fn is_zero(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn single(
    ty: Type,
    reader: &mut Reader<'_>,
    wire: u8,
    depth: usize,
    path: &str,
    budget: &mut usize,
) -> Result<Value, DecodeError> {
    let at = || path.to_string();
    Ok(match ty {
        Type::String => Value::String(reader.string(wire, &at)?),
        Type::Bool => {
            expect(wire, VARINT, &at)?;
            Value::Bool(reader.varint(&at)? != 0)
        }
        // proto2 int32 is a sign-extended varint: the low 32 bits are the value.
        Type::Int32 => {
            expect(wire, VARINT, &at)?;
            Value::from(reader.varint(&at)? as i64 as i32)
        }
        Type::Int64 => {
            expect(wire, VARINT, &at)?;
            Value::from(reader.varint(&at)? as i64)
        }
        Type::Message(index) => {
            let bytes = reader.bytes(wire, &at)?;
            Value::Object(message(&MESSAGES[index], bytes, depth + 1, path, budget)?)
        }
        Type::Time | Type::MicroTime => time(ty, reader.bytes(wire, &at)?, path)?,
        Type::RawJson => raw_json(reader.bytes(wire, &at)?, path)?,
        Type::IntOrString => int_or_string(reader.bytes(wire, &at)?, path)?,
        Type::Quantity => {
            let mut inner = Reader::new(reader.bytes(wire, &at)?);
            let mut quantity = String::new();
            while let Some((number, wire)) = inner.key(path)? {
                match number {
                    1 => quantity = inner.string(wire, &at)?,
                    _ => inner.skip(wire, &at)?,
                }
            }
            Value::String(quantity)
        }
    })
}

/// One `map<string, ty>` entry.
fn map_entry(
    ty: Type,
    bytes: &[u8],
    depth: usize,
    path: &str,
    budget: &mut usize,
) -> Result<(String, Value), DecodeError> {
    let mut reader = Reader::new(bytes);
    let (mut key, mut value) = (String::new(), None);
    while let Some((number, wire)) = reader.key(path)? {
        match number {
            1 => key = reader.string(wire, &|| format!("{path} (a key)"))?,
            2 => {
                let here = format!("{path}[{key:?}]");
                value = Some(single(ty, &mut reader, wire, depth, &here, budget)?);
            }
            _ => reader.skip(wire, &|| path.to_string())?,
        }
    }
    // An entry without its value has the type's zero value.
    let value = value.unwrap_or_else(|| match ty {
        Type::String | Type::Quantity => Value::String(String::new()),
        Type::Bool => Value::Bool(false),
        Type::Int32 | Type::Int64 | Type::IntOrString => Value::from(0),
        Type::Message(_) => Value::Object(Map::new()),
        Type::Time | Type::MicroTime | Type::RawJson => Value::Null,
    });
    Ok((key, value))
}

fn time(ty: Type, bytes: &[u8], path: &str) -> Result<Value, DecodeError> {
    let at = || path.to_string();
    let mut reader = Reader::new(bytes);
    let (mut seconds, mut nanos) = (None, 0i64);
    while let Some((number, wire)) = reader.key(path)? {
        match number {
            1 => {
                expect(wire, VARINT, &at)?;
                seconds = Some(reader.varint(&at)? as i64);
            }
            2 => {
                expect(wire, VARINT, &at)?;
                nanos = i64::from(reader.varint(&at)? as i64 as i32);
            }
            _ => reader.skip(wire, &at)?,
        }
    }
    // Kubernetes writes a zero time as an empty message; JSON has it as null.
    let Some(seconds) = seconds else {
        return Ok(Value::Null);
    };
    let invalid = || DecodeError::Invalid {
        at: path.to_string(),
        problem: format!("{seconds} seconds and {nanos} nanoseconds is not a time"),
    };
    let nanos = u32::try_from(nanos).map_err(|_| invalid())?;
    let time = chrono::DateTime::from_timestamp(seconds, nanos).ok_or_else(invalid)?;
    let format = match ty {
        Type::MicroTime => chrono::SecondsFormat::Micros,
        _ => chrono::SecondsFormat::Secs,
    };
    Ok(Value::String(time.to_rfc3339_opts(format, true)))
}

fn raw_json(bytes: &[u8], path: &str) -> Result<Value, DecodeError> {
    let at = || path.to_string();
    let mut reader = Reader::new(bytes);
    let mut value = Value::Null;
    while let Some((number, wire)) = reader.key(path)? {
        match number {
            1 => {
                let raw = reader.bytes(wire, &at)?;
                value = match raw.is_empty() {
                    true => Value::Null,
                    false => serde_json::from_slice(raw).map_err(|e| DecodeError::Invalid {
                        at: path.to_string(),
                        problem: format!("raw is not JSON: {e}"),
                    })?,
                };
            }
            _ => reader.skip(wire, &at)?,
        }
    }
    Ok(value)
}

fn int_or_string(bytes: &[u8], path: &str) -> Result<Value, DecodeError> {
    let at = || path.to_string();
    let mut reader = Reader::new(bytes);
    let (mut kind, mut int, mut string) = (0u64, 0i32, String::new());
    while let Some((number, wire)) = reader.key(path)? {
        match number {
            1 => {
                expect(wire, VARINT, &at)?;
                kind = reader.varint(&at)?;
            }
            2 => {
                expect(wire, VARINT, &at)?;
                int = reader.varint(&at)? as i64 as i32;
            }
            3 => string = reader.string(wire, &at)?,
            _ => reader.skip(wire, &at)?,
        }
    }
    match kind {
        0 => Ok(Value::Number(Number::from(int))),
        1 => Ok(Value::String(string)),
        other => Err(DecodeError::Invalid {
            at: path.to_string(),
            problem: format!("IntOrString type {other} is neither 0 (int) nor 1 (string)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::apply::{FieldValidation, check_fields};
    use k8s_pb::api::apps::v1 as apps;
    use k8s_pb::api::core::v1 as core;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
    use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown as PbUnknown};
    use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
    use prost::Message as _;
    use serde_json::json;
    use skiff_api::Kind;

    fn root(version: &str, kind: &str) -> usize {
        ROOTS
            .iter()
            .find(|(v, k, _)| *v == version && *k == kind)
            .map(|r| r.2)
            .unwrap()
    }

    fn envelope(version: &str, kind: &str, raw: Vec<u8>) -> Bytes {
        let unknown = PbUnknown {
            type_meta: Some(TypeMeta {
                api_version: Some(version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        Bytes::from(body)
    }

    fn protobuf_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, MEDIA_TYPE.parse().unwrap());
        headers
    }

    fn target(kind: Kind, namespace: Option<&str>, sub: Option<&str>) -> Target {
        Target {
            kind,
            namespace: namespace.map(String::from),
            name: None,
            subresource: sub.map(String::from),
        }
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    /// What kubectl's typed client writes for `kubectl run web --image=busybox` and more:
    /// non-pointer fields always present (gogo writes them even when zero), as Kubernetes'
    /// own encoder does.
    fn pod() -> core::Pod {
        core::Pod {
            metadata: Some(meta::ObjectMeta {
                name: some("web"),
                namespace: some(""),
                labels: [("app".to_string(), "web".to_string())].into(),
                creation_timestamp: Some(meta::Time::default()),
                managed_fields: vec![meta::ManagedFieldsEntry {
                    manager: some("kubectl"),
                    operation: some("Update"),
                    time: Some(meta::Time {
                        seconds: Some(1_700_000_000),
                        nanos: Some(0),
                    }),
                    fields_type: some("FieldsV1"),
                    fields_v1: Some(meta::FieldsV1 {
                        raw: Some(br#"{"f:spec":{}}"#.to_vec()),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            spec: Some(core::PodSpec {
                containers: vec![core::Container {
                    name: some("main"),
                    image: some("busybox"),
                    command: vec!["sleep".into(), "3600".into()],
                    ports: vec![core::ContainerPort {
                        name: some("http"),
                        container_port: Some(8080),
                        host_port: Some(0),
                        protocol: some("TCP"),
                        ..Default::default()
                    }],
                    resources: Some(core::ResourceRequirements {
                        limits: [(
                            "memory".to_string(),
                            Quantity {
                                string: some("64Mi"),
                            },
                        )]
                        .into(),
                        ..Default::default()
                    }),
                    liveness_probe: Some(core::Probe {
                        handler: Some(core::ProbeHandler {
                            http_get: Some(core::HttpGetAction {
                                path: some("/"),
                                port: Some(IntOrString {
                                    r#type: Some(1),
                                    int_val: Some(0),
                                    str_val: some("http"),
                                }),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        period_seconds: Some(5),
                        ..Default::default()
                    }),
                    stdin: Some(false),
                    termination_message_path: some(""),
                    ..Default::default()
                }],
                volumes: vec![core::Volume {
                    name: some("scratch"),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(core::EmptyDirVolumeSource::default()),
                        ..Default::default()
                    }),
                }],
                restart_policy: some("Never"),
                termination_grace_period_seconds: Some(0),
                host_network: Some(false),
                dns_policy: some(""),
                ..Default::default()
            }),
            status: Some(core::PodStatus::default()),
        }
    }

    #[test]
    fn a_pod_encoded_as_kubernetes_does_decodes_to_the_json_kubectl_sends() {
        let object = decode(root("v1", "Pod"), &pod().encode_to_vec()).unwrap();
        let expected = json!({
            "metadata": {
                "name": "web",
                "labels": {"app": "web"},
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "time": "2023-11-14T22:13:20Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}},
                }],
            },
            "spec": {
                "containers": [{
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    // hostPort is omitempty and not a pointer: 0 is left out.
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"limits": {"memory": "64Mi"}},
                    // The probe's handler is inline; the port is a string IntOrString.
                    "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
                }],
                // The volume source is inline; an empty emptyDir is a pointer, so kept.
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "restartPolicy": "Never",
                // A pointer: 0 is a value (delete at once), not an absence.
                "terminationGracePeriodSeconds": 0,
            },
        });
        assert_eq!(Value::Object(object), expected);
    }

    #[test]
    fn a_deployment_keeps_zero_replicas_and_int_or_string_numbers() {
        let deployment = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: some("web"),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(0),
                selector: Some(meta::LabelSelector {
                    match_labels: [("app".to_string(), "web".to_string())].into(),
                    ..Default::default()
                }),
                strategy: Some(apps::DeploymentStrategy {
                    r#type: some("RollingUpdate"),
                    rolling_update: Some(apps::RollingUpdateDeployment {
                        max_surge: Some(IntOrString {
                            r#type: Some(0),
                            int_val: Some(1),
                            str_val: some(""),
                        }),
                        max_unavailable: Some(IntOrString {
                            r#type: Some(1),
                            int_val: Some(0),
                            str_val: some("25%"),
                        }),
                    }),
                }),
                min_ready_seconds: Some(0),
                paused: Some(false),
                ..Default::default()
            }),
            status: Some(apps::DeploymentStatus::default()),
        };
        let object = decode(root("apps/v1", "Deployment"), &deployment.encode_to_vec()).unwrap();
        assert_eq!(
            Value::Object(object),
            json!({
                "metadata": {"name": "web"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "web"}},
                    "strategy": {
                        "type": "RollingUpdate",
                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"},
                    },
                },
            })
        );
    }

    #[test]
    fn an_event_has_its_micro_time_and_negative_int32s() {
        let event = core::Event {
            metadata: Some(meta::ObjectMeta {
                name: some("e"),
                ..Default::default()
            }),
            event_time: Some(meta::MicroTime {
                seconds: Some(1_700_000_000),
                nanos: Some(123_456_000),
            }),
            count: Some(-3),
            ..Default::default()
        };
        let object = decode(root("v1", "Event"), &event.encode_to_vec()).unwrap();
        assert_eq!(object["eventTime"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(object["count"], -3);
    }

    #[test]
    fn a_protobuf_delete_options_body_reads_as_its_json() {
        let options = meta::DeleteOptions {
            grace_period_seconds: Some(0),
            propagation_policy: some("Foreground"),
            dry_run: vec!["All".into()],
            ..Default::default()
        };
        let body = envelope("v1", "DeleteOptions", options.encode_to_vec());
        let t = target(Kind::Pod, Some("default"), None);
        let json = decode_body(&protobuf_headers(), &Method::DELETE, &t, body).unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "propagationPolicy": "Foreground",
                "dryRun": ["All"],
            })
        );
    }

    #[test]
    fn a_namespace_body_gets_its_type_meta_and_json_bodies_pass_unchanged() {
        let namespace = core::Namespace {
            metadata: Some(meta::ObjectMeta {
                name: some("team"),
                ..Default::default()
            }),
            spec: Some(core::NamespaceSpec::default()),
            status: Some(core::NamespaceStatus::default()),
        };
        let body = envelope("v1", "Namespace", namespace.encode_to_vec());
        let t = target(Kind::Namespace, None, None);
        let json = decode_body(&protobuf_headers(), &Method::POST, &t, body.clone()).unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        );
        let plain = Bytes::from_static(br#"{"metadata":{"name":"team"}}"#);
        let passed = decode_body(&HeaderMap::new(), &Method::POST, &t, plain.clone()).unwrap();
        assert_eq!(passed, plain);
    }

    #[test]
    fn evictions_and_scales_are_read_on_their_subresources() {
        let eviction = k8s_pb::api::policy::v1::Eviction {
            metadata: Some(meta::ObjectMeta {
                name: some("web"),
                ..Default::default()
            }),
            delete_options: Some(meta::DeleteOptions {
                grace_period_seconds: Some(3),
                ..Default::default()
            }),
        };
        let t = target(Kind::Pod, Some("default"), Some("eviction"));
        let body = envelope("policy/v1", "Eviction", eviction.encode_to_vec());
        let json = decode_body(&protobuf_headers(), &Method::POST, &t, body).unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(value["deleteOptions"]["gracePeriodSeconds"], 3);
        assert_eq!(value["metadata"]["name"], "web");

        let scale = k8s_pb::api::autoscaling::v1::Scale {
            metadata: Some(meta::ObjectMeta {
                name: some("web"),
                resource_version: some("7"),
                ..Default::default()
            }),
            spec: Some(k8s_pb::api::autoscaling::v1::ScaleSpec { replicas: Some(0) }),
            status: None,
        };
        let t = target(Kind::Deployment, Some("default"), Some("scale"));
        let body = envelope("autoscaling/v1", "Scale", scale.encode_to_vec());
        let json = decode_body(&protobuf_headers(), &Method::PUT, &t, body).unwrap();
        let value: Value = serde_json::from_slice(&json).unwrap();
        // Scale's replicas is not a pointer and is omitempty: 0 is absent, as in JSON.
        assert!(value.get("spec").is_none(), "{value}");
        assert_eq!(value["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn a_body_of_another_kind_or_an_unserved_one_is_refused_as_kubernetes_words_it() {
        let t = target(Kind::Pod, Some("default"), None);
        let namespace = core::Namespace::default().encode_to_vec();
        let body = envelope("v1", "Namespace", namespace);
        let wrong = decode_body(&protobuf_headers(), &Method::POST, &t, body);
        assert!(
            matches!(&wrong, Err(KubeError::BadRequest(m)) if m.contains("must be of type Pod")),
            "{wrong:?}"
        );
        let body = envelope("v1", "Secret", Vec::new());
        let unserved = decode_body(&protobuf_headers(), &Method::POST, &t, body);
        assert!(
            matches!(&unserved, Err(KubeError::BadRequest(m)) if m.contains(r#"no kind "Secret""#)),
            "{unserved:?}"
        );
        let mut unknown = PbUnknown::decode(&envelope("v1", "Pod", Vec::new())[4..]).unwrap();
        unknown.content_encoding = some("gzip");
        let mut body = MAGIC.to_vec();
        body.extend(unknown.encode_to_vec());
        let encoded = decode_body(&protobuf_headers(), &Method::POST, &t, body.into());
        assert!(
            matches!(&encoded, Err(KubeError::UnsupportedMediaType(m)) if m.contains("gzip")),
            "{encoded:?}"
        );
        let no_magic = decode_body(
            &protobuf_headers(),
            &Method::POST,
            &t,
            Bytes::from_static(b"{}"),
        );
        assert!(
            matches!(&no_magic, Err(KubeError::BadRequest(m)) if m.contains("prefix")),
            "{no_magic:?}"
        );
    }

    #[test]
    fn fields_skiff_lacks_are_unknown_fields_as_in_json() {
        let mut pod = pod();
        let spec = pod.spec.as_mut().unwrap();
        spec.host_ipc = Some(true);
        let mut raw = pod.encode_to_vec();
        // A field number Kubernetes' Pod does not have either.
        raw.extend([0xc8, 0x06, 0x01]); // field 105, varint 1
        let body = envelope("v1", "Pod", raw);
        let t = target(Kind::Pod, Some("default"), None);
        let json = decode_body(&protobuf_headers(), &Method::POST, &t, body).unwrap();
        let mut object: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(object["spec"]["hostIPC"], true);
        assert!(object.get("protobuf field 105").is_some(), "{object}");
        let strict = check_fields(Kind::Pod, &mut object.clone(), FieldValidation::Strict);
        let Err(KubeError::BadRequest(message)) = strict else {
            panic!("strict validation passed: {strict:?}");
        };
        assert!(
            message.contains(r#"unknown field "protobuf field 105""#),
            "{message}"
        );
        assert!(
            message.contains(r#"unknown field "spec.hostIPC""#),
            "{message}"
        );
        let warnings = check_fields(Kind::Pod, &mut object, FieldValidation::Warn).unwrap();
        assert!(
            warnings.iter().any(|w| w.contains("spec.hostIPC")),
            "{warnings:?}"
        );
        assert!(object["spec"].get("hostIPC").is_none());
    }

    #[test]
    fn hostile_bodies_are_clear_errors_never_panics() {
        let pod = root("v1", "Pod");
        let cases: [(&[u8], &str); 7] = [
            // metadata (1, length-delimited) whose length varint never ends.
            (&[0x0a, 0xff], "varint runs past"),
            (
                &[
                    0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "longer than 10",
            ),
            // metadata claims 100 bytes, has 1.
            (&[0x0a, 100, 0x00], "runs past the end"),
            // metadata as a varint.
            (&[0x08, 0x01], "wire type 0"),
            // metadata.name (1) holding invalid UTF-8.
            (&[0x0a, 0x03, 0x0a, 0x01, 0xff], "not UTF-8"),
            // Field number 0.
            (&[0x00, 0x01], "field number 0"),
            // A group (wire type 3) in an unknown field.
            (&[0xcb, 0x06], "wire type 3"),
        ];
        for (bytes, expected) in cases {
            let error = decode(pod, bytes).unwrap_err().to_string();
            assert!(error.contains(expected), "{bytes:?}: {error}");
        }
        // A time that is not one, a raw field that is not JSON, an IntOrString of type 2.
        let mut bad = core::Pod {
            metadata: Some(meta::ObjectMeta {
                creation_timestamp: Some(meta::Time {
                    seconds: Some(i64::MAX),
                    nanos: Some(0),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let error = decode(pod, &bad.encode_to_vec()).unwrap_err().to_string();
        assert!(error.contains("metadata.creationTimestamp"), "{error}");
        bad.metadata = Some(meta::ObjectMeta {
            managed_fields: vec![meta::ManagedFieldsEntry {
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(b"{".to_vec()),
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        let error = decode(pod, &bad.encode_to_vec()).unwrap_err().to_string();
        assert!(error.contains("not JSON"), "{error}");
    }

    #[test]
    fn a_huge_repeated_field_stops_at_the_value_budget() {
        let options = meta::DeleteOptions {
            dry_run: vec![String::new(); MAX_VALUES + 1],
            ..Default::default()
        };
        let root = root("meta.k8s.io/v1", "DeleteOptions");
        assert_eq!(
            decode(root, &options.encode_to_vec()),
            Err(DecodeError::TooManyValues)
        );
    }

    #[test]
    fn nesting_is_bounded_and_the_tables_stay_within_the_bound() {
        // The tables are not recursive, so a body nests no deeper than they do; the bound
        // is what stops a body should a recursive message ever be added.
        fn depth(index: usize, seen: &mut Vec<usize>) -> usize {
            assert!(
                !seen.contains(&index),
                "{} is recursive",
                MESSAGES[index].name
            );
            seen.push(index);
            let deepest = MESSAGES[index]
                .fields
                .iter()
                .filter_map(|f| match f.ty {
                    Type::Message(child) => Some(depth(child, seen)),
                    _ => None,
                })
                .max()
                .unwrap_or(0);
            seen.pop();
            deepest + 1
        }
        for (version, kind, index) in ROOTS {
            let deepest = depth(index, &mut Vec::new());
            assert!(deepest < MAX_DEPTH, "{version} {kind}: {deepest}");
        }
        // Entered at the bound, a nested message is an error, not a deeper call.
        let pod = core::Pod {
            metadata: Some(meta::ObjectMeta::default()),
            ..Default::default()
        };
        let mut budget = MAX_VALUES;
        let deep = message(
            &MESSAGES[root("v1", "Pod")],
            &pod.encode_to_vec(),
            MAX_DEPTH - 1,
            "",
            &mut budget,
        );
        assert!(matches!(deep, Err(DecodeError::TooDeep { .. })), "{deep:?}");
    }
}
