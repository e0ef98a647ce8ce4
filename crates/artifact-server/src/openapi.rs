//! The OpenAPI 3.1 document, generated from the server's types and the validators' constants.
//!
//! Every operation the router serves is one entry of [`operations`]: its parameters carry the
//! constraints the server enforces, taken from the same constants the validators use
//! ([`artifact_core::digest::DIGEST_PATTERN`], [`artifact_core::manifest::NAME_PATTERN`],
//! [`artifact_core::paging`] limits, [`artifact_core::retention::MAX_REASON_BYTES`], …); its
//! answers reference the JSON Schemas `schemars` derives from the result types of
//! [`artifact_core::results`] (the types the handlers encode), so a renamed or retyped field
//! changes the document. The checked-in `openapi.json` is [`document_text`]'s output: the test
//! `generated_openapi_matches_checked_in` fails when they differ (regenerate with
//! `ARTIFACTSTORE_BLESS=1 cargo test -p artifact-server --lib openapi`), and the route test
//! in `tests/it/ops.rs` fails when the router and the document disagree on a route.

use artifact_core::PACKAGE_REF_PATTERN;
use artifact_core::auth::{PRINCIPAL_PATTERN, Role};
use artifact_core::digest::{BLAKE3_PATTERN, DIGEST_PATTERN};
use artifact_core::event::EVENT_TYPE_PATTERN;
use artifact_core::manifest::{
    CLASS_PATTERN, LABEL_KEY_PATTERN, MANIFEST_SCHEMA_V1, MAX_LABEL_VALUE_BYTES, MAX_PATH_BYTES,
    NAME_PATTERN, VERSION_PATTERN,
};
use artifact_core::paging::{
    DEFAULT_EVENT_LIMIT, DEFAULT_PAGE_LIMIT, MAX_EVENT_LIMIT, MAX_LIST_LIMIT,
};
use artifact_core::results::{
    AuditResult, BlobResult, ExplainResult, FsckResult, GcResult, HoldAppliedResult,
    PackageCreatedResult, PackagePageResult, PackageViewResult, RebuildViewsResult,
    RetentionStatusResult, SweepResult, TokenMintedResult, TokenResult, VerifyResult,
};
use artifact_core::retention::MAX_REASON_BYTES;
use artifact_core::time::DURATION_PATTERN;
use artifact_core::tlog::Receipt;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// An upload session id: 32 lowercase hex digits (16 random bytes).
pub const UPLOAD_ID_PATTERN: &str = "^[0-9a-f]{32}$";
/// A hold id: `hold-` and the seq of the event that applied it.
pub const HOLD_ID_PATTERN: &str = "^hold-[1-9][0-9]{0,18}$";
/// A token id: `tok-` and the seq of the event that minted it.
pub const TOKEN_ID_PATTERN: &str = "^tok-[1-9][0-9]{0,18}$";
/// A file path as a route segment sequence: relative, `/`-separated segments that do not start
/// with `.` (so never `.` or `..`) of letters, digits, `.`, `_`, `-`. Stricter than the
/// manifest's rule (which also allows other printable characters and dot files), so that every
/// path the document allows is one the server accepts.
pub const FILE_PATH_PATTERN: &str =
    "^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$";
/// A `Range` header the server serves: one `bytes=` range.
pub const RANGE_PATTERN: &str = "^bytes=([0-9]{1,19}-[0-9]{0,19}|-[0-9]{1,19})$";
/// A mandatory reason: at least one character that is not whitespace.
pub const REASON_PATTERN: &str = "\\S";

const DESCRIPTION: &str = "Event-sourced, content-addressed artifact store. Errors are \
application/problem+json (RFC 9457): every error status, including 404 for an unknown path, 405 \
for another method on a known path (with Allow), 408 and 413. Every operation refuses query \
parameters it does not declare with 400. Bearer tokens: the scheme is case-insensitive; each \
operation names the role it needs. JSON (JCS) by default; operations that offer application/cbor \
answer it when Accept names it with q > 0 and at least JSON's q. Write endpoints record the \
authenticated principal as the event actor. Times are RFC 3339; an `as_of` later than the \
store's clock is refused with 400. The OCI Distribution API (`/v2/`, OCI distribution-spec \
v1.1, OCI error bodies) is served beside this API and specified by that standard, so it is not \
described here. This document is generated \
(crates/artifact-server/src/openapi.rs) from the result types and the validators' constants.";

