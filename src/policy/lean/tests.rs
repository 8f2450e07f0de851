#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;

fn modules(sources: &[&str]) -> Vec<ModuleRefs> {
    let mut engine = regorus::Engine::new();
    for (i, m) in sources.iter().enumerate() {
        engine
            .add_policy(format!("m{i}.rego"), (*m).to_string())
            .unwrap();
    }
    let ast: Json = serde_json::from_str(&engine.get_ast_as_json().unwrap()).unwrap();
    read(&ast).expect("the AST reads")
}

fn path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

fn needed_files(mods: &[ModuleRefs], root: &str) -> Option<Vec<String>> {
    needed(mods, &[path(root)]).map(|set| set.iter().map(|&i| mods[i].file.clone()).collect())
}

#[test]
fn references_are_read_as_far_as_they_are_static() {
    let mods = modules(&[r#"package p
import data.lib.helpers as h
# data in a comment, "data" in a string and a field named data do not count
deny contains msg if {
	data.a.b[input.x].c == 1
	some v in data.set["k"]
	data.f.g(1)
	h.x
	msg := input.request.object.data
}
warn contains "w" if {
	true with data.m.n as 1
	x := `data`
}"#]);
    let refs = mods[0].refs.clone().expect("every reference accounted for");
    for expected in [
        "data.lib.helpers",
        "data.a.b",
        "data.set.k",
        "data.f.g",
        "data.m.n",
    ] {
        assert!(refs.contains(&path(expected)), "{expected} in {refs:?}");
    }
    assert_eq!(mods[0].package, path("data.p"));
}

#[test]
fn data_used_whole_may_reach_any_module() {
    let mods = modules(&[
        "package p\ndeny contains \"x\" if walk(data, [_, _])",
        "package r\ndeny contains \"x\" if true",
    ]);
    assert!(mods[0].refs.is_none());
    assert_eq!(needed_files(&mods, "data.p"), None);
    assert_eq!(needed_files(&mods, "data.r").unwrap(), ["m1.rego"]);
    // A dynamic first component is a reference to everything under `data`.
    let mods = modules(&[
        "package q\ndeny contains \"x\" if data[input.x].deny",
        "package r\ndeny contains \"x\" if true",
    ]);
    assert_eq!(mods[0].refs.clone().unwrap(), vec![path("data")]);
    assert_eq!(
        needed_files(&mods, "data.q").unwrap(),
        ["m0.rego", "m1.rego"]
    );
}

#[test]
fn the_modules_a_package_reaches_are_followed_to_the_end() {
    let mods = modules(&[
        "package a\nimport data.b.helper\ndeny contains \"a\" if helper",
        "package b\nhelper if data.c.flag",
        "package c\nflag := true",
        "package c.inner\nx := 1",
        "package d\ndeny contains \"d\" if true",
        "package a\nwarn contains \"a2\" if true",
    ]);
    // a (both files) → b → c, and c's sub-package: never d.
    assert_eq!(
        needed_files(&mods, "data.a").unwrap(),
        ["m0.rego", "m1.rego", "m2.rego", "m3.rego", "m5.rego"]
    );
    assert_eq!(needed_files(&mods, "data.d").unwrap(), ["m4.rego"]);
    // A reference above a package reaches it: data.c reaches c.inner.
    assert_eq!(
        needed_files(&mods, "data.c").unwrap(),
        ["m2.rego", "m3.rego"]
    );
}

#[test]
fn a_data_the_reading_cannot_account_for_keeps_every_module() {
    // The lexer's count and the parsed references must agree. A parser that represented
    // a reference in a shape this reading does not know would make a module look as if
    // it referred to nothing: the reference is rewritten here into such a shape.
    let mut engine = regorus::Engine::new();
    engine
        .add_policy(
            "m.rego".into(),
            "package p\ndeny contains \"x\" if data.q.flag".into(),
        )
        .unwrap();
    let mut ast: Json = serde_json::from_str(&engine.get_ast_as_json().unwrap()).unwrap();
    assert!(read(&ast).unwrap()[0].refs.is_some());
    let text = ast.to_string().replace("\"RefDot\"", "\"SomeNewRef\"");
    ast = serde_json::from_str(&text).unwrap();
    let mods = read(&ast).unwrap();
    assert!(mods[0].refs.is_none(), "{:?}", mods[0].refs);
    // ... or named its root otherwise: then only the count tells.
    let mut ast: Json = serde_json::from_str(&engine.get_ast_as_json().unwrap()).unwrap();
    let text = ast
        .to_string()
        .replace("\"value\":\"data\"", "\"value\":\"datum\"");
    ast = serde_json::from_str(&text).unwrap();
    assert!(read(&ast).unwrap()[0].refs.is_none());
    // Without the source the AST is not read at all.
    ast[0]["source"] = Json::Null;
    assert!(read(&ast).is_none());
}

#[test]
fn the_lexer_counts_data_outside_comments_strings_and_fields() {
    assert_eq!(
        data_tokens("data.x # data\n\"data \\\" data\" `data` y.data data_x"),
        1
    );
    assert_eq!(data_tokens("import data.a\nx := data\n"), 2);
}
