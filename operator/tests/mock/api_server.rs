//! An in-memory Kubernetes API server: get, list (with label selectors), create, server-side
//! apply, JSON merge patch, status subresource and delete (with uid preconditions), for any
//! namespaced resource. Every write is logged, so tests can assert the exact calls made.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One write the operator made.
#[derive(Clone, Debug)]
pub struct Write {
    /// The HTTP method.
    #[allow(dead_code)]
    pub method: String,
    /// `<plural>/<name>` or `<plural>/<name>/status`.
    pub target: String,
    /// `apply`, `merge`, `create` or `delete`.
    pub kind: String,
    pub body: Value,
}

/// The stored objects, keyed by (plural, namespace, name).
#[derive(Default)]
pub struct Store {
    pub objects: BTreeMap<(String, String, String), Value>,
    pub writes: Vec<Write>,
    /// This many status writes to come are refused (an API server that fails them).
    pub refuse_status_writes: usize,
    next_uid: u64,
    resource_version: u64,
}

impl Store {
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(plural.to_string(), namespace.to_string(), name.to_string()))
    }

    pub fn get_mut(&mut self, plural: &str, namespace: &str, name: &str) -> Option<&mut Value> {
        self.objects
            .get_mut(&(plural.to_string(), namespace.to_string(), name.to_string()))
    }

    pub fn list(&self, plural: &str, namespace: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((p, ns, _), _)| p == plural && ns == namespace)
            .map(|(_, v)| v)
            .collect()
    }

    pub fn remove(&mut self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .remove(&(plural.to_string(), namespace.to_string(), name.to_string()))
    }

    /// Stores `object` as the API server would on create: a uid, a resource version, a
    /// creation time and generation 1.
    pub fn create(&mut self, plural: &str, namespace: &str, mut object: Value) -> Value {
        self.next_uid += 1;
        let name = object["metadata"]["name"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("generated-{}", self.next_uid));
        object["metadata"]["name"] = json!(name);
        object["metadata"]["namespace"] = json!(namespace);
        object["metadata"]["uid"] = json!(format!("uid-{}", self.next_uid));
        object["metadata"]["generation"] = json!(1);
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] =
                json!(k8s_openapi::jiff::Timestamp::now().to_string());
        }
        self.bump(&mut object);
        self.objects.insert(
            (plural.to_string(), namespace.to_string(), name),
            object.clone(),
        );
        object
    }

    fn bump(&mut self, object: &mut Value) {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
    }

    /// Replaces an object's spec (and everything but its status and identity), as a user's
    /// `kubectl apply` would; the generation moves on when the spec changes.
    pub fn update_spec(&mut self, plural: &str, namespace: &str, name: &str, spec: Value) {
        let mut object = self
            .get(plural, namespace, name)
            .cloned()
            .unwrap_or_default();
        if object["spec"] != spec {
            let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        object["spec"] = spec;
        self.bump(&mut object);
        self.objects.insert(
            (plural.to_string(), namespace.to_string(), name.to_string()),
            object,
        );
    }

    /// The writes of one kind to one target prefix (`statefulsets/orders`, say).
    pub fn writes_to(&self, target: &str) -> Vec<&Write> {
        self.writes
            .iter()
            .filter(|w| w.target.starts_with(target))
            .collect()
    }

    fn handle(
        &mut self,
        method: &Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let Some(route) = Route::parse(path) else {
            return not_found(path);
        };
        let query = parse_query(query);
        match (method, route.name.as_deref()) {
            (&Method::GET, None) => {
                let selector = query.get("labelSelector").cloned().unwrap_or_default();
                let items: Vec<Value> = self
                    .list(&route.plural, &route.namespace)
                    .into_iter()
                    .filter(|o| matches_selector(o, &selector))
                    .cloned()
                    .collect();
                (
                    StatusCode::OK,
                    json!({
                        "apiVersion": route.api_version,
                        "kind": "List",
                        "metadata": { "resourceVersion": self.resource_version.to_string() },
                        "items": items,
                    }),
                )
            }
            (&Method::GET, Some(name)) => match self.get(&route.plural, &route.namespace, name) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => not_found(name),
            },
            (&Method::POST, None) => {
                self.log("POST", &route, "create", &body);
                let object = self.create(&route.plural, &route.namespace, body);
                (StatusCode::CREATED, object)
            }
            (&Method::PATCH, Some(_))
                if route.subresource.as_deref() == Some("status")
                    && self.refuse_status_writes > 0 =>
            {
                self.refuse_status_writes -= 1;
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    status(500, "InternalError", "the status write was refused (test)"),
                )
            }
            (&Method::PATCH, Some(name)) => {
                let kind = if content_type.contains("apply-patch") {
                    "apply"
                } else {
                    "merge"
                };
                self.log("PATCH", &route, kind, &body);
                let existing = self.get(&route.plural, &route.namespace, name).cloned();
                let object = match (kind, existing, route.subresource.as_deref()) {
                    ("apply", Some(mut old), Some("status")) => {
                        old["status"] = body["status"].clone();
                        old
                    }
                    ("apply", Some(old), None) => {
                        let mut new = body;
                        new["metadata"]["uid"] = old["metadata"]["uid"].clone();
                        new["metadata"]["creationTimestamp"] =
                            old["metadata"]["creationTimestamp"].clone();
                        new["metadata"]["namespace"] = json!(route.namespace);
                        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
                        let changed = old["spec"] != new["spec"];
                        new["metadata"]["generation"] = json!(generation + i64::from(changed));
                        // A patch of the object leaves the status alone.
                        new["status"] = old["status"].clone();
                        if new["status"].is_null() {
                            new.as_object_mut().map(|o| o.remove("status"));
                        }
                        // Annotations set by others survive an apply that does not name them.
                        if let Some(old_notes) = old["metadata"]["annotations"].as_object() {
                            for (k, v) in old_notes {
                                if new["metadata"]["annotations"].get(k).is_none() {
                                    new["metadata"]["annotations"][k] = v.clone();
                                }
                            }
                        }
                        new
                    }
                    ("apply", None, None) => {
                        let created = self.create(&route.plural, &route.namespace, body);
                        return (StatusCode::CREATED, created);
                    }
                    ("merge", Some(mut old), _) => {
                        merge_patch(&mut old, &body);
                        old
                    }
                    _ => return not_found(name),
                };
                let mut object = object;
                self.bump(&mut object);
                self.objects.insert(
                    (
                        route.plural.clone(),
                        route.namespace.clone(),
                        name.to_string(),
                    ),
                    object.clone(),
                );
                (StatusCode::OK, object)
            }
            (&Method::DELETE, Some(name)) => {
                self.log("DELETE", &route, "delete", &body);
                let Some(object) = self.get(&route.plural, &route.namespace, name).cloned() else {
                    return not_found(name);
                };
                if let Some(uid) = body["preconditions"]["uid"].as_str() {
                    if object["metadata"]["uid"].as_str() != Some(uid) {
                        return (
                            StatusCode::CONFLICT,
                            status(409, "Conflict", &format!("precondition failed: uid {uid}")),
                        );
                    }
                }
                self.remove(&route.plural, &route.namespace, name);
                (StatusCode::OK, object)
            }
            _ => (
                StatusCode::METHOD_NOT_ALLOWED,
                status(405, "MethodNotAllowed", path),
            ),
        }
    }

    fn log(&mut self, method: &str, route: &Route, kind: &str, body: &Value) {
        let mut target = route.plural.clone();
        if let Some(name) = &route.name {
            target = format!("{target}/{name}");
        }
        if let Some(sub) = &route.subresource {
            target = format!("{target}/{sub}");
        }
        self.writes.push(Write {
            method: method.to_string(),
            target,
            kind: kind.to_string(),
            body: body.clone(),
        });
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Status", "metadata": {},
        "status": "Failure", "reason": reason, "code": code, "message": message,
    })
}

