//! AdmissionReview in and out.
//!
//! The body is parsed once, straight into the policy engine's value type: it is the policy
//! `input` as received, and the facts jitguard itself needs (uid, user, operation, ...) are
//! read from it, not from a second, typed parse. Responses use kube's `admission` types.

use kube::core::admission::{AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Status};
use regorus::Value;

use crate::decision::Decision;
use crate::request::{Operation, RequestInfo};

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// Why a body is not an AdmissionReview we can decide on: answered with HTTP 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReviewError {
    #[error("the body is not UTF-8")]
    NotUtf8,
    #[error("the body is not valid JSON: {0}")]
    Json(String),
    #[error("the body must be a JSON object (an AdmissionReview)")]
    NotAnObject,
    #[error("expected apiVersion {API_VERSION:?} and kind {KIND:?}, got apiVersion {api_version:?} and kind {kind:?}; register the webhook with admissionReviewVersions: [v1]")]
    WrongType { api_version: String, kind: String },
    #[error("the AdmissionReview has no `request` object")]
    MissingRequest,
    #[error("request.uid is missing or empty: the API server always sends one")]
    MissingUid,
    #[error("request.{field} {problem}")]
    Field {
        field: std::borrow::Cow<'static, str>,
        problem: String,
    },
}

fn field(
    field: impl Into<std::borrow::Cow<'static, str>>,
    problem: impl Into<String>,
) -> ReviewError {
    ReviewError::Field {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A parsed AdmissionReview: the value handed to policies and the facts read from it.
#[derive(Clone, Debug)]
pub struct AdmissionInput {
    pub review: Value,
    pub request: RequestInfo,
}

/// Parses and checks a body. Never panics, whatever the bytes: serde_json bounds nesting
/// depth, and every field jitguard reads is type-checked with a message naming it.
pub fn parse(body: &[u8]) -> Result<AdmissionInput, ReviewError> {
    let text = std::str::from_utf8(body).map_err(|_| ReviewError::NotUtf8)?;
    let review = Value::from_json_str(text).map_err(|e| ReviewError::Json(json_error(&e)))?;
    let request = request_info(&review)?;
    Ok(AdmissionInput { review, request })
}

fn json_error(e: &anyhow::Error) -> String {
    e.chain()
        .find_map(|c| {
            c.downcast_ref::<serde_json::Error>()
                .map(ToString::to_string)
        })
        .unwrap_or_else(|| e.to_string())
}

fn request_info(review: &Value) -> Result<RequestInfo, ReviewError> {
    if !matches!(review, Value::Object(_)) {
        return Err(ReviewError::NotAnObject);
    }
    let api_version = review["apiVersion"]
        .as_string()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let kind = review["kind"]
        .as_string()
        .map(|s| s.to_string())
        .unwrap_or_default();
    if api_version != API_VERSION || kind != KIND {
        return Err(ReviewError::WrongType { api_version, kind });
    }
    let request = &review["request"];
    if !matches!(request, Value::Object(_)) {
        return Err(ReviewError::MissingRequest);
    }
    let uid = match &request["uid"] {
        Value::String(s) if !s.is_empty() => s.to_string(),
        Value::Undefined | Value::Null | Value::String(_) => return Err(ReviewError::MissingUid),
        _ => return Err(field("uid", "must be a string")),
    };
    let operation = match &request["operation"] {
        Value::String(s) => Operation::parse(s).ok_or_else(|| {
            field(
                "operation",
                format!("must be CREATE, UPDATE, DELETE or CONNECT, not {s:?}"),
            )
        })?,
        Value::Undefined => return Err(field("operation", "is missing")),
        _ => return Err(field("operation", "must be a string")),
    };
    // Scopes, like RBAC rules, name the resource's group, which for a subresource differs
    // from its kind's: `deployments/scale` is in `apps` while its kind, Scale, is in
    // `autoscaling`; `serviceaccounts/token` is core, TokenRequest is not.
    let (_, _, kind) = group_version(request, "kind", "kind")?;
    let (group, version, resource) = group_version(request, "resource", "resource")?;
    let user_info = &request["userInfo"];
    match user_info {
        Value::Object(_) => {}
        Value::Undefined | Value::Null => {
            return Err(field(
                "userInfo",
                "is missing: the API server always says who is asking",
            ))
        }
        _ => {
            return Err(field(
                "userInfo",
                "must be an object {username, groups, ...}",
            ))
        }
    }
    let user = required_string(&user_info["username"], "userInfo.username")?;
    let groups = match &user_info["groups"] {
        Value::Undefined | Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|g| match g {
                Value::String(s) => Ok(s.to_string()),
                _ => Err(field("userInfo.groups", "must be a list of strings")),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(field("userInfo.groups", "must be a list of strings")),
    };
    let dry_run = match &request["dryRun"] {
        Value::Undefined | Value::Null => false,
        Value::Bool(b) => *b,
        _ => return Err(field("dryRun", "must be true or false")),
    };
    for name in ["object", "oldObject", "options"] {
        if !matches!(
            &request[name],
            Value::Undefined | Value::Null | Value::Object(_)
        ) {
            return Err(field(name, "must be an object or null"));
        }
    }
    check_metadata(&request["object"], "object.metadata")?;
    check_metadata(&request["oldObject"], "oldObject.metadata")?;
    Ok(RequestInfo {
        uid,
        operation,
        group,
        version,
        kind,
        resource,
        sub_resource: optional_string(&request["subResource"], "subResource")?,
        namespace: optional_string(&request["namespace"], "namespace")?,
        name: optional_string(&request["name"], "name")?,
        user,
        groups,
        dry_run,
    })
}

/// The object's metadata as the API server would have accepted it: policies compare
/// names, namespaces, labels and annotations as strings, and a number where a name belongs
/// would make `name == "x"` quietly false (an allow) instead of an error.
fn check_metadata(object: &Value, at: &'static str) -> Result<(), ReviewError> {
    let metadata = &object["metadata"];
    match metadata {
        Value::Undefined | Value::Null => return Ok(()),
        Value::Object(_) => {}
        _ => return Err(field(at, "must be an object")),
    }
    for key in ["name", "namespace", "generateName", "uid"] {
        if !matches!(
            &metadata[key],
            Value::Undefined | Value::Null | Value::String(_)
        ) {
            return Err(field(format!("{at}.{key}"), "must be a string"));
        }
    }
    for key in ["labels", "annotations"] {
        match &metadata[key] {
            Value::Undefined | Value::Null => {}
            Value::Object(entries) => {
                if entries
                    .iter()
                    .any(|(k, v)| !matches!((k, v), (Value::String(_), Value::String(_))))
                {
                    return Err(field(format!("{at}.{key}"), "must map strings to strings"));
                }
            }
            _ => return Err(field(format!("{at}.{key}"), "must map strings to strings")),
        }
    }
    Ok(())
}

/// `request.kind` is `{group, version, kind}`, `request.resource` `{group, version, resource}`.
fn group_version(
    request: &Value,
    key: &'static str,
    last: &str,
) -> Result<(String, String, String), ReviewError> {
    let v = &request[key];
    if !matches!(v, Value::Object(_)) {
        return Err(field(
            key,
            format!("must be an object {{group, version, {last}}}"),
        ));
    }
    let get = |k: &str| match &v[k] {
        Value::String(s) => Ok(s.to_string()),
        Value::Undefined | Value::Null if k == "group" => Ok(String::new()),
        _ => Err(field(
            key,
            format!("must be an object {{group, version, {last}}} of strings"),
        )),
    };
    let out = (get("group")?, get("version")?, get(last)?);
    if out.2.is_empty() {
        return Err(field(key, format!("has an empty {last}")));
    }
    Ok(out)
}

fn required_string(v: &Value, name: &'static str) -> Result<String, ReviewError> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Undefined | Value::Null => Err(field(name, "is missing")),
        _ => Err(field(name, "must be a string")),
    }
}

fn optional_string(v: &Value, name: &'static str) -> Result<String, ReviewError> {
    match v {
        Value::String(s) => Ok(s.to_string()),
        Value::Undefined | Value::Null => Ok(String::new()),
        _ => Err(field(name, "must be a string")),
    }
}

/// Reads `request.uid` alone, for the rare answers given without a full parse (the
/// API server's deadline ran out while the request waited). Ignores everything else.
pub fn peek_uid(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Review {
        request: Option<Request>,
    }
    #[derive(serde::Deserialize)]
    struct Request {
        uid: Option<String>,
    }
    serde_json::from_slice::<Review>(body)
        .ok()
        .and_then(|r| r.request)
        .and_then(|r| r.uid)
        .filter(|uid| !uid.is_empty())
}

/// kube's response type is non-exhaustive and built from a typed request; jitguard has
/// the uid from its own single parse, so it starts from `invalid` and fills it in.
fn base_response(uid: &str) -> AdmissionResponse {
    let mut response = AdmissionResponse::invalid("");
    response.uid = uid.to_string();
    response.allowed = true;
    response.result = Status::default();
    response
}

/// The AdmissionReview the API server gets back for a decision.
pub fn respond(uid: &str, decision: &Decision) -> AdmissionReview<DynamicObject> {
    let mut response = base_response(uid);
    if !decision.warnings.is_empty() {
        response.warnings = Some(decision.warnings.clone());
    }
    if let Some(grant) = &decision.grant {
        response
            .audit_annotations
            .insert("jitguard.dev/grant".to_string(), grant.name.clone());
        if grant.break_glass {
            response
                .audit_annotations
                .insert("jitguard.dev/break-glass".to_string(), "true".to_string());
        }
    }
    if !decision.allowed {
        return deny_response(response, &decision.message).into_review();
    }
    if !decision.patch.is_empty() {
        match response
            .clone()
            .with_patch(json_patch::Patch(decision.patch.clone()))
        {
            Ok(patched) => response = patched,
            // Serializing a patch we built from JSON cannot realistically fail; if it
            // did, refusing is the safe answer.
            Err(e) => {
                return deny_response(
                    response,
                    &format!("jitguard could not encode its patch: {e}"),
                )
                .into_review()
            }
        }
    }
    response.into_review()
}

/// A denial for a request jitguard could not decide in time or at all (with its uid).
pub fn respond_denied(uid: &str, message: &str) -> AdmissionReview<DynamicObject> {
    deny_response(base_response(uid), message).into_review()
}

/// An allowed answer with a warning (fail-open paths).
pub fn respond_allowed_with_warning(uid: &str, warning: &str) -> AdmissionReview<DynamicObject> {
    let mut response = base_response(uid);
    response.warnings = Some(vec![crate::text::truncate(
        warning,
        crate::decision::WARNING_LIMIT,
    )]);
    response.into_review()
}

/// Encodes an answer for the API server.
///
/// `patch` must be base64 in JSON (Go's `[]byte`); kube's type serializes its `Vec<u8>`
/// as an array of numbers (kube-rs issue #1781), so the patch is re-encoded here.
pub fn encode(review: &AdmissionReview<DynamicObject>) -> Vec<u8> {
    use base64::Engine as _;
    let patch = review.response.as_ref().and_then(|r| r.patch.as_deref());
    let Some(patch) = patch else {
        return serde_json::to_vec(review).unwrap_or_default();
    };
    let Ok(mut value) = serde_json::to_value(review) else {
        return Vec::new();
    };
    if let Some(field) = value.pointer_mut("/response/patch") {
        *field = serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(patch));
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

fn deny_response(response: AdmissionResponse, message: &str) -> AdmissionResponse {
    let mut response = response.deny(message);
    response.result.code = 403;
    response.result.reason = "Forbidden".to_string();
    response.result.status = Some(kube::core::response::StatusSummary::Failure);
    response
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;

    const POD: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
        "uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},
        "resource":{"group":"","version":"v1","resource":"pods"},
        "name":"p","namespace":"prod","operation":"CREATE",
        "userInfo":{"username":"alice","groups":["dev","system:authenticated"]},
        "object":{"metadata":{"name":"p"}},"oldObject":null,"dryRun":false}}"#;

    #[test]
    fn reads_the_request_facts() {
        let input = parse(POD.as_bytes()).unwrap();
        let r = &input.request;
        assert_eq!(
            (r.uid.as_str(), r.operation, r.kind.as_str()),
            ("u1", Operation::Create, "Pod")
        );
        assert_eq!(r.groups, vec!["dev", "system:authenticated"]);
        assert_eq!(r.resource_path(), "pods");
    }

    #[test]
    fn a_subresource_is_in_its_resource_group_not_its_kind_group() {
        // `kubectl scale deploy`, as the API server sends it.
        let scale = POD
            .replace(
                r#""kind":{"group":"","version":"v1","kind":"Pod"}"#,
                r#""kind":{"group":"autoscaling","version":"v1","kind":"Scale"}"#,
            )
            .replace(
                r#""resource":{"group":"","version":"v1","resource":"pods"}"#,
                r#""resource":{"group":"apps","version":"v1","resource":"deployments"},"subResource":"scale""#,
            );
        let r = parse(scale.as_bytes()).unwrap().request;
        assert_eq!(
            (r.group.as_str(), r.resource_path(), r.kind.as_str()),
            ("apps", "deployments/scale".to_string(), "Scale")
        );
    }

    #[test]
    fn bad_bodies_get_errors_that_name_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "not valid JSON"),
            (b"\xff\xfe", "UTF-8"),
            (b"[1]", "JSON object"),
            (
                br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#,
                "admissionReviewVersions",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
                "no `request`",
            ),
            (
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}"#,
                "uid",
            ),
        ];
        for (body, expect) in cases {
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains(expect), "{err} should mention {expect}");
        }
        let wrong = POD.replace(r#""operation":"CREATE""#, r#""operation":7"#);
        assert!(parse(wrong.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("request.operation"));
        let wrong = POD.replace(
            r#""groups":["dev","system:authenticated"]"#,
            r#""groups":"dev""#,
        );
        assert!(parse(wrong.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("userInfo.groups"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(parse(deep.as_bytes()), Err(ReviewError::Json(_))));
    }

    #[test]
    fn peek_uid_reads_only_the_uid() {
        assert_eq!(peek_uid(POD.as_bytes()).as_deref(), Some("u1"));
        assert_eq!(peek_uid(b"junk"), None);
    }

    #[test]
    fn patches_are_encoded_base64_as_the_api_server_requires() {
        use base64::Engine as _;
        let op: json_patch::PatchOperation = serde_json::from_value(
            serde_json::json!({"op": "add", "path": "/metadata/labels/x", "value": "y"}),
        )
        .unwrap();
        let decision = Decision {
            allowed: true,
            verdict: crate::decision::Verdict::Allow,
            message: String::new(),
            warnings: vec![],
            patch: vec![op],
            grant: None,
            would_deny: vec![],
            errors: vec![],
            request_access: None,
        };
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&respond("u1", &decision))).unwrap();
        assert_eq!(json["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(json["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(patch[0]["path"], "/metadata/labels/x");
    }

    #[test]
    fn denials_are_403_with_the_message() {
        let review = respond_denied("u1", "no");
        let json = serde_json::to_value(&review).unwrap();
        assert_eq!(json["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(json["response"]["uid"], "u1");
        assert_eq!(json["response"]["allowed"], false);
        assert_eq!(json["response"]["status"]["code"], 403);
        assert_eq!(json["response"]["status"]["message"], "no");
    }
}
