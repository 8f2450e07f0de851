//! Smaller engines: for each set of packages a request can concern (see `relevance`), an
//! engine that holds only the modules those packages can reach.
//!
//! regorus pays for every module it holds on every `data` reference it has not resolved
//! yet: it walks all the modules to find those under the referenced path, rebuilding each
//! one's package path as it goes. On a Pod CREATE in prod the three packages it concerns,
//! with lib, cost about 9% fewer instructions in an engine without the other five; a
//! pods/exec, which concerns one package, about 16% fewer.
//!
//! A module is left out only when nothing the request evaluates can refer to it. Which
//! modules a module refers to is read at load time from regorus's parsed modules: every
//! reference rooted at `data` (imports included), as far as it is static
//! (`data.a.b[input.x]` refers to everything under `data.a.b`). A module refers to the
//! modules whose package is at, above or below such a path, and to those above or below
//! its own package. A module that uses `data` whole (`walk(data, ...)`), or whose
//! references this reading cannot account for, needs every module: no smaller engine is
//! built for the requests that reach it. Data documents are in every engine.

// The AST is read with serde_json's `value["key"]`, which returns Null for a missing key
// or a non-object and never panics.
#![allow(clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regorus::{Engine, Value};
use serde_json::Value as Json;

use super::relevance::Mask;
use super::{aggregate, new_engine, prepare, EvalOptions, PackageInfo, Sources};

/// The smaller engines, and which one evaluates each mask.
#[derive(Clone, Default)]
pub(super) struct LeanEngines {
    engines: Vec<Engine>,
    /// Per engine, the files of the modules it holds.
    files: Vec<Vec<String>>,
    by_mask: HashMap<Mask, usize>,
}

impl LeanEngines {
    /// An engine for each set of modules some of `masks` need, when that is fewer than
    /// all of them. `ast` is the policy modules' AST, without the aggregate; `documents`
    /// the data documents, nested under their paths. What cannot be built is left to
    /// the full engine, which evaluates the same rules.
    pub(super) fn build(
        ast: &Json,
        sources: &Sources,
        documents: &[Value],
        packages: &[PackageInfo],
        masks: &BTreeSet<Mask>,
        options: EvalOptions,
    ) -> Self {
        let mut lean = Self::default();
        let Some(modules) = read(ast) else {
            return lean;
        };
        let mut groups: BTreeMap<BTreeSet<usize>, Vec<Mask>> = BTreeMap::new();
        for &mask in masks {
            // The packages evaluated, and those whose `enforcement` is evaluated anyway.
            let roots: Vec<Vec<String>> = packages
                .iter()
                .enumerate()
                .filter(|(i, p)| mask & (1 << i) != 0 || p.declares("enforcement"))
                .map(|(_, p)| {
                    std::iter::once("data".to_string())
                        .chain(p.components.iter().cloned())
                        .collect()
                })
                .collect();
            match needed(&modules, &roots) {
                Some(set) if set.len() < modules.len() => groups.entry(set).or_default().push(mask),
                _ => {}
            }
        }
        for (set, masks) in groups {
            let files: Vec<String> = set
                .iter()
                .filter_map(|&i| modules.get(i))
                .map(|m| m.file.clone())
                .collect();
            match engine_of(&files, sources, documents, packages, &masks, options) {
                Ok(engine) => {
                    for mask in masks {
                        lean.by_mask.insert(mask, lean.engines.len());
                    }
                    lean.engines.push(engine);
                    lean.files.push(files);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a smaller engine could not be built; the full engine evaluates its requests")
                }
            }
        }
        lean
    }

    /// The engine for a mask, if it has one of its own.
    pub(super) fn for_mask(&mut self, mask: Mask) -> Option<&mut Engine> {
        let index = *self.by_mask.get(&mask)?;
        self.engines.get_mut(index)
    }

    /// The files of the modules the engine for a mask holds; `None` for the full engine.
    pub(super) fn files(&self, mask: Mask) -> Option<&[String]> {
        let index = *self.by_mask.get(&mask)?;
        self.files.get(index).map(Vec::as_slice)
    }
}

fn engine_of(
    files: &[String],
    sources: &Sources,
    documents: &[Value],
    packages: &[PackageInfo],
    masks: &[Mask],
    options: EvalOptions,
) -> anyhow::Result<Engine> {
    let mut engine = new_engine(options);
    for file in files {
        let source = sources
            .modules
            .iter()
            .find(|m| m.display() == *file)
            .ok_or_else(|| anyhow::anyhow!("module {file} is not among the sources"))?;
        engine.add_policy(file.clone(), source.contents.clone())?;
    }
    for document in documents {
        engine.add_data(document.clone())?;
    }
    engine.add_policy(
        "<jitguard aggregate>".to_string(),
        aggregate::lean(packages, masks),
    )?;
    prepare(&mut engine).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(engine)
}

/// One module as the engine holds it: its file, its package's path (`data` first) and
/// the paths it refers to; `None` when it may refer to anything.
#[derive(Clone, Debug)]
pub(super) struct ModuleRefs {
    pub(super) file: String,
    package: Vec<String>,
    refs: Option<Vec<Vec<String>>>,
}