fn not_found(what: &str) -> (StatusCode, Value) {
    (
        StatusCode::NOT_FOUND,
        status(404, "NotFound", &format!("{what} not found")),
    )
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (key, value) in fields {
                if value.is_null() {
                    target.as_object_mut().map(|o| o.remove(key));
                } else {
                    merge_patch(&mut target[key], value);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn matches_selector(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (key, value) = term.split_once('=').unwrap_or((term, ""));
        object["metadata"]["labels"][key].as_str() == Some(value)
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

/// `/api/v1/namespaces/<ns>/<plural>[/<name>[/<sub>]]` or
/// `/apis/<group>/<version>/namespaces/<ns>/<plural>[/<name>[/<sub>]]`.
struct Route {
    api_version: String,
    namespace: String,
    plural: String,
    name: Option<String>,
    subresource: Option<String>,
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (api_version, rest) = match *parts.first()? {
            "api" => (parts.get(1)?.to_string(), &parts[2..]),
            "apis" => (format!("{}/{}", parts.get(1)?, parts.get(2)?), &parts[3..]),
            _ => return None,
        };
        if rest.first()? != &"namespaces" {
            return None;
        }
        Some(Route {
            api_version,
            namespace: rest.get(1)?.to_string(),
            plural: rest.get(2)?.to_string(),
            name: rest.get(3).map(|s| s.to_string()),
            subresource: rest.get(4).map(|s| s.to_string()),
        })
    }
}

/// A kube `Client` whose requests this store answers.
pub fn client(store: Arc<Mutex<Store>>) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        while let Some((request, respond)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_string();
            let query = request.uri().query().unwrap_or("").to_string();
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = request
                .into_body()
                .collect_bytes()
                .await
                .unwrap_or_default();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes)
                    .or_else(|_| serde_yaml_ng::from_slice(&bytes))
                    .unwrap_or(Value::Null)
            };
            let (code, answer) = store.lock().expect("store lock").handle(
                &method,
                &path,
                &query,
                &content_type,
                body,
            );
            let response = Response::builder()
                .status(code)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()))
                .expect("a response");
            respond.send_response(response);
        }
    });
    Client::new(service, "default")
}
