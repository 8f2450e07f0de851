//! The README's console sessions, run as written.
//!
//! A ```console block is a session: lines starting with `$ ` are commands (a line ending
//! in `\` continues on the next), the lines up to the next command are what it printed.
//! Each command runs in bash, in a working directory the test chooses, with the shell's
//! variables carried from one command to the next (`S=... A=...` on one line are seen by
//! the lines after). Its output (stdout and stderr together) must match what the block
//! shows, line for line, where a line `...` stands for any number of lines left out. A
//! command shown without output must succeed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One command of a session and what it printed.
#[derive(Clone, Debug)]
pub struct Step {
    pub command: String,
    pub expected: Vec<String>,
    /// The README line of the command, for failure messages.
    pub line: usize,
}

/// One ```console block.
#[derive(Clone, Debug)]
pub struct Block {
    pub line: usize,
    pub steps: Vec<Step>,
}

/// Every ```console block of a Markdown text (indented blocks, in lists, too).
pub fn console_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, usize, Vec<Step>)> = None;
    let mut continuing = false;
    for (index, raw) in markdown.lines().enumerate() {
        let number = index + 1;
        let trimmed = raw.trim_start();
        if let Some((start, indent, steps)) = current.as_mut() {
            if trimmed.starts_with("```") {
                // A blank line between commands separates groups; it is not output.
                for step in steps.iter_mut() {
                    while step.expected.last().is_some_and(String::is_empty) {
                        step.expected.pop();
                    }
                }
                blocks.push(Block {
                    line: *start,
                    steps: std::mem::take(steps),
                });
                current = None;
                continue;
            }
            let line = raw.get(*indent..).unwrap_or(trimmed).trim_end();
            if continuing {
                if let Some(step) = steps.last_mut() {
                    step.command.push('\n');
                    step.command.push_str(line);
                }
                continuing = line.ends_with('\\');
            } else if let Some(command) = line.strip_prefix("$ ") {
                continuing = command.ends_with('\\');
                steps.push(Step {
                    command: command.to_string(),
                    expected: Vec::new(),
                    line: number,
                });
            } else if let Some(step) = steps.last_mut() {
                step.expected.push(line.to_string());
            }
        } else if trimmed.starts_with("```console") {
            current = Some((number, raw.len() - trimmed.len(), Vec::new()));
            continuing = false;
        }
    }
    blocks
}

/// The one ```console block of `readme` whose first command starts with `prefix`.
pub fn block_starting(readme: &str, prefix: &str) -> Block {
    let found: Vec<Block> = console_blocks(readme)
        .into_iter()
        .filter(|b| {
            b.steps
                .first()
                .is_some_and(|s| s.command.starts_with(prefix))
        })
        .collect();
    assert_eq!(found.len(), 1, "one README session starts with {prefix:?}");
    found.into_iter().next().unwrap()
}

/// A bash session: variables set by one command are seen by the next.
pub struct Shell {
    cwd: PathBuf,
    state: PathBuf,
    /// README text → the value this run produced (a generated name, say), replaced in
    /// commands before they run and in the expected output before it is compared.
    pub substitutions: Vec<(String, String)>,
}

impl Shell {
    /// `state_dir` holds the session's variables between commands; `path` goes in front
    /// of `PATH`.
    pub fn new(cwd: &Path, state_dir: &Path, path: &[PathBuf]) -> Self {
        let state = state_dir.join("session.env");
        let mut search: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
        search.push(std::env::var("PATH").unwrap_or_default());
        std::fs::write(&state, format!("export PATH={:?}\n", search.join(":"))).unwrap();
        Self {
            cwd: cwd.to_path_buf(),
            state,
            substitutions: Vec::new(),
        }
    }

    pub fn substitute(&self, text: &str) -> String {
        self.substitutions
            .iter()
            .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
    }

