//! The writer application's output lines and the book of acknowledged writes.
//!
//! The application (`dengine-e2e-app write`) prints one line per event, which the runner reads
//! from every pod's log:
//!
//! ```text
//! START pod=e2e-0 boot=1f3a9c02 endpoint=http://127.0.0.1:2379
//! ACK e2e/e2e-0/1f3a9c02/00000017 1f3a9c02-17 rev=342
//! READ e2e/e2e-0/1f3a9c02/00000017 ok
//! READ e2e/e2e-0/1f3a9c02/00000020 missing
//! READ e2e/e2e-0/1f3a9c02/00000021 mismatch 1f3a9c02-20
//! ERR put e2e/e2e-0/1f3a9c02/00000018 Unavailable: no leader
//! ```
//!
//! `ACK` means the node answered the write with success: the write is acknowledged and must be
//! found later, whatever happens to pods and leaders. A write that failed (`ERR`) may or may not
//! have happened, so it is never checked; its key is never used again (every key is unique:
//! pod, boot id of the writer process, sequence number).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One acknowledged write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub key: String,
    pub value: String,
    /// The revision the node reported for the write, when the line carries it.
    pub revision: Option<i64>,
}

/// The outcome of the application reading back a key it had written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadBack {
    /// Found with the value written.
    Ok,
    /// Not found, although acknowledged.
    Missing,
    /// Found with another value.
    Mismatch(String),
}

/// One line of the application's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppLine {
    Start {
        pod: String,
        boot: String,
    },
    Ack(Ack),
    Read {
        key: String,
        outcome: ReadBack,
    },
    /// A failed request (`ERR ...`): expected while a node joins or a leader changes.
    Error(String),
    /// Anything else (blank lines, a panic message, ...).
    Other,
}

/// Why a line that starts like an application line could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("malformed {kind} line: {line:?}")]
    Malformed { kind: &'static str, line: String },
}

impl fmt::Display for Ack {
    /// The line the application prints for this write.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ACK {} {}", self.key, self.value)?;
        if let Some(revision) = self.revision {
            write!(f, " rev={revision}")?;
        }
        Ok(())
    }
}

/// Reads one line of the application's output. Lines that do not start with one of the
/// application's words are `Other`; lines that do but are damaged are errors, so a change to the
/// application's output that the runner no longer understands fails loudly instead of silently
/// checking nothing.
pub fn parse_line(line: &str) -> Result<AppLine, LineError> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut words = line.split(' ');
    let malformed = |kind| LineError::Malformed {
        kind,
        line: line.to_string(),
    };
    match words.next() {
        Some("ACK") => {
            let key = words.next().filter(|k| !k.is_empty());
            let value = words.next().filter(|v| !v.is_empty());
            let (Some(key), Some(value)) = (key, value) else {
                return Err(malformed("ACK"));
            };
            let revision = match words.next() {
                None => None,
                Some(word) => Some(
                    word.strip_prefix("rev=")
                        .and_then(|r| r.parse::<i64>().ok())
                        .ok_or_else(|| malformed("ACK"))?,
                ),
            };
            if words.next().is_some() {
                return Err(malformed("ACK"));
            }
            Ok(AppLine::Ack(Ack {
                key: key.to_string(),
                value: value.to_string(),
                revision,
            }))
        }
        Some("READ") => {
            let key = words
                .next()
                .filter(|k| !k.is_empty())
                .ok_or_else(|| malformed("READ"))?;
            let outcome = match (words.next(), words.next(), words.next()) {
                (Some("ok"), None, _) => ReadBack::Ok,
                (Some("missing"), None, _) => ReadBack::Missing,
                (Some("mismatch"), Some(got), None) => ReadBack::Mismatch(got.to_string()),
                _ => return Err(malformed("READ")),
            };
            Ok(AppLine::Read {
                key: key.to_string(),
                outcome,
            })
        }
        Some("START") => {
            let mut pod = None;
            let mut boot = None;
            for word in words {
                if let Some(p) = word.strip_prefix("pod=") {
                    pod = Some(p.to_string());
                } else if let Some(b) = word.strip_prefix("boot=") {
                    boot = Some(b.to_string());
                }
            }
            match (pod, boot) {
                (Some(pod), Some(boot)) => Ok(AppLine::Start { pod, boot }),
                _ => Err(malformed("START")),
            }
        }
        Some("ERR") => Ok(AppLine::Error(line[3..].trim_start().to_string())),
        _ => Ok(AppLine::Other),
    }
}