/// The generated OpenAPI 3.1 document of this server.
pub fn document() -> Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas".into())
        .into_generator();
    let mut paths = Map::new();
    for op in operations(&mut generator) {
        let item = paths
            .entry(op.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(op.method.to_owned(), Value::Object(op.value));
        }
    }
    let mut schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    schemas.insert("Problem".to_owned(), problem_schema());
    schemas.insert("Manifest".to_owned(), manifest_schema());
    schemas.insert("Event".to_owned(), event_schema());
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "artifactstore", "version": env!("CARGO_PKG_VERSION"), "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Problem": {
                "description": "RFC 9457 problem",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            }},
            "schemas": schemas,
        }
    });
    anchor_ends(&mut doc);
    doc
}

/// Ends every anchored `pattern` with `$(?!\n)`: the same in ECMA-262, and in the Python
/// `re` that schemathesis and many validators use, where a bare `$` also matches before a
/// final newline (so `24h\n` would pass a pattern the server's parser refuses).
fn anchor_ends(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, member) in object.iter_mut() {
                match member {
                    Value::String(text) if key == "pattern" && text.ends_with('$') => {
                        text.push_str("(?!\\n)");
                    }
                    other => anchor_ends(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(anchor_ends),
        _ => {}
    }
}

/// The generated document as the served and checked-in text (pretty JSON, trailing newline).
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document())
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// One operation being described.
struct Op {
    method: &'static str,
    path: &'static str,
    value: Map<String, Value>,
}

fn op(method: &'static str, path: &'static str, id: &str, summary: &str) -> Op {
    let mut value = Map::new();
    value.insert("operationId".into(), json!(id));
    value.insert("summary".into(), json!(summary));
    value.insert("responses".into(), json!({}));
    value.insert("security".into(), json!([]));
    Op {
        method,
        path,
        value,
    }
}

impl Op {
    /// Requires a bearer token with `role` (401 without one, 403 without the role).
    fn role(mut self, role: Role) -> Self {
        self.value
            .insert("security".into(), json!([{"bearer": []}]));
        self.value
            .insert("x-required-role".into(), json!(role.as_str()));
        self.describe(&format!("Role: {}.", role.as_str()))
            .problem_with(
                401,
                "no or an unknown token",
                &[("WWW-Authenticate", json!({"type": "string"}))],
            )
            .problems(&[403])
    }

    /// Appends `text` to the description.
    fn describe(mut self, text: &str) -> Self {
        let description = match self.value.get("description").and_then(Value::as_str) {
            Some(before) => format!("{before} {text}"),
            None => text.to_owned(),
        };
        self.value.insert("description".into(), json!(description));
        self
    }

    fn param(
        mut self,
        location: &str,
        name: &str,
        required: bool,
        about: &str,
        schema: Value,
    ) -> Self {
        let parameter = json!({
            "name": name, "in": location, "required": required, "description": about, "schema": schema,
        });
        push(&mut self.value, "parameters", parameter);
        self
    }

    fn path(self, name: &str, about: &str, schema: Value) -> Self {
        self.param("path", name, true, about, schema)
    }

    fn query(self, name: &str, about: &str, schema: Value) -> Self {
        self.param("query", name, false, about, schema)
    }

    /// The `{id}` path parameter of an upload session (404 when unknown or not the caller's).
    fn session(self) -> Self {
        self.path(
            "id",
            "the session id from POST /uploads",
            pattern(UPLOAD_ID_PATTERN),
        )
        .problems(&[404])
    }

    /// The `{digest}` path parameter of a blob.
    fn digest(self) -> Self {
        self.path("digest", "blake3:… or sha256:…", pattern(DIGEST_PATTERN))
    }

    /// The `{pkg}` path parameter.
    fn pkg(self) -> Self {
        self.path(
            "pkg",
            "package id (blake3:…) or NAME@VERSION",
            pattern(PACKAGE_REF_PATTERN),
        )
        .problems(&[404])
    }

    fn body(mut self, required: bool, content: Value) -> Self {
        self.value.insert(
            "requestBody".into(),
            json!({"required": required, "content": content}),
        );
        self.problems(&[400, 413])
    }

    /// A JSON body of `properties` (all required, nothing else allowed).
    fn json_body(self, properties: Value) -> Self {
        let required: Vec<String> = properties
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        self.body(
            true,
            json!({"application/json": {"schema": {
                "type": "object", "properties": properties, "required": required,
                "additionalProperties": false,
            }}}),
        )
    }

    /// A `{reason}` body.
    fn reason_body(self) -> Self {
        self.json_body(json!({"reason": reason()}))
    }

