//! Running a SQL script with `weir run` and reading what its print sink printed.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `weir run` on `script` in `dir`, with a time limit; (success, stdout, stderr).
pub fn run(dir: &Path, script: &str) -> (bool, String, String) {
    let file = dir.join("q.sql");
    std::fs::write(&file, script).expect("write the script");
    let mut child = Command::new(super::weir())
        .current_dir(dir)
        .args(["run", file.to_str().expect("utf8"), "--progress", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start weir");
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let deadline = Instant::now() + Duration::from_secs(120);
    let ok = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
        }
    };
    (
        ok,
        out.join().unwrap_or_default(),
        super::strip_ansi(&err.join().unwrap_or_default()),
    )
}

/// The first line of Weir's complaint about a query.
pub fn complaint(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("Error") || l.contains(" FAILED after "))
        .or_else(|| stderr.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("no message")
        .trim();
    line.strip_prefix("Error: ").unwrap_or(line).to_string()
}

/// The rows a print sink printed (JSON lines on stdout), as `columns`' values; an updating
/// result (keyed by `keys`) folded to the last row of each key.
pub fn printed_rows(stdout: &str, columns: &[&str], keys: &[String]) -> Vec<Vec<Value>> {
    let mut appended = Vec::new();
    let mut by_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        let obj: serde_json::Map<String, Value> =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("output line {line}: {e}"));
        let row: Vec<Value> = columns
            .iter()
            .map(|c| obj.get(*c).cloned().unwrap_or(Value::Null))
            .collect();
        if keys.is_empty() {
            appended.push(row);
        } else {
            let key: Vec<Value> = keys
                .iter()
                .map(|k| obj.get(k).cloned().unwrap_or(Value::Null))
                .collect();
            by_key.insert(Value::Array(key).to_string(), row);
        }
    }
    if keys.is_empty() {
        appended
    } else {
        by_key.into_values().collect()
    }
}

/// The upsert keys of the print sink of a compiled script (empty for appends).
pub fn print_keys(job: &weir_types::JobSpec) -> Vec<String> {
    job.operators
        .iter()
        .find_map(|o| match &o.kind {
            weir_types::OperatorKind::StdoutSink(s) => Some(s.upsert_keys.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A value in the golden files' canonical form (timestamps as `yyyy-MM-dd HH:mm:ss.SSS`).
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(canonical_timestamp(s).unwrap_or_else(|| s.clone())),
        other => other.clone(),
    }
}

/// `2024-03-10T08:00:03.4` or `2024-03-10 08:00:03` as `2024-03-10 08:00:03.400`; `None` for
/// text that is not a timestamp.
pub fn canonical_timestamp(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if s.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b' ')
        || b[13] != b':'
        || b[16] != b':'
        || !s[..4].bytes().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let frac = match &s[19..] {
        "" => "000".to_string(),
        f if f.starts_with('.') && f[1..].bytes().all(|c| c.is_ascii_digit()) => {
            format!("{:0<3}", &f[1..])[..3].to_string()
        }
        _ => return None,
    };
    Some(format!("{} {}.{frac}", &s[..10], &s[11..19]))
}