/// The writer an acknowledged key came from: `<prefix><pod>/<boot>/<seq>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Writer {
    pub pod: String,
    pub boot: String,
}

/// Splits a key the application wrote into its writer and sequence number.
pub fn key_parts(prefix: &str, key: &str) -> Option<(Writer, u64)> {
    let rest = key.strip_prefix(prefix)?;
    let mut parts = rest.split('/');
    let (pod, boot, seq) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || pod.is_empty() || boot.is_empty() {
        return None;
    }
    Some((
        Writer {
            pod: pod.to_string(),
            boot: boot.to_string(),
        },
        seq.parse().ok()?,
    ))
}

/// The key the application writes for `seq`: sorted by sequence within one writer.
pub fn key_for(prefix: &str, pod: &str, boot: &str, seq: u64) -> String {
    format!("{prefix}{pod}/{boot}/{seq:08}")
}

/// The value the application writes for `seq`.
pub fn value_for(boot: &str, seq: u64) -> String {
    format!("{boot}-{seq}")
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    value: String,
    revision: Option<i64>,
    /// The pod whose log carried the line.
    pod: String,
    /// Position in the order lines arrived, for "acknowledged after" questions.
    order: u64,
}

/// Every acknowledged write seen in any pod's log, by key. The same line read twice (a log
/// stream followed again from the start after a reconnect) counts once.
#[derive(Debug, Default)]
pub struct AckBook {
    prefix: String,
    acks: BTreeMap<String, Entry>,
    next_order: u64,
    /// The same key acknowledged with two values: the application never does that.
    conflicts: Vec<String>,
    /// Keys the application read back as it had written them.
    reads_ok: BTreeSet<String>,
    /// Read-backs that found an acknowledged key missing or changed.
    read_failures: Vec<String>,
    /// Lines that looked like the application's but could not be read.
    malformed: Vec<String>,
    errors: u64,
    starts: Vec<(String, String)>,
}

/// A mark in the book: what had been acknowledged when it was taken. The default mark is the
/// book's beginning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark(u64);