    fn answer(
        mut self,
        status: u16,
        description: &str,
        content: Option<Value>,
        headers: &[(&str, Value)],
    ) -> Self {
        let mut response = Map::new();
        response.insert("description".into(), json!(description));
        if let Some(content) = content {
            response.insert("content".into(), content);
        }
        if !headers.is_empty() {
            let headers: Map<String, Value> = headers
                .iter()
                .map(|(name, schema)| ((*name).to_owned(), json!({"schema": schema})))
                .collect();
            response.insert("headers".into(), Value::Object(headers));
        }
        if let Some(Value::Object(responses)) = self.value.get_mut("responses") {
            responses.insert(status.to_string(), Value::Object(response));
        }
        self
    }

    /// A JSON answer of `schema`.
    fn json(self, status: u16, description: &str, schema: Value) -> Self {
        self.answer(
            status,
            description,
            Some(json!({"application/json": {"schema": schema}})),
            &[],
        )
    }

    /// A problem+json answer with `status` that also sends `headers`.
    fn problem_with(self, status: u16, description: &str, headers: &[(&str, Value)]) -> Self {
        let content = json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
        self.answer(status, description, Some(content), headers)
    }

    /// Problem+json answers with these statuses.
    fn problems(mut self, statuses: &[u16]) -> Self {
        if let Some(Value::Object(responses)) = self.value.get_mut("responses") {
            for status in statuses {
                responses
                    .entry(status.to_string())
                    .or_insert_with(|| json!({"$ref": "#/components/responses/Problem"}));
            }
        }
        self
    }

    /// A link from the answer `status` to `operation` with `parameters` (runtime expressions).
    fn link(mut self, status: u16, name: &str, operation: &str, parameters: Value) -> Self {
        if let Some(Value::Object(response)) = self
            .value
            .get_mut("responses")
            .and_then(|r| r.get_mut(status.to_string()))
        {
            let links = response
                .entry("links")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(links) = links {
                links.insert(
                    name.to_owned(),
                    json!({"operationId": operation, "parameters": parameters}),
                );
            }
        }
        self
    }
}

fn push(object: &mut Map<String, Value>, key: &str, item: Value) {
    match object.get_mut(key) {
        Some(Value::Array(items)) => items.push(item),
        _ => {
            object.insert(key.to_owned(), Value::Array(vec![item]));
        }
    }
}

/// The schema of a result type, as a reference into `components/schemas`.
fn dto<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

fn pattern(pattern: &str) -> Value {
    json!({"type": "string", "pattern": pattern})
}

fn int_range(minimum: u64, maximum: u64, default: Option<u64>) -> Value {
    let mut schema = json!({"type": "integer", "minimum": minimum, "maximum": maximum});
    if let Some(default) = default {
        schema["default"] = json!(default);
    }
    schema
}

/// A sequence number, size or tree size in a body: a non-negative integer the data model can
/// carry (±(2^53−1)).
fn seq() -> Value {
    int_range(0, (1 << 53) - 1, None)
}

/// A sequence number or tree size in a query: any unsigned 64-bit integer parses.
fn query_seq() -> Value {
    int_range(0, u64::MAX, None)
}

fn date_time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn reason() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_REASON_BYTES, "pattern": REASON_PATTERN})
}

fn binary() -> Value {
    json!({"type": "string", "format": "binary"})
}

fn bytes_answer() -> Value {
    json!({"application/octet-stream": {"schema": binary()}})
}

fn json_or_cbor(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}, "application/cbor": {"schema": binary()}})
}

fn text_plain() -> Value {
    json!({"text/plain": {"schema": {"type": "string"}}})
}

fn events_array() -> Value {
    json!({"type": "array", "items": {"$ref": "#/components/schemas/Event"}})
}

fn problem_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 100, "maximum": 599}, "detail": {"type": "string"},
        },
        "required": ["type", "title", "status", "detail"],
    })
}

fn manifest_schema() -> Value {
    json!({
        "type": "object",
        "required": ["schema", "name", "version", "retention_class", "files"],
        "additionalProperties": false,
        "properties": {
            "schema": {"const": MANIFEST_SCHEMA_V1},
            "name": pattern(NAME_PATTERN),
            "version": pattern(VERSION_PATTERN),
            "retention_class": pattern(CLASS_PATTERN),
            "files": {"type": "array", "items": {
                "type": "object",
                "required": ["path", "size", "blake3", "sha256"],
                "additionalProperties": false,
                "properties": {
                    "path": {"type": "string", "minLength": 1, "maxLength": MAX_PATH_BYTES},
                    "size": seq(),
                    "blake3": pattern(BLAKE3_PATTERN),
                    "sha256": pattern("^sha256:[0-9a-f]{64}$"),
                    "media_type": {"type": "string", "maxLength": 255, "pattern": "^[^/]+/.+$"},
                },
            }},
            "labels": {
                "type": "object",
                "propertyNames": {"pattern": LABEL_KEY_PATTERN},
                "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE_BYTES},
            },
        },
    })
}

