//! Reading a policy folder: Rego modules, their tests and data documents, laid out as an
//! OPA bundle so that the same folder gives the same results under OPA.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use regorus::{Engine, Value};

/// Folders nested deeper than this are refused: it stops symlink loops.
const MAX_DEPTH: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Rego syntax or compile error: `file:line:col: message` and the offending line.
    #[error("{0}")]
    Compile(String),
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },
    #[error("{0}")]
    Contract(String),
    #[error("no Rego policies (*.rego, other than *_test.rego) under {0}: give the folder that holds them (--policies for serve and dry-run, the folder argument for check and test)")]
    Empty(PathBuf),
}

impl LoadError {
    /// regorus reports `--> file:line:col`, the source line with a caret, then
    /// `error: message`. Put the location and message first, on one line, so that logs
    /// and CI output read `policies/x.rego:3:5: message`, and keep the excerpt below.
    pub(crate) fn compile(err: &anyhow::Error) -> Self {
        Self::Compile(crate::text::format_rego_error(&err.to_string()))
    }
}

/// A file's path as the user gave it (relative to the working directory when the
/// folder was given that way), which is what error messages must name.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub contents: String,
}

impl SourceFile {
    pub fn display(&self) -> String {
        self.path.display().to_string()
    }
}

/// A `data.json` / `data.yaml` file and the `data` path it is loaded at (its folder).
#[derive(Clone, Debug)]
pub struct DataFile {
    pub path: PathBuf,
    pub prefix: Vec<String>,
    pub contents: String,
}

/// Everything read from a policy folder.
#[derive(Clone, Debug)]
pub struct Sources {
    pub root: PathBuf,
    pub modules: Vec<SourceFile>,
    pub tests: Vec<SourceFile>,
    pub data: Vec<DataFile>,
    /// YAML files that hold Gatekeeper ConstraintTemplates or Constraints.
    pub gatekeeper: Vec<SourceFile>,
    /// Hash of what is served (modules and data, not tests): the reloader compares it.
    pub digest: u64,
}

impl Sources {
    /// Reads `root` recursively. Names starting with `.` are skipped: editors' swap files,
    /// and the `..data` / `..2024_01_01...` folders kubelet uses to swap ConfigMap
    /// volumes atomically (their files are reached through the top-level symlinks).
    pub fn read(root: &Path) -> Result<Self, LoadError> {
        let meta = std::fs::metadata(root).map_err(|source| LoadError::Io {
            path: root.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(LoadError::Io {
                path: root.to_path_buf(),
                source: std::io::Error::other("not a folder"),
            });
        }
        let mut sources = Self {
            root: root.to_path_buf(),
            modules: Vec::new(),
            tests: Vec::new(),
            data: Vec::new(),
            gatekeeper: Vec::new(),
            digest: 0,
        };
        sources.walk(root, &mut Vec::new())?;
        sources.modules.sort_by(|a, b| a.path.cmp(&b.path));
        sources.tests.sort_by(|a, b| a.path.cmp(&b.path));
        sources.data.sort_by(|a, b| a.path.cmp(&b.path));
        sources.gatekeeper.sort_by(|a, b| a.path.cmp(&b.path));
        sources.digest = sources.compute_digest();
        Ok(sources)
    }

    fn walk(&mut self, dir: &Path, prefix: &mut Vec<String>) -> Result<(), LoadError> {
        if prefix.len() > MAX_DEPTH {
            return Err(LoadError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::other("folders nested too deep (a symlink loop?)"),
            });
        }
        let io = |source| LoadError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut entries = std::fs::read_dir(dir)
            .map_err(io)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = entry.path();
            // Follow symlinks: ConfigMap and Secret volumes are made of them.
            let meta = std::fs::metadata(&path).map_err(|source| LoadError::Io {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                prefix.push(name);
                self.walk(&path, prefix)?;
                prefix.pop();
                continue;
            }
            let read = || {
                std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
                    path: path.clone(),
                    source,
                })
            };
            if name.ends_with("_test.rego") {
                self.tests.push(SourceFile {
                    contents: read()?,
                    path,
                });
            } else if name.ends_with(".rego") {
                self.modules.push(SourceFile {
                    contents: read()?,
                    path,
                });
            } else if matches!(name.as_str(), "data.json" | "data.yaml" | "data.yml") {
                self.data.push(DataFile {
                    contents: read()?,
                    prefix: prefix.clone(),
                    path,
                });
            } else if name.ends_with(".yaml") || name.ends_with(".yml") {
                // Gatekeeper's objects are recognised by apiVersion; other YAML (suites,
                // manifests, kustomization) is not served.
                let contents = read()?;
                if contents.contains("templates.gatekeeper.sh/")
                    || contents.contains("constraints.gatekeeper.sh/")
                {
                    self.gatekeeper.push(SourceFile { contents, path });
                }
            }
        }
        Ok(())
    }

    fn compute_digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for f in &self.modules {
            f.path.hash(&mut h);
            f.contents.hash(&mut h);
        }
        for f in self
            .data
            .iter()
            .map(|d| (&d.path, &d.contents))
            .chain(self.gatekeeper.iter().map(|g| (&g.path, &g.contents)))
        {
            f.0.hash(&mut h);
            f.1.hash(&mut h);
        }
        h.finish()
    }

    /// Every ConstraintTemplate and Constraint document of the Gatekeeper files, with the
    /// file it came from.
    pub(crate) fn gatekeeper_documents(
        &self,
    ) -> Result<Vec<(String, serde_json::Value)>, LoadError> {
        let mut out = Vec::new();
        for file in &self.gatekeeper {
            for (line, doc) in crate::text::yaml_documents(&file.contents) {
                let value: serde_json::Value = yaml_serde::from_str(doc).map_err(|e| {
                    let (at, message) = crate::text::yaml_error(&e);
                    LoadError::Data {
                        path: file.path.clone(),
                        message: format!("line {}: {message}", line + at),
                    }
                })?;
                if crate::gatekeeper::is_template(&value)
                    || crate::gatekeeper::is_constraint(&value)
                {
                    out.push((format!("{}:{line}", file.display()), value));
                }
            }
        }
        Ok(out)
    }

    /// Loads every data document into `engine` under its folder's path, and returns
    /// them, so nested (the relevance reader looks for data at contract-rule paths).
    pub(crate) fn add_data(&self, engine: &mut Engine) -> Result<Vec<Value>, LoadError> {
        let mut documents = Vec::with_capacity(self.data.len());
        for file in &self.data {
            let nested = file.prefix.iter().rev().fold(file.parse()?, |inner, key| {
                let mut map = std::collections::BTreeMap::new();
                map.insert(Value::from(key.as_str()), inner);
                Value::from(map)
            });
            engine
                .add_data(nested.clone())
                .map_err(|e| LoadError::Data {
                    path: file.path.clone(),
                    message: format!("cannot merge into data: {e}"),
                })?;
            documents.push(nested);
        }
        Ok(documents)
    }
}