impl AckBook {
    /// A book of the keys written under `prefix` (e.g. `e2e/`).
    pub fn new(prefix: impl Into<String>) -> Self {
        AckBook {
            prefix: prefix.into(),
            ..AckBook::default()
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Forgets every write: the cluster holding them was deleted with its volumes.
    pub fn reset(&mut self) {
        *self = AckBook::new(std::mem::take(&mut self.prefix));
    }

    /// Takes in one line of `pod`'s application log.
    pub fn record(&mut self, pod: &str, line: &str) {
        match parse_line(line) {
            Ok(AppLine::Ack(ack)) => self.record_ack(pod, ack),
            Ok(AppLine::Read { key, outcome }) => match outcome {
                ReadBack::Ok => {
                    self.reads_ok.insert(key);
                }
                ReadBack::Missing => self
                    .read_failures
                    .push(format!("{pod}: read back {key}: missing")),
                ReadBack::Mismatch(got) => self
                    .read_failures
                    .push(format!("{pod}: read back {key}: found {got}")),
            },
            Ok(AppLine::Start { pod, boot }) => self.starts.push((pod, boot)),
            Ok(AppLine::Error(_)) => self.errors += 1,
            Ok(AppLine::Other) => {}
            Err(error) => self.malformed.push(format!("{pod}: {error}")),
        }
    }

    fn record_ack(&mut self, pod: &str, ack: Ack) {
        if let Some(existing) = self.acks.get(&ack.key) {
            if existing.value != ack.value || existing.revision != ack.revision {
                self.conflicts.push(format!(
                    "{} acknowledged as {:?} (rev {:?}) and as {:?} (rev {:?})",
                    ack.key, existing.value, existing.revision, ack.value, ack.revision
                ));
            }
            return;
        }
        let order = self.next_order;
        self.next_order += 1;
        self.acks.insert(
            ack.key,
            Entry {
                value: ack.value,
                revision: ack.revision,
                pod: pod.to_string(),
                order,
            },
        );
    }

    /// How many distinct writes were acknowledged.
    pub fn len(&self) -> usize {
        self.acks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }

    /// A mark to count acknowledgements after.
    pub fn mark(&self) -> Mark {
        Mark(self.next_order)
    }

    /// Acknowledged writes since `mark`, per writing pod.
    pub fn since(&self, mark: Mark) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for entry in self.acks.values().filter(|e| e.order >= mark.0) {
            *counts.entry(entry.pod.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Acknowledged writes per writing pod.
    pub fn per_pod(&self) -> BTreeMap<String, usize> {
        self.since(Mark(0))
    }

    /// Distinct keys the application read back intact.
    pub fn reads_ok(&self) -> usize {
        self.reads_ok.len()
    }

    /// Failed requests the application reported (not failures of the test).
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Writer processes that started, as (pod, boot id).
    pub fn starts(&self) -> &[(String, String)] {
        &self.starts
    }

    /// Everything in the log that is wrong in itself: a key acknowledged twice with different
    /// values, a read-back that did not find what was acknowledged, a damaged line, revisions
    /// going backwards within one writer.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.conflicts.clone();
        problems.extend(self.read_failures.iter().cloned());
        problems.extend(self.malformed.iter().cloned());
        problems.extend(self.revision_order_violations());
        problems
    }

    /// Each writer writes one key at a time, each after the previous one was acknowledged, so
    /// its acknowledged revisions must grow with its sequence numbers.
    pub fn revision_order_violations(&self) -> Vec<String> {
        let mut last: BTreeMap<Writer, (u64, i64)> = BTreeMap::new();
        let mut violations = Vec::new();
        // Keys sort by writer, then by zero-padded sequence number.
        for (key, entry) in &self.acks {
            let (Some((writer, seq)), Some(revision)) =
                (key_parts(&self.prefix, key), entry.revision)
            else {
                continue;
            };
            if let Some((previous_seq, previous_revision)) = last.get(&writer) {
                if *previous_seq < seq && *previous_revision >= revision {
                    violations.push(format!(
                        "{}/{}: write {seq} acknowledged at revision {revision}, not after write \
                         {previous_seq} at revision {previous_revision}",
                        writer.pod, writer.boot
                    ));
                }
            }
            last.insert(writer, (seq, revision));
        }
        violations
    }

    /// The acknowledged writes of the pods whose key starts with `<prefix><pod>/`, as (key,
    /// value), for a check against what a node returns.
    pub fn expected(&self) -> BTreeMap<String, String> {
        self.acks
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }

    /// The highest revision acknowledged so far (0 before any): a backup taken after must hold
    /// at least it.
    pub fn highest_revision(&self) -> i64 {
        self.acks
            .values()
            .filter_map(|e| e.revision)
            .max()
            .unwrap_or(0)
    }

    /// The writing pods: the first path element after the prefix of every acknowledged key.
    pub fn writer_pods(&self) -> BTreeSet<String> {
        self.acks
            .keys()
            .filter_map(|k| key_parts(&self.prefix, k).map(|(w, _)| w.pod))
            .collect()
    }
}

/// What a read of the store found, compared with the acknowledged writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Acknowledged writes looked for.
    pub checked: usize,
    /// Acknowledged keys not found.
    pub missing: Vec<String>,
    /// Acknowledged keys found with another value: (key, acknowledged, found).
    pub wrong: Vec<(String, String, String)>,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.wrong.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_ok() {
            return write!(f, "all {} acknowledged writes found", self.checked);
        }
        write!(
            f,
            "{} of {} acknowledged writes missing, {} with another value",
            self.missing.len(),
            self.checked,
            self.wrong.len()
        )?;
        for key in self.missing.iter().take(10) {
            write!(f, "\n    missing {key}")?;
        }
        for (key, acked, found) in self.wrong.iter().take(10) {
            write!(f, "\n    {key}: acknowledged {acked}, found {found}")?;
        }
        Ok(())
    }
}

/// Checks every acknowledged write against what a node returned. Keys in `found` that were never
/// acknowledged are fine: a write whose acknowledgement was lost on the way may still be there.
pub fn verify(expected: &BTreeMap<String, String>, found: &BTreeMap<String, String>) -> Verdict {
    let mut verdict = Verdict {
        checked: expected.len(),
        ..Verdict::default()
    };
    for (key, value) in expected {
        match found.get(key) {
            None => verdict.missing.push(key.clone()),
            Some(got) if got != value => {
                verdict
                    .wrong
                    .push((key.clone(), value.clone(), got.clone()))
            }
            Some(_) => {}
        }
    }
    verdict
}

/// Reads the output of `dengine --output json scan PREFIX` into key -> value.
pub fn parse_scan_json(output: &str) -> Result<BTreeMap<String, String>, String> {
    let parsed: serde_json::Value = serde_json::from_str(output.trim())
        .map_err(|e| format!("dengine scan printed no JSON ({e}): {output:.200}"))?;
    if parsed["more"].as_bool() == Some(true) {
        return Err("dengine scan stopped at a page limit".to_string());
    }
    let kvs = parsed["kvs"]
        .as_array()
        .ok_or_else(|| format!("dengine scan JSON has no kvs list: {output:.200}"))?;
    let mut found = BTreeMap::new();
    for kv in kvs {
        let (Some(key), Some(value)) = (kv["key"].as_str(), kv["value"].as_str()) else {
            return Err(format!("a scan entry without key or value: {kv}"));
        };
        found.insert(key.to_string(), value.to_string());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_line_reads_with_and_without_a_revision() {
        assert_eq!(
            parse_line("ACK e2e/e2e-0/ab/00000001 ab-1 rev=7"),
            Ok(AppLine::Ack(Ack {
                key: "e2e/e2e-0/ab/00000001".into(),
                value: "ab-1".into(),
                revision: Some(7)
            }))
        );
        assert_eq!(
            parse_line("ACK k v\n"),
            Ok(AppLine::Ack(Ack {
                key: "k".into(),
                value: "v".into(),
                revision: None
            }))
        );
    }

    #[test]
    fn an_ack_prints_as_it_parses() {
        let ack = Ack {
            key: key_for("e2e/", "e2e-1", "c0ffee", 42),
            value: value_for("c0ffee", 42),
            revision: Some(99),
        };
        assert_eq!(
            ack.to_string(),
            "ACK e2e/e2e-1/c0ffee/00000042 c0ffee-42 rev=99"
        );
        assert_eq!(parse_line(&ack.to_string()), Ok(AppLine::Ack(ack)));
    }

    #[test]
    fn damaged_ack_lines_are_errors_not_ignored() {
        for bad in [
            "ACK",
            "ACK key",
            "ACK  v",
            "ACK k v rev=x",
            "ACK k v 7",
            "ACK k v rev=1 x",
        ] {
            assert!(
                matches!(
                    parse_line(bad),
                    Err(LineError::Malformed { kind: "ACK", .. })
                ),
                "{bad:?} should be malformed"
            );
        }
    }

    #[test]
    fn read_start_error_and_other_lines() {
        assert_eq!(
            parse_line("READ k ok"),
            Ok(AppLine::Read {
                key: "k".into(),
                outcome: ReadBack::Ok
            })
        );
        assert_eq!(
            parse_line("READ k missing"),
            Ok(AppLine::Read {
                key: "k".into(),
                outcome: ReadBack::Missing
            })
        );
        assert_eq!(
            parse_line("READ k mismatch other"),
            Ok(AppLine::Read {
                key: "k".into(),
                outcome: ReadBack::Mismatch("other".into())
            })
        );
        assert!(parse_line("READ k maybe").is_err());
        assert_eq!(
            parse_line("START pod=e2e-0 boot=ab endpoint=http://127.0.0.1:2379"),
            Ok(AppLine::Start {
                pod: "e2e-0".into(),
                boot: "ab".into()
            })
        );
        assert!(parse_line("START boot=ab").is_err());
        assert_eq!(
            parse_line("ERR put k Unavailable: no leader"),
            Ok(AppLine::Error("put k Unavailable: no leader".into()))
        );
        assert_eq!(parse_line(""), Ok(AppLine::Other));
        assert_eq!(parse_line("ACKNOWLEDGED k v"), Ok(AppLine::Other));
        assert_eq!(parse_line("thread 'main' panicked"), Ok(AppLine::Other));
    }

    #[test]
    fn keys_split_into_writer_and_sequence() {
        let key = key_for("e2e/", "e2e-2", "beef", 3);
        assert_eq!(
            key_parts("e2e/", &key),
            Some((
                Writer {
                    pod: "e2e-2".into(),
                    boot: "beef".into()
                },
                3
            ))
        );
        assert_eq!(key_parts("e2e/", "other/e2e-2/beef/3"), None);
        assert_eq!(key_parts("e2e/", "e2e/e2e-2/beef"), None);
        assert_eq!(key_parts("e2e/", "e2e/e2e-2/beef/x"), None);
        assert_eq!(key_parts("e2e/", "e2e/e2e-2/beef/1/2"), None);
    }

    fn ack(pod: &str, boot: &str, seq: u64, rev: i64) -> String {
        Ack {
            key: key_for("e2e/", pod, boot, seq),
            value: value_for(boot, seq),
            revision: Some(rev),
        }
        .to_string()
    }

    #[test]
    fn the_book_counts_each_write_once_even_when_a_log_is_read_twice() {
        let mut book = AckBook::new("e2e/");
        for _ in 0..2 {
            book.record("e2e-0", &ack("e2e-0", "a", 1, 10));
            book.record("e2e-0", &ack("e2e-0", "a", 2, 11));
        }
        assert_eq!(book.len(), 2);
        assert!(book.problems().is_empty(), "{:?}", book.problems());
        assert_eq!(book.per_pod().get("e2e-0"), Some(&2));
        assert_eq!(book.highest_revision(), 11);
    }

    #[test]
    fn the_same_key_with_two_values_is_a_problem() {
        let mut book = AckBook::new("e2e/");
        book.record("e2e-0", "ACK e2e/e2e-0/a/00000001 a-1 rev=3");
        book.record("e2e-0", "ACK e2e/e2e-0/a/00000001 a-2 rev=3");
        let problems = book.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("acknowledged as"), "{problems:?}");
    }

    #[test]
    fn failed_read_backs_and_damaged_lines_are_problems() {
        let mut book = AckBook::new("e2e/");
        book.record("e2e-0", "READ e2e/e2e-0/a/00000001 ok");
        book.record("e2e-1", "READ e2e/e2e-1/b/00000004 missing");
        book.record("e2e-1", "READ e2e/e2e-1/b/00000005 mismatch b-4");
        book.record("e2e-2", "ACK only-a-key");
        book.record("e2e-2", "ERR put k Unavailable");
        assert_eq!(book.reads_ok(), 1);
        assert_eq!(book.errors(), 1);
        let problems = book.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("missing"));
        assert!(problems[1].contains("found b-4"));
        assert!(problems[2].contains("malformed ACK"));
    }