fn event_schema() -> Value {
    json!({
        "type": "object",
        "required": ["seq", "type", "actor", "at", "data", "prev"],
        "properties": {
            "v": {"type": "integer"},
            "seq": seq(),
            "type": pattern(EVENT_TYPE_PATTERN),
            "package_id": pattern(BLAKE3_PATTERN),
            "actor": {"type": "string"},
            "at": date_time(),
            "data": {"type": "object"},
            "prev": {"type": ["string", "null"]},
        },
    })
}

/// Every operation the server serves, in router order.
fn operations(g: &mut SchemaGenerator) -> Vec<Op> {
    let offset = int_range(0, u64::MAX, None);
    let location = json!({"type": "string"});
    let range = pattern(RANGE_PATTERN);
    // What every answer about a session's progress carries.
    let session_headers = [
        ("Upload-Offset", offset.clone()),
        ("Location", location.clone()),
        ("Range", location.clone()),
    ];
    let session = json!({"id": "$response.body#/upload_id"});
    let roles = json!({"type": "array", "minItems": 1, "items": {
        "type": "string", "enum": Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
    }});
    vec![
        // --- upload sessions
        op("post", "/uploads", "createUpload", "Open a resumable upload session")
            .role(Role::Writer)
            .answer(
                201,
                "session created",
                Some(json!({"application/json": {"schema": {
                    "type": "object", "required": ["upload_id", "location", "offset"],
                    "properties": {"upload_id": pattern(UPLOAD_ID_PATTERN), "location": location, "offset": offset},
                }}})),
                &[("Location", location.clone()), ("Upload-Offset", offset.clone()), ("Range", location.clone())],
            )
            .problems(&[400, 507])
            .link(201, "append", "appendUpload", session.clone())
            .link(201, "status", "uploadStatus", session.clone())
            .link(201, "finish", "finishUpload", session.clone())
            .link(201, "cancel", "cancelUpload", session),
        op("patch", "/uploads/{id}", "appendUpload", "Append a chunk to an upload session")
            .role(Role::Writer)
            .describe("A session belongs to the principal that opened it (404 to others). Upload-Offset, when sent, must equal the session's offset (409 otherwise).")
            .session()
            .param("header", "Upload-Offset", true, "the offset this chunk starts at (the session's offset)", offset.clone())
            .body(false, json!({"application/octet-stream": {"schema": binary()}}))
            .answer(202, "appended", None, &session_headers)
            .problem_with(409, "the offset differs from the session's", &[("Upload-Offset", offset.clone())])
            .problems(&[404, 507]),
        op("head", "/uploads/{id}", "uploadStatus", "The offset of an upload session")
            .role(Role::Writer)
            .session()
            .answer(204, "offset", None, &session_headers)
            .problems(&[400, 404]),
        op("put", "/uploads/{id}", "finishUpload", "Finish an upload session: verify and store the blob")
            .role(Role::Writer)
            .describe("Each `digest` given must match the bytes (400 and nothing stored otherwise; the session stays as it was before this request). Upload-Offset, when sent, must equal the session's offset (409 otherwise).")
            .session()
            .param("query", "digest", true, "expected digests, repeatable (at least one); blake3:… or sha256:…", json!({
                "type": "array", "minItems": 1, "items": pattern(DIGEST_PATTERN),
            }))
            .param("header", "Upload-Offset", false, "the offset a final chunk in the body starts at", offset.clone())
            .body(false, json!({"application/octet-stream": {"schema": binary()}}))
            .answer(201, "stored", Some(json!({"application/json": {"schema": dto::<BlobResult>(g)}})), &[("Location", location.clone())])
            .problems(&[404, 409, 507])
            .link(201, "download", "getBlob", json!({"digest": "$response.body#/blake3"}))
            .link(201, "head", "headBlob", json!({"digest": "$response.body#/sha256"})),
        op("delete", "/uploads/{id}", "cancelUpload", "Cancel an upload session")
            .role(Role::Writer)
            .session()
            .answer(204, "cancelled", None, &[])
            .problems(&[400, 404]),
        // --- blobs
        op("get", "/blobs/{digest}", "getBlob", "Download a blob by either digest")
            .role(Role::Reader)
            .digest()
            .param("header", "Range", false, "one bytes= range (RFC 9110): 206; unsatisfiable: 416", range.clone())
            .answer(200, "bytes", Some(bytes_answer()), &[("ETag", location.clone()), ("Accept-Ranges", location.clone())])
            .answer(206, "partial bytes", Some(bytes_answer()), &[("Content-Range", location.clone()), ("ETag", location.clone()), ("Accept-Ranges", location.clone())])
            .problem_with(416, "unsatisfiable or malformed range", &[("Content-Range", location.clone())])
            .problems(&[400, 404]),
        op("head", "/blobs/{digest}", "headBlob", "Whether a blob is stored, its size and digests")
            .role(Role::Reader)
            .digest()
            .answer(200, "exists", None, &[
                ("Content-Length", offset.clone()), ("ETag", location.clone()), ("Accept-Ranges", location.clone()),
                ("artifactstore-blake3", pattern(BLAKE3_PATTERN)), ("artifactstore-sha256", location.clone()),
            ])
            .problems(&[400, 404]),
        op("put", "/blobs/{digest}", "putBlob", "Upload a whole blob under its digest")
            .role(Role::Writer)
            .describe("The bytes must hash to `digest` (400 and nothing stored otherwise).")
            .digest()
            .body(true, json!({"application/octet-stream": {"schema": binary()}}))
            .answer(201, "stored", Some(json!({"application/json": {"schema": dto::<BlobResult>(g)}})), &[("Location", location.clone())])
            .answer(200, "already stored", Some(json!({"application/json": {"schema": dto::<BlobResult>(g)}})), &[("Location", location.clone())])
            .problems(&[409, 507])
            .link(201, "download", "getBlob", json!({"digest": "$response.body#/blake3"}))
            .link(201, "head", "headBlob", json!({"digest": "$response.body#/sha256"})),
        // --- packages
        op("post", "/packages", "createPackage", "Create a package from a manifest whose blobs are stored")
            .role(Role::Writer)
            .describe("422: a file's blob is not stored; 409: NAME@VERSION exists with other content.")
            .body(true, json!({
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Manifest"},
                    "example": {
                        "schema": MANIFEST_SCHEMA_V1, "name": "guide-board", "version": "2026.11.23-1",
                        "retention_class": "ephemeral", "files": [], "labels": {"git.commit": "3f2a9c1"},
                    },
                },
                "application/cbor": {"schema": binary()},
            }))
            .answer(201, "created", Some(json!({"application/json": {"schema": dto::<PackageCreatedResult>(g)}})), &[("Location", location.clone())])
            .answer(200, "an identical manifest already existed", Some(json!({"application/json": {"schema": dto::<PackageCreatedResult>(g)}})), &[("Location", location.clone())])
            .problems(&[409, 415, 422, 507])
            .link(201, "show", "getPackage", json!({"pkg": "$response.body#/package_id"}))
            .link(201, "retention", "getRetention", json!({"pkg": "$response.body#/package_id"}))
            .link(201, "hold", "applyHold", json!({"pkg": "$response.body#/package_id"}))
            .link(201, "extend", "extendRetention", json!({"pkg": "$response.body#/package_id"})),
        op("get", "/packages", "listPackages", "List packages in creation order")
            .role(Role::Reader)
            .query("name", "exact package name", pattern(NAME_PATTERN))
            .query("version", "exact version", pattern(VERSION_PATTERN))
            .query("class", "retention class", pattern(CLASS_PATTERN))
            .query("eligible", "only packages eligible (or not) for deletion", json!({"type": "boolean"}))
            .query("cursor", "the next_cursor of the previous page", query_seq())
            .query("limit", "page size", int_range(1, u64::from(MAX_LIST_LIMIT), Some(u64::from(DEFAULT_PAGE_LIMIT))))
            .json(200, "one page", dto::<PackagePageResult>(g))
            .problems(&[400]),
        op("get", "/packages/{pkg}", "getPackage", "A package and its retention state")
            .role(Role::Reader)
            .pkg()
            .json(200, "package", dto::<PackageViewResult>(g))
            .problems(&[400]),
        op("get", "/packages/{pkg}/manifest", "getManifest", "A package's manifest (the bytes its id hashes)")
            .role(Role::Reader)
            .pkg()
            .answer(200, "manifest", Some(json!({
                "application/json": {"schema": {"$ref": "#/components/schemas/Manifest"}},
                "application/cbor": {"schema": binary()},
            })), &[])
            .problems(&[400]),
        op("get", "/packages/{pkg}/files/{path}", "getFile", "Download one file of a package")
            .role(Role::Reader)
            .describe("410 once the package is purged.")
            .pkg()
            .path("path", "the file's path in the manifest", json!({
                "type": "string", "minLength": 1, "maxLength": MAX_PATH_BYTES, "pattern": FILE_PATH_PATTERN,
            }))
            .param("header", "Range", false, "one bytes= range (RFC 9110): 206; unsatisfiable: 416", range)
            .answer(200, "bytes", Some(bytes_answer()), &[("ETag", location.clone())])
            .answer(206, "partial bytes", Some(bytes_answer()), &[("Content-Range", location.clone()), ("ETag", location.clone())])
            .problem_with(416, "unsatisfiable or malformed range", &[("Content-Range", location.clone())])
            .problems(&[400, 410]),
        // --- retention
        op("get", "/packages/{pkg}/retention", "getRetention", "A package's retention state")
            .role(Role::Reader)
            .pkg()
            .json(200, "state", dto::<RetentionStatusResult>(g))
            .problems(&[400]),
        op("get", "/packages/{pkg}/retention/history", "getRetentionHistory", "A package's retention events, in seq order")
            .role(Role::Reader)
            .pkg()
            .answer(200, "events", Some(json_or_cbor(events_array())), &[])
            .problems(&[400]),
        op("get", "/packages/{pkg}/retention/explain", "explainRetention", "Why a package is (not) eligible, citing events")
            .role(Role::Reader)
            .pkg()
            .query("as_of", "RFC 3339, not later than the store's clock; default its clock", date_time())
            .json(200, "explanation", dto::<ExplainResult>(g))
            .problems(&[400]),
        op("post", "/packages/{pkg}/retention/extensions", "extendRetention", "Extend a package's expiry (strictly later; reason mandatory)")
            .role(Role::RetentionAdmin)
            .pkg()
            .json_body(json!({"new_expires_at": date_time(), "reason": reason()}))
            .json(201, "new retention state", dto::<RetentionStatusResult>(g))
            .problems(&[409]),
        op("post", "/packages/{pkg}/retention/holds", "applyHold", "Place a hold on a package (reason mandatory)")
            .role(Role::RetentionAdmin)
            .pkg()
            .reason_body()
            .json(201, "the hold", dto::<HoldAppliedResult>(g))
            .problems(&[409])
            .link(201, "release", "releaseHold", json!({"pkg": "$request.path.pkg", "hold_id": "$response.body#/hold_id"})),
        op("post", "/packages/{pkg}/retention/holds/{hold_id}/release", "releaseHold", "Release an active hold (reason mandatory)")
            .role(Role::RetentionAdmin)
            .pkg()
            .path("hold_id", "from POST …/retention/holds", pattern(HOLD_ID_PATTERN))
            .reason_body()
            .json(201, "new retention state", dto::<RetentionStatusResult>(g))
            .problems(&[409]),
        op("post", "/retention/sweep", "sweep", "Mark expired, unheld packages eligible (derived from the log)")
            .role(Role::RetentionAdmin)
            .query("as_of", "RFC 3339, not later than the store's clock; default its clock", date_time())
            .json(200, "what the sweep marked", dto::<SweepResult>(g))
            .problems(&[400]),
        // --- the log
        op("get", "/events", "listEvents", "Events in seq order, one page")
            .role(Role::Reader)
            .query("after", "only events with a seq above this", query_seq())
            .query("limit", "page size", int_range(1, u64::from(MAX_EVENT_LIMIT), Some(u64::from(DEFAULT_EVENT_LIMIT))))
            .query("type", "only events of this type", pattern(EVENT_TYPE_PATTERN))
            .query("package_id", "only events of this package", pattern(BLAKE3_PATTERN))
            .answer(200, "events", Some(json_or_cbor(events_array())), &[])
            .problems(&[400]),
        op("get", "/events/head", "eventsHead", "The log head")
            .role(Role::Reader)
            .json(200, "head", json!({"type": "object", "required": ["seq", "hash"], "properties": {
                "seq": seq(), "hash": {"type": ["string", "null"], "pattern": BLAKE3_PATTERN},
            }}))
            .problems(&[400]),
        op("get", "/events/stream", "streamEvents", "Server-Sent Events: every event after a seq, then new ones as they commit")
            .role(Role::Reader)
            .query("after", "resume after this seq", query_seq())
            .param("header", "Last-Event-ID", false, "resume after this seq (reconnects)", query_seq())
            .answer(200, "event stream", Some(json!({"text/event-stream": {"schema": {
                "description": "one Server-Sent Event per log event: `id` its seq, `event` its type, `data` its JCS envelope",
                "type": "object", "required": ["id", "event", "data"],
                "properties": {
                    "id": {"type": "string", "pattern": "^[1-9][0-9]*$"},
                    "event": pattern(EVENT_TYPE_PATTERN),
                    "data": {"type": "string", "contentMediaType": "application/json"},
                },
            }}})), &[])
            .problems(&[400]),
        op("get", "/audit/verify", "auditVerify", "Verify the hash chain (and the latest checkpoint's root)")
            .role(Role::Reader)
            .json(200, "result", dto::<AuditResult>(g))
            .problems(&[400]),
        op("get", "/log/checkpoint", "latestCheckpoint", "The latest signed checkpoint note (C2SP tlog-checkpoint)")
            .role(Role::Reader)
            .describe("404 when none is stored yet and the server has no signing key.")
            .answer(200, "the signed note", Some(text_plain()), &[])
            .problems(&[400, 404]),
        op("get", "/log/checkpoints", "listCheckpoints", "Stored checkpoints, smallest tree size first")
            .role(Role::Reader)
            .query("after", "only checkpoints with a tree size above this", query_seq())
            .query("limit", "page size", int_range(1, u64::from(MAX_LIST_LIMIT), Some(u64::from(DEFAULT_PAGE_LIMIT))))
            .json(200, "checkpoints", json!({"type": "object", "required": ["checkpoints"], "properties": {
                "checkpoints": {"type": "array", "items": {"type": "object",
                    "required": ["origin", "tree_size", "root_hash", "note"],
                    "properties": {"origin": {"type": "string"}, "tree_size": seq(), "root_hash": {"type": "string"}, "note": {"type": "string"}},
                }},
            }}))
            .problems(&[400]),
        op("get", "/log/proof/inclusion", "inclusionProof", "A receipt: the event, its inclusion proof and the signed checkpoint")
            .role(Role::Reader)
            .param("query", "seq", true, "the event's seq", int_range(1, u64::MAX, None))
            .query("tree_size", "the size of a stored checkpoint; default the latest", query_seq())
            .json(200, "receipt", dto::<Receipt>(g))
            .problems(&[400, 404]),
        op("get", "/log/proof/consistency", "consistencyProof", "Proves that the tree of size `to` extends the tree of size `from`")
            .role(Role::Reader)
            .param("query", "from", true, "the older tree size", query_seq())
            .query("to", "the newer tree size; default the latest checkpoint's", query_seq())
            .json(200, "proof", json!({"type": "object", "required": ["from_size", "to_size", "proof"], "properties": {
                "from_size": seq(), "to_size": seq(), "proof": {"type": "array", "items": {"type": "string"}},
            }}))
            .problems(&[400, 404]),
        // --- operations
        op("get", "/healthz", "healthz", "Liveness")
            .answer(200, "ok", Some(text_plain()), &[])
            .problems(&[400]),
        op("get", "/readyz", "readyz", "Readiness: the catalog and the blob store answer")
            .answer(200, "ready", Some(text_plain()), &[])
            .problems(&[400, 503]),
        op("get", "/metrics", "metrics", "Prometheus text exposition")
            .answer(200, "metrics", Some(json!({"text/plain": {"schema": {"type": "string"}}})), &[])
            .problems(&[400]),
        op("get", "/openapi.json", "openapi", "This document")
            .answer(200, "OpenAPI 3.1", Some(json!({"application/json": {"schema": {"type": "object"}}})), &[])
            .problems(&[400]),
        op("post", "/admin/rebuild-views", "rebuildViews", "Rebuild every view from the log")
            .role(Role::Admin)
            .json(200, "replayed", dto::<RebuildViewsResult>(g))
            .problems(&[400]),
        op("post", "/admin/tokens", "createToken", "Mint a token (shown once)")
            .role(Role::Admin)
            .describe("Principals starting with `system:` are reserved (400).")
            .body(true, json!({"application/json": {"schema": {
                "type": "object", "required": ["principal", "roles"], "additionalProperties": false,
                "properties": {
                    "principal": pattern(PRINCIPAL_PATTERN),
                    "roles": roles,
                    "expires_at": {
                        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}],
                        "description": "RFC 3339, later than the store's clock; refused from then on",
                    },
                },
            }}}))
            .json(201, "the token, shown once", dto::<TokenMintedResult>(g))
            .link(201, "revoke", "revokeToken", json!({"token_id": "$response.body#/token_id"})),
        op("get", "/admin/tokens", "listTokens", "Minted tokens, oldest first (never a token or its hash)")
            .role(Role::Admin)
            .json(200, "tokens", json!({"type": "array", "items": dto::<TokenResult>(g)}))
            .problems(&[400]),
        op("post", "/admin/tokens/{token_id}/revoke", "revokeToken", "Revoke a minted token (reason mandatory)")
            .role(Role::Admin)
            .describe("404: unknown token id; 409: already revoked.")
            .path("token_id", "tok-<seq>, from GET /admin/tokens", pattern(TOKEN_ID_PATTERN))
            .reason_body()
            .json(200, "the revoked token", dto::<TokenResult>(g))
            .problems(&[404, 409]),
        op("post", "/admin/gc", "gc", "Garbage collection: purge eligible packages, delete unreferenced blobs")
            .role(Role::Admin)
            .query("grace", "fixed duration unreferenced blobs are kept; default 24h", pattern(DURATION_PATTERN))
            .query("dry_run", "report without deleting", json!({"type": "boolean"}))
            .json(200, "what GC did (or would do)", dto::<GcResult>(g))
            .problems(&[400]),
        op("post", "/admin/verify", "verify", "Re-hash stored blobs (scrub)")
            .role(Role::Admin)
            .query("sample", "fraction of blobs in (0, 1]; default 1", json!({"type": "number", "exclusiveMinimum": 0, "maximum": 1}))
            .query("max_bytes_per_sec", "read rate limit: 0 (or absent) for none, else at least 1 MiB/s (a scrub over HTTP holds its request open; throttle slower on the data directory itself)", json!({"anyOf": [
                {"type": "integer", "const": 0},
                int_range(crate::ops::MIN_HTTP_SCRUB_RATE, u64::MAX, None),
            ]}))
            .json(200, "what was checked", dto::<VerifyResult>(g))
            .problems(&[400]),
        op("get", "/admin/fsck", "fsck", "Consistency check of views, log, tree and blobs")
            .role(Role::Admin)
            .json(200, "findings", dto::<FsckResult>(g))
            .problems(&[400]),
    ]
    .into_iter()
    .map(|op| {
        // Every operation refuses undeclared query parameters (400) and may time out (408);
        // every one that writes may find the disk full (507).
        let writes = op.method != "get" && op.method != "head";
        let op = op.problems(&[400, 408]);
        if writes { op.problems(&[507]) } else { op }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in `openapi.json` (served at `GET /openapi.json`) is the generated one.
    #[test]
    fn generated_openapi_matches_checked_in() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
        let generated = document_text();
        if std::env::var_os("ARTIFACTSTORE_BLESS").is_some() {
            std::fs::write(path, &generated).expect("write openapi.json");
        }
        let checked_in = std::fs::read_to_string(path).expect("read openapi.json");
        assert!(
            checked_in == generated,
            "openapi.json differs from the generated document; regenerate with \
             `ARTIFACTSTORE_BLESS=1 cargo test -p artifact-server --lib openapi`"
        );
    }

    /// Every result schema comes from its type: renaming a field of a result type changes the
    /// document (here: the sweep's `newly_eligible`).
    #[test]
    fn result_schemas_are_derived_from_the_result_types() {
        let doc = document();
        let sweep = &doc["components"]["schemas"]["SweepResult"];
        assert_eq!(
            sweep["properties"]["newly_eligible"]["type"], "integer",
            "{sweep}"
        );
        let required: Vec<&str> = sweep["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for field in ["as_of", "newly_eligible", "package_ids", "refused"] {
            assert!(required.contains(&field), "{sweep}");
        }
        let answer = &doc["paths"]["/retention/sweep"]["post"]["responses"]["200"];
        assert_eq!(
            answer["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/SweepResult"
        );
    }

    /// Each `$ref` resolves, and each link names an operation of the document.
    #[test]
    fn references_and_links_resolve() {
        let doc = document();
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap_or_default();
            let pointer = target.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {target}");
        }
        let ids: Vec<String> = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().expect("item").values())
            .filter_map(|operation| operation["operationId"].as_str().map(str::to_owned))
            .collect();
        let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "operation ids are unique");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("item") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    if let Some(links) = response["links"].as_object() {
                        for (name, link) in links {
                            let target = link["operationId"].as_str().unwrap_or_default();
                            assert!(
                                ids.iter().any(|id| id == target),
                                "{method} {path} {status} link {name} names {target}"
                            );
                        }
                    }
                }
            }
        }
    }
}
