//! Writing the OS's sysfs views to disk as system roots (`sim --sysfs-out DIR`): the view at
//! the end in `DIR` itself (`DIR/sys/devices/system/…`, `DIR/proc/cpuinfo`), each view a
//! timeline's `export_sysfs` took in `DIR/<name>/`, so that `lsmem --sysroot DIR` and
//! `lscpu --sysroot DIR/<name>` read the simulated machine.

use std::io;
use std::path::Path;

use os_model::sysfs::{Sysfs, SysfsEntry};

/// Writes `view` under `root`: files with their contents, symbolic links with their targets.
/// What an earlier export left in `root/sys` and `root/proc` is removed first (a stale
/// memory block would mislead the tools); nothing else under `root` is touched.
pub fn write(root: &Path, view: &Sysfs) -> io::Result<()> {
    for top in ["sys", "proc"] {
        let d = root.join(top);
        if d.symlink_metadata().is_ok() {
            std::fs::remove_dir_all(&d)?;
        }
    }
    for (path, entry) in &view.entries {
        let p = root.join(path);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        match entry {
            SysfsEntry::File(text) => std::fs::write(&p, text)?,
            SysfsEntry::Link(target) => std::os::unix::fs::symlink(target, &p)?,
        }
    }
    Ok(())
}

/// Writes the final view to `dir` and every named one to `dir/<name>`.
pub fn write_all(dir: &Path, last: &Sysfs, named: &[(String, Sysfs)]) -> Result<(), String> {
    let fail =
        |at: &Path, e: io::Error| format!("cannot write the sysfs view to {}: {e}", at.display());
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    write(dir, last).map_err(|e| fail(dir, e))?;
    for (name, view) in named {
        let at = dir.join(name);
        write(&at, view).map_err(|e| fail(&at, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_links_land_under_the_root_and_a_rewrite_starts_fresh() {
        let root = std::env::temp_dir().join(format!("cellsim-sysfs-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut v = Sysfs::default();
        v.entries.insert(
            "sys/devices/system/memory/memory3/state".into(),
            SysfsEntry::File("online\n".into()),
        );
        v.entries.insert(
            "sys/devices/system/memory/memory3/node1".into(),
            SysfsEntry::Link("../../node/node1".into()),
        );
        write(&root, &v).unwrap();
        let base = root.join("sys/devices/system/memory/memory3");
        assert_eq!(
            std::fs::read_to_string(base.join("state")).unwrap(),
            "online\n"
        );
        assert_eq!(
            std::fs::read_link(base.join("node1")).unwrap(),
            Path::new("../../node/node1")
        );
        // A second view without memory3: nothing of the first is left.
        write(&root, &Sysfs::default()).unwrap();
        assert!(!base.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
