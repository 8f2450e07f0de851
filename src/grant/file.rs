//! The local grant source: a YAML file of AccessRequest objects (several documents, or a
//! List), for development and for `dry-run`. Re-read when it changes; a file that does
//! not parse is refused with file:line and the last good set stays.
//!
//! The file stands in for the cluster, so it may also hold Namespace objects: their
//! labels are what label-based namespace protection reads (see [`crate::namespace`]).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use serde::Deserialize;

use super::resource::AccessRequest;

#[derive(Debug, thiserror::Error)]
pub enum GrantFileError {
    #[error("cannot read grants file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    items: Vec<AccessRequest>,
}

/// What a local file holds: the AccessRequests, and the Namespaces whose labels
/// policies read.
#[derive(Debug, Default)]
pub struct LocalState {
    pub grants: Vec<AccessRequest>,
    pub namespaces: Vec<Namespace>,
}

impl LocalState {
    /// What a person who wrote the file should know about AccessRequests that say they
    /// are Approved: why one grants nothing, or ends earlier than its `expiresAt` says.
    pub fn problems(&self) -> Vec<String> {
        self.grants
            .iter()
            .filter_map(super::store::status_problem)
            .collect()
    }
}

pub fn read(path: &Path) -> Result<LocalState, GrantFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| GrantFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses every YAML document. Errors carry the line in the whole file, not in the
/// document, so editors jump to the right place.
pub fn parse(text: &str, path: &Path) -> Result<LocalState, GrantFileError> {
    let mut out = Vec::new();
    let mut namespaces = Vec::new();
    for (start, doc) in crate::text::yaml_documents(text) {
        let err = |line: usize, message: String| GrantFileError::Parse {
            path: path.to_path_buf(),
            line: start + line,
            message,
        };
        let located = |e: yaml_serde::Error| {
            let (line, message) = crate::text::yaml_error(&e);
            err(line, message)
        };
        let head: Option<Head> = yaml_serde::from_str(doc).map_err(located)?;
        let Some(head) = head else { continue };
        match (head.api_version.as_str(), head.kind.as_str()) {
            ("jitguard.dev/v1alpha1", "AccessRequest") => {
                out.push(yaml_serde::from_str::<AccessRequest>(doc).map_err(located)?);
            }
            (_, "List") | ("jitguard.dev/v1alpha1", "AccessRequestList") => {
                let list: List = yaml_serde::from_str(doc).map_err(located)?;
                for item in &list.items {
                    if item.metadata.name.as_deref().unwrap_or_default().is_empty() {
                        return Err(err(0, "a List item has no metadata.name".into()));
                    }
                }
                out.extend(list.items);
            }
            ("v1", "Namespace") => {
                let ns: Namespace = yaml_serde::from_str(doc).map_err(located)?;
                if ns.metadata.name.as_deref().unwrap_or_default().is_empty() {
                    return Err(err(0, "a Namespace has no metadata.name".into()));
                }
                namespaces.push(ns);
            }
            (api_version, kind) => {
                return Err(err(
                    0,
                    format!("expected apiVersion jitguard.dev/v1alpha1 kind AccessRequest (or a List of them), or apiVersion v1 kind Namespace, got apiVersion {api_version:?} kind {kind:?}"),
                ))
            }
        }
    }
    for ar in &out {
        if ar.metadata.name.as_deref().unwrap_or_default().is_empty() {
            return Err(GrantFileError::Parse {
                path: path.to_path_buf(),
                line: 1,
                message: "an AccessRequest has no metadata.name".into(),
            });
        }
    }
    Ok(LocalState {
        grants: out,
        namespaces,
    })
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

    const ONE: &str = "apiVersion: jitguard.dev/v1alpha1\nkind: AccessRequest\nmetadata:\n  name: a\nspec:\n  requester: alice\n  scope: []\n  reason: r\n  duration: 30m\n";

    #[test]
    fn reads_documents_and_lists() {
        let list = format!(
            "apiVersion: v1\nkind: List\nitems:\n- {}",
            ONE.replace('\n', "\n  ").trim_end()
        );
        let text = format!("{ONE}---\n{list}\n---\n");
        let grants = parse(&text, Path::new("g.yaml")).unwrap().grants;
        assert_eq!(grants.len(), 2);
        assert_eq!(grants[1].spec.requester, "alice");
    }

    #[test]
    fn errors_name_the_line_in_the_whole_file() {
        let broken = ONE.replace("duration: 30m\n", "");
        let text = format!("{ONE}---\n{broken}");
        let err = parse(&text, Path::new("g.yaml")).unwrap_err().to_string();
        assert!(err.starts_with("g.yaml:"), "{err}");
        assert!(err.contains("duration"), "{err}");
        let syntax = format!("{ONE}---\nkind: [\n");
        let err = parse(&syntax, Path::new("g.yaml")).unwrap_err();
        let GrantFileError::Parse { line, .. } = err else {
            panic!()
        };
        assert!(line >= 11, "line {line}");
    }

    #[test]
    fn namespaces_come_with_their_labels() {
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: payments\n  labels:\n    jitguard.dev/protected: \"true\"\n";
        let state = parse(&format!("{ONE}---\n{ns}"), Path::new("g.yaml")).unwrap();
        assert_eq!(state.grants.len(), 1);
        let labels = state.namespaces[0].metadata.labels.clone().unwrap();
        assert_eq!(labels["jitguard.dev/protected"], "true");
        let nameless = "apiVersion: v1\nkind: Namespace\nmetadata: {}\n";
        let err = parse(nameless, Path::new("g.yaml")).unwrap_err();
        assert!(err.to_string().contains("no metadata.name"), "{err}");
    }

    #[test]
    fn other_kinds_are_refused() {
        let err = parse("apiVersion: v1\nkind: Pod\n", Path::new("g.yaml")).unwrap_err();
        assert!(err.to_string().contains("AccessRequest"));
    }
}