    /// Runs one command as the README shows it; returns its exit code and output.
    pub fn run(&self, command: &str) -> (i32, String) {
        let command = self.substitute(command);
        // `set -a`: a plain assignment (`S=...`) is exported, so `export -p` keeps it.
        let script = format!(
            "set -a\nsource {state:?}\n{command}\nstatus=$?\nexport -p > {state:?}\nexit $status\n",
            state = self.state
        );
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("exec 2>&1\n{script}"))
            .current_dir(&self.cwd)
            .env_remove("JITGUARD_LOG")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// How a run's output is compared with the README's.
pub struct Compare<'a> {
    /// Applied to both sides before comparing (times, ages, generated names).
    pub normalize: &'a dyn Fn(&str) -> String,
    /// README lines the run may leave out (a finding that depends on the hour).
    pub optional: &'a dyn Fn(&str) -> bool,
}

impl Default for Compare<'_> {
    fn default() -> Self {
        Self {
            normalize: &|l| l.to_string(),
            optional: &|_| false,
        }
    }
}

/// Whether `actual` is what `expected` shows; `Err` says where they part.
pub fn matches(expected: &[String], actual: &str, compare: &Compare<'_>) -> Result<(), String> {
    let expected: Vec<String> = expected
        .iter()
        .map(|l| (compare.normalize)(l.trim_end()))
        .collect();
    let actual: Vec<String> = actual
        .lines()
        .map(|l| (compare.normalize)(l.trim_end()))
        .collect();
    if fits(&expected, &actual, compare) {
        Ok(())
    } else {
        Err(format!(
            "expected (README):\n{}\nactual:\n{}",
            expected.join("\n"),
            actual.join("\n")
        ))
    }
}

fn fits(expected: &[String], actual: &[String], compare: &Compare<'_>) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => (0..=actual.len())
            .any(|skip| fits(rest, actual.get(skip..).unwrap_or_default(), compare)),
        Some((first, rest)) => {
            let here = actual
                .split_first()
                .is_some_and(|(a, more)| a == first && fits(rest, more, compare));
            here || ((compare.optional)(first) && fits(rest, actual, compare))
        }
    }
}

/// Runs every step of `block`, comparing as it goes; `after` sees each step with its
/// output (to learn substitutions) before the comparison.
pub fn run_block(
    shell: &mut Shell,
    block: &Block,
    compare: &Compare<'_>,
    mut after: impl FnMut(&mut Shell, &Step, &str),
) {
    for step in &block.steps {
        let (code, output) = shell.run(&step.command);
        after(shell, step, &output);
        let expected: Vec<String> = step.expected.iter().map(|l| shell.substitute(l)).collect();
        if expected.is_empty() {
            assert_eq!(
                code, 0,
                "README.md:{}: `{}` failed:\n{output}",
                step.line, step.command
            );
        } else if let Err(diff) = matches(&expected, &output, compare) {
            panic!(
                "README.md:{}: `{}` printed something else than the README shows (exit {code})\n{diff}",
                step.line, step.command
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_read_with_continuations_and_indentation() {
        let md = "text\n```console\n$ a \\\n    b\nout 1\nout 2\n\n$ c\n```\n  ```console\n  $ d\n  x\n  ```\n";
        let blocks = console_blocks(md);
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].steps[0].command, "a \\\n    b");
        assert_eq!(blocks[0].steps[0].expected, vec!["out 1", "out 2"]);
        assert!(blocks[0].steps[1].expected.is_empty());
        assert_eq!(blocks[1].steps[0].command, "d");
        assert_eq!(blocks[1].steps[0].expected, vec!["x"]);
    }

    #[test]
    fn an_ellipsis_stands_for_lines_left_out_and_nothing_else_differs() {
        let c = Compare::default();
        let e = |lines: &[&str]| lines.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches(&e(&["a", "...", "d"]), "a\nb\nc\nd\n", &c).is_ok());
        assert!(matches(&e(&["a", "..."]), "a\n", &c).is_ok());
        assert!(matches(&e(&["a", "d"]), "a\nb\nd\n", &c).is_err());
        assert!(matches(&e(&["a"]), "a\nb\n", &c).is_err());
        let optional = Compare {
            optional: &|l| l.contains("maybe"),
            ..Compare::default()
        };
        assert!(matches(&e(&["a", "maybe", "b"]), "a\nb\n", &optional).is_ok());
        assert!(matches(&e(&["a", "maybe", "b"]), "a\nmaybe\nb\n", &optional).is_ok());
    }
}
