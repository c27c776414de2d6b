//! Chrome trace-event JSON (the format Perfetto and `chrome://tracing` open).
//!
//! Layout: one *process* per track group (`cpu`, `cell`, `machine`, …) and one *thread* per
//! track index, each named with metadata events, so a CPU gets its own row. Timestamps are in
//! microseconds with nanosecond precision. The output is deterministic: groups are numbered in
//! order of first appearance, and records keep emission order.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde_json::{Map, Value, json};

use super::{ArgValue, Phase, TraceRecord};

fn ts(ns: u64) -> Value {
    // Microseconds as a JSON number with three decimals; serde_json prints f64 losslessly for
    // the magnitudes a simulation reaches (< 2^53 ns).
    json!(ns as f64 / 1000.0)
}

fn args(rec: &TraceRecord) -> Value {
    let mut m = Map::new();
    for (k, v) in &rec.args {
        let v = match v {
            ArgValue::U64(n) => json!(n),
            ArgValue::Bool(b) => json!(b),
            ArgValue::Str(s) => json!(s),
        };
        m.insert((*k).to_owned(), v);
    }
    Value::Object(m)
}

/// Writes `records` as a Chrome trace-event JSON object (`{"traceEvents": [...]}`).
pub fn write<W: Write>(records: &[TraceRecord], mut out: W) -> io::Result<()> {
    let mut pids: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut order: Vec<&'static str> = Vec::new();
    let mut threads: BTreeMap<(u32, u32), ()> = BTreeMap::new();
    for r in records {
        let next = pids.len() as u32 + 1;
        let pid = *pids.entry(r.track.group).or_insert_with(|| {
            order.push(r.track.group);
            next
        });
        threads.insert((pid, r.track.index), ());
    }
    // A slice lasts until the next slice on its track, or until the last record.
    let last = records.iter().map(|r| r.time.as_nanos()).max().unwrap_or(0);
    let mut slice_end = vec![last; records.len()];
    let mut open: BTreeMap<(&'static str, u32), usize> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if r.phase == Phase::Slice {
            if let Some(prev) = open.insert((r.track.group, r.track.index), i) {
                slice_end[prev] = r.time.as_nanos();
            }
        }
    }
    let mut events: Vec<Value> = Vec::with_capacity(records.len() + threads.len() * 2);
    for (i, group) in order.iter().enumerate() {
        let pid = i as u32 + 1;
        events.push(
            json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                           "args": {"name": group}}),
        );
        events.push(
            json!({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
                           "args": {"sort_index": pid}}),
        );
    }
    for &(pid, tid) in threads.keys() {
        let group = order[pid as usize - 1];
        events.push(
            json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                           "args": {"name": format!("{group}{tid}")}}),
        );
        events.push(
            json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                           "args": {"sort_index": tid}}),
        );
    }
    for (i, r) in records.iter().enumerate() {
        let pid = pids[r.track.group];
        let mut e = json!({
            "name": r.name,
            "cat": r.category,
            "ts": ts(r.time.as_nanos()),
            "pid": pid,
            "tid": r.track.index,
            "args": args(r),
        });
        let obj = e
            .as_object_mut()
            .ok_or_else(|| io::Error::other("not an object"))?;
        match r.phase {
            Phase::Instant => {
                obj.insert("ph".into(), json!("i"));
                obj.insert("s".into(), json!("t"));
            }
            Phase::Complete(d) => {
                obj.insert("ph".into(), json!("X"));
                obj.insert("dur".into(), ts(d.as_nanos()));
            }
            Phase::Begin => {
                obj.insert("ph".into(), json!("B"));
            }
            Phase::End => {
                obj.insert("ph".into(), json!("E"));
            }
            Phase::Counter => {
                obj.insert("ph".into(), json!("C"));
            }
            Phase::Slice => {
                obj.insert("ph".into(), json!("X"));
                let d = slice_end[i].saturating_sub(r.time.as_nanos());
                obj.insert("dur".into(), ts(d));
            }
        }
        events.push(e);
    }
    let doc = json!({"traceEvents": events, "displayTimeUnit": "ns"});
    serde_json::to_writer(&mut out, &doc).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{SimDuration, SimTime};
    use crate::trace::Track;

    #[test]
    fn writes_valid_trace_event_json_with_named_tracks() {
        let recs = vec![
            TraceRecord {
                time: SimTime::from_nanos(1500),
                track: Track {
                    group: "cpu",
                    index: 3,
                },
                category: "hw",
                name: "halt".into(),
                phase: Phase::Instant,
                args: vec![("lines", 4u64.into())],
            },
            TraceRecord {
                time: SimTime::from_nanos(2000),
                track: Track {
                    group: "cell",
                    index: 1,
                },
                category: "hw",
                name: "power".into(),
                phase: Phase::Complete(SimDuration::from_nanos(500)),
                args: vec![],
            },
        ];
        let mut buf = Vec::new();
        write(&recs, &mut buf).unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        let evs = v["traceEvents"].as_array().unwrap();
        let names: Vec<_> = evs
            .iter()
            .filter(|e| e["name"] == "thread_name")
            .map(|e| e["args"]["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, vec!["cpu3", "cell1"]);
        let halt = evs.iter().find(|e| e["name"] == "halt").unwrap();
        assert_eq!(halt["ph"], "i");
        assert_eq!(halt["ts"], 1.5);
        let power = evs.iter().find(|e| e["name"] == "power").unwrap();
        assert_eq!(power["dur"], 0.5);
    }

    #[test]
    fn a_slice_lasts_until_the_next_one_on_its_track() {
        let slice = |ns: u64, cpu: u32, name: &'static str| TraceRecord {
            time: SimTime::from_nanos(ns),
            track: Track {
                group: "cpu",
                index: cpu,
            },
            category: "os",
            name: name.into(),
            phase: Phase::Slice,
            args: vec![],
        };
        let recs = vec![
            slice(1000, 0, "task 1"),
            slice(1500, 1, "idle"),
            slice(4000, 0, "idle"),
            slice(9000, 1, "task 2"),
        ];
        let mut buf = Vec::new();
        write(&recs, &mut buf).unwrap();
        let v: Value = serde_json::from_slice(&buf).unwrap();
        let spans: Vec<(String, f64, f64)> = v["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X")
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["ts"].as_f64().unwrap(),
                    e["dur"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                ("task 1".to_owned(), 1.0, 3.0),
                ("idle".to_owned(), 1.5, 7.5),
                ("idle".to_owned(), 4.0, 5.0),
                ("task 2".to_owned(), 9.0, 0.0)
            ]
        );
    }
}