/// Reads every module of regorus's AST (`Engine::get_ast_as_json`). `None` if the AST
/// does not have the shape expected: then no smaller engine is built.
pub(super) fn read(ast: &Json) -> Option<Vec<ModuleRefs>> {
    ast.as_array()?
        .iter()
        .map(|module| {
            let file = module["source"]["file"].as_str()?.to_string();
            let contents = module["source"]["contents"].as_str()?;
            let body = &module["ast"];
            let mut package = vec!["data".to_string()];
            package.extend(static_components(&body["package"]["refr"])?);
            let mut refs = Vec::new();
            let mut seen = 0;
            let whole = [&body["imports"], &body["rules"]]
                .into_iter()
                .any(|node| !collect(node, &mut refs, &mut seen));
            // Every `data` the lexer sees must be one this reading accounted for: a
            // parser that one day represents a reference differently must not make a
            // module look as if it referred to nothing.
            let accounted = seen == data_tokens(contents);
            Some(ModuleRefs {
                file,
                package,
                refs: (!whole && accounted).then_some(refs),
            })
        })
        .collect()
}

/// The modules (indexes into `modules`) that evaluating anything under `roots` can
/// reach; `None` if that may be any module.
pub(super) fn needed(modules: &[ModuleRefs], roots: &[Vec<String>]) -> Option<BTreeSet<usize>> {
    let mut included = BTreeSet::new();
    let mut pending: Vec<Vec<String>> = roots.to_vec();
    while let Some(path) = pending.pop() {
        for (i, module) in modules.iter().enumerate() {
            if included.contains(&i) || !overlaps(&module.package, &path) {
                continue;
            }
            included.insert(i);
            pending.extend(module.refs.clone()?);
            // Packages above or below this one: regorus may resolve a name through them.
            pending.push(module.package.clone());
        }
    }
    Some(included)
}

/// One path is a prefix of the other.
fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Records in `refs` the static part of every reference rooted at `data` under `node`,
/// and counts in `seen` the `data` variables it accounts for. False if `data` is used
/// whole.
fn collect(node: &Json, refs: &mut Vec<Vec<String>>, seen: &mut usize) -> bool {
    match node {
        Json::Object(fields) => {
            if let Some(var) = fields.get("Var") {
                if var["value"] == "data" {
                    *seen += 1;
                    return false;
                }
                return true;
            }
            if fields.contains_key("RefDot") || fields.contains_key("RefBrack") {
                return collect_ref(node, refs, seen);
            }
            fields.values().all(|v| collect(v, refs, seen))
        }
        Json::Array(items) => items.iter().all(|v| collect(v, refs, seen)),
        _ => true,
    }
}

/// A chain of `.field` and `[index]` down to its root: a reference to `data` is recorded
/// as far as it is static; the indexes and any other root are read like any expression.
fn collect_ref(node: &Json, refs: &mut Vec<Vec<String>>, seen: &mut usize) -> bool {
    let mut components = Vec::new();
    let mut here = node;
    loop {
        if let Some(dot) = here.get("RefDot") {
            components.push(
                dot["field"]
                    .get(1)
                    .and_then(Json::as_str)
                    .map(str::to_string),
            );
            here = &dot["refr"];
        } else if let Some(brack) = here.get("RefBrack") {
            components.push(string_literal(&brack["index"]).map(str::to_string));
            if !collect(&brack["index"], refs, seen) {
                return false;
            }
            here = &brack["refr"];
        } else {
            break;
        }
    }
    match here.get("Var") {
        Some(var) if var["value"] == "data" => {
            *seen += 1;
            components.reverse();
            let mut path = vec!["data".to_string()];
            path.extend(components.into_iter().map_while(|c| c));
            refs.push(path);
            true
        }
        Some(_) => true,
        None => collect(here, refs, seen),
    }
}

/// `a.b["c"]` as components; `None` if any part is not static.
fn static_components(expr: &Json) -> Option<Vec<String>> {
    if let Some(var) = expr.get("Var") {
        return Some(vec![var["value"].as_str()?.to_string()]);
    }
    if let Some(dot) = expr.get("RefDot") {
        let mut path = static_components(&dot["refr"])?;
        path.push(dot["field"].get(1)?.as_str()?.to_string());
        return Some(path);
    }
    let brack = expr.get("RefBrack")?;
    let mut path = static_components(&brack["refr"])?;
    path.push(string_literal(&brack["index"])?.to_string());
    Some(path)
}

fn string_literal(expr: &Json) -> Option<&str> {
    expr.get("String")
        .or_else(|| expr.get("RawString"))
        .and_then(|s| s["value"].as_str())
}

/// How many times the identifier `data` occurs in Rego source, outside comments, string
/// literals and field names (`x.data`). Whatever else the lexer and the parser disagree
/// on makes the counts differ, which keeps the module's engines whole.
fn data_tokens(source: &str) -> usize {
    let bytes = source.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let (mut count, mut i) = (0, 0);
    while let Some(&b) = bytes.get(i) {
        match b {
            b'#' => {
                while bytes.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while let Some(&c) = bytes.get(i) {
                    i += if c == b'\\' { 2 } else { 1 };
                    if c == b'"' {
                        break;
                    }
                }
            }
            b'`' => {
                i += 1;
                while bytes.get(i).is_some_and(|&c| c != b'`') {
                    i += 1;
                }
                i += 1;
            }
            _ if word(b) => {
                let start = i;
                while bytes.get(i).copied().is_some_and(word) {
                    i += 1;
                }
                let field = start.checked_sub(1).and_then(|j| bytes.get(j)) == Some(&b'.');
                if !field && bytes.get(start..i) == Some(b"data".as_slice()) {
                    count += 1;
                }
            }
            _ => i += 1,
        }
    }
    count
}

#[cfg(test)]
mod tests;