    #[test]
    fn revisions_must_grow_within_one_writer_only() {
        let mut book = AckBook::new("e2e/");
        book.record("e2e-0", &ack("e2e-0", "a", 1, 10));
        book.record("e2e-0", &ack("e2e-0", "a", 2, 12));
        // Another writer (a restarted process) may be anywhere.
        book.record("e2e-0", &ack("e2e-0", "b", 1, 5));
        book.record("e2e-1", &ack("e2e-1", "c", 1, 11));
        assert!(book.revision_order_violations().is_empty());

        book.record("e2e-0", &ack("e2e-0", "a", 3, 12));
        let violations = book.revision_order_violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].contains("write 3 acknowledged at revision 12"));
    }

    #[test]
    fn marks_count_what_came_after_them() {
        let mut book = AckBook::new("e2e/");
        book.record("e2e-0", &ack("e2e-0", "a", 1, 1));
        let mark = book.mark();
        assert!(book.since(mark).is_empty());
        book.record("e2e-0", &ack("e2e-0", "a", 1, 1)); // a repeat is not new
        book.record("e2e-1", &ack("e2e-1", "b", 1, 2));
        book.record("e2e-1", &ack("e2e-1", "b", 2, 3));
        assert_eq!(book.since(mark), BTreeMap::from([("e2e-1".to_string(), 2)]));
        assert_eq!(
            book.writer_pods(),
            BTreeSet::from(["e2e-0".to_string(), "e2e-1".to_string()])
        );
        book.reset();
        assert!(book.is_empty());
        assert_eq!(book.prefix(), "e2e/");
        assert_eq!(book.mark(), Mark::default());
    }

    #[test]
    fn verify_reports_missing_and_changed_writes_and_ignores_extra_keys() {
        let expected = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("c".to_string(), "3".to_string()),
        ]);
        let found = BTreeMap::from([
            ("a".to_string(), "1".to_string()),
            ("c".to_string(), "4".to_string()),
            ("d".to_string(), "unacknowledged but written".to_string()),
        ]);
        let verdict = verify(&expected, &found);
        assert!(!verdict.is_ok());
        assert_eq!(verdict.checked, 3);
        assert_eq!(verdict.missing, vec!["b".to_string()]);
        assert_eq!(verdict.wrong, vec![("c".into(), "3".into(), "4".into())]);
        let text = verdict.to_string();
        assert!(
            text.contains("1 of 3 acknowledged writes missing"),
            "{text}"
        );
        assert!(text.contains("missing b"), "{text}");

        let all = verify(&expected, &expected);
        assert!(all.is_ok());
        assert_eq!(all.to_string(), "all 3 acknowledged writes found");
    }

    #[test]
    fn scan_json_reads_keys_and_values() {
        let output = r#"{"header":{"revision":9},"count":2,"more":false,"kvs":[{"key":"e2e/a","value":"1","create_revision":3,"mod_revision":3,"version":1,"expires_at_unix_ms":0},{"key":"e2e/b","value":"2","create_revision":4,"mod_revision":4,"version":1,"expires_at_unix_ms":0}]}"#;
        let found = parse_scan_json(output).expect("reads");
        assert_eq!(found.get("e2e/b").map(String::as_str), Some("2"));
        assert_eq!(found.len(), 2);
        assert!(parse_scan_json("Error: UNAVAILABLE: no leader").is_err());
        assert!(parse_scan_json(r#"{"more":true,"kvs":[]}"#).is_err());
        assert!(parse_scan_json(r#"{"more":false,"kvs":[{"key":"k"}]}"#).is_err());
    }
}
