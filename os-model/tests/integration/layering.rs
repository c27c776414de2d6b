//! The kernel's modules in layers: a module uses only its own layer and those below
//! (ARCHITECTURE.md, "The kernel"). Read from the source, so that a new `use` across the line
//! fails here with its file and line.

use std::path::{Path, PathBuf};

/// Layers, bottom up; a module path is in the layer of its longest listed prefix.
const LAYERS: [(&str, u8); 24] = [
    // The vocabulary: CPU masks, access helpers, the ACPI scan, ids.
    ("cpumask", 0),
    ("hw", 0),
    ("acpi", 0),
    ("ids", 0),
    // Memory bookkeeping: nodes, zones, buddy, mem_map, address spaces, the manager's state.
    ("mm", 1),
    // What the kernel reports and is configured with.
    ("event", 2),
    ("config", 2),
    // Subsystems with their own state, and the hot-plug engine.
    ("rcu", 3),
    ("sched", 3),
    ("irq", 3),
    ("driver", 3),
    ("ops", 3),
    // The kernel: the instance, its flows, notifications, policies, memory management at
    // work, its sysfs view.
    ("kernel", 4),
    ("hotplug", 4),
    ("memhotplug", 4),
    ("pcihp", 4),
    ("notify", 4),
    ("policy", 4),
    ("mm::kernel", 4),
    ("sysfs", 4),
    // What was on the kernel's disk before the machine ran.
    ("install", 4),
    // Judges of the kernel.
    ("check", 5),
    // The crate root re-exports everything.
    ("lib", 6),
    ("", 6),
];

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .filter(|(p, _)| module == *p || (!p.is_empty() && module.starts_with(&format!("{p}::"))))
        .max_by_key(|(p, _)| p.len())
        .map_or_else(|| panic!("module {module} has no layer"), |&(_, l)| l)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `mm/kernel/fault.rs` → `mm::kernel::fault`; `kernel/mod.rs` → `kernel`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts.join("::")
}

#[test]
fn no_module_uses_one_above_its_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    all.sort();
    assert!(all.len() > 30, "found only {} files", all.len());
    let mut wrong = Vec::new();
    for f in &all {
        let module = module_of(&src, f);
        let own = layer(&module);
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + "crate::".len()..];
                let path: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_' || *c == ':')
                    .collect();
                let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
                // A module path: its first two segments name the target (`mm::kernel`).
                let target = match segs.as_slice() {
                    [] => continue,
                    [a] => (*a).to_owned(),
                    [a, b, ..] => format!("{a}::{b}"),
                };
                let theirs = layer(&target);
                if theirs > own {
                    wrong.push(format!(
                        "{}:{}: {module} (layer {own}) uses {target} (layer {theirs})",
                        f.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_layer_table_rejects_what_it_should() {
    assert_eq!(layer("mm::kernel::fault"), 4);
    assert_eq!(layer("mm::buddy"), 1);
    assert!(layer("ops::engine") < layer("kernel::boot"));
    assert!(layer("event") < layer("ops"));
}

/// Issue 15's structure, kept: the kernel is opened only by its own module, and no source file
/// of the crate is too long to read through.
#[test]
fn only_the_kernel_module_implements_os_and_no_file_is_over_a_thousand_lines() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        let lines = text.lines().count();
        if lines > 1000 {
            wrong.push(format!("{}: {lines} lines", f.display()));
        }
        let in_kernel = module_of(&src, f).split("::").next() == Some("kernel");
        for (n, line) in text.lines().enumerate() {
            let l = line.trim_start();
            if !in_kernel && (l.starts_with("impl Os ") || l.starts_with("impl Os{")) {
                wrong.push(format!(
                    "{}:{}: impl Os outside kernel/",
                    f.display(),
                    n + 1
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