impl DataFile {
    fn parse(&self) -> Result<Value, LoadError> {
        let is_json = self.path.extension().is_some_and(|e| e == "json");
        let parsed = if is_json {
            serde_json::from_str::<Value>(&self.contents).map_err(|e| e.to_string())
        } else {
            yaml_serde::from_str::<Value>(&self.contents).map_err(|e| e.to_string())
        };
        let value = parsed.map_err(|message| LoadError::Data {
            path: self.path.clone(),
            message,
        })?;
        match value {
            Value::Object(_) => Ok(value),
            // An empty YAML file is null: treat it as an empty document.
            Value::Null => Ok(Value::new_object()),
            other => Err(LoadError::Data {
                path: self.path.clone(),
                message: format!("a data document must be an object, not {other}"),
            }),
        }
    }
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

    #[test]
    fn reads_modules_tests_and_data_and_skips_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("a/b")).unwrap();
        std::fs::create_dir_all(p.join("..data")).unwrap();
        std::fs::write(p.join("a/b/x.rego"), "package a.b").unwrap();
        std::fs::write(p.join("a/b/x_test.rego"), "package a.b").unwrap();
        std::fs::write(p.join("a/b/data.yaml"), "k: 1").unwrap();
        std::fs::write(p.join("..data/y.rego"), "package hidden").unwrap();
        std::fs::write(p.join(".x.rego.swp"), "junk").unwrap();
        let s = Sources::read(p).unwrap();
        assert_eq!(s.modules.len(), 1);
        assert_eq!(s.tests.len(), 1);
        assert_eq!(s.data[0].prefix, vec!["a", "b"]);
    }

    #[test]
    fn digest_changes_with_served_content_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("x.rego"), "package x").unwrap();
        let d1 = Sources::read(p).unwrap().digest;
        std::fs::write(p.join("x_test.rego"), "package x").unwrap();
        assert_eq!(Sources::read(p).unwrap().digest, d1);
        std::fs::write(p.join("x.rego"), "package x\n").unwrap();
        assert_ne!(Sources::read(p).unwrap().digest, d1);
    }

    #[test]
    fn data_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.rego"), "package x").unwrap();
        std::fs::write(dir.path().join("data.yaml"), "a: 1\nb: [\n").unwrap();
        let s = Sources::read(dir.path()).unwrap();
        let mut engine = Engine::new();
        let err = s.add_data(&mut engine).unwrap_err().to_string();
        assert!(err.contains("data.yaml") && err.contains("line"), "{err}");
    }

    #[test]
    fn rego_errors_are_reformatted_location_first() {
        let raw = "\n--> p/x.rego:3:5\n  |\n3 | foo bar\n  |     ^\nerror: unexpected token";
        let out = crate::text::format_rego_error(raw);
        assert!(out.starts_with("p/x.rego:3:5: unexpected token"), "{out}");
        assert!(out.contains("3 | foo bar"), "{out}");
    }
}
